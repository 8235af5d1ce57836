"""The services' side of the bus (nats-py): connection and accounts (``bus``), JetStream
streams (``streams``), typed RPC over the catalogue of ``chat_proto.ops`` (``rpc``).

Clients (the SDK, the web app) need only ``chat_proto``, which imports no NATS code.
"""
