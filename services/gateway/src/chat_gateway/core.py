"""What every WebSocket session of this gateway shares: built once in the lifespan
(``main.py``), handed to each ``ws.Session``."""

from __future__ import annotations

from dataclasses import dataclass

from chat_gateway.hub import Hub
from chat_gateway.limits import Limits
from chat_gateway.media_urls import UrlSigner
from chat_gateway.ports import MessagesApi
from chat_gateway.receipts import ReceiptCoalescer
from chat_gateway.sends import Sender
from chat_gateway.settings import GatewaySettings
from chat_gateway.tokens import TokenVerifier
from chat_gateway.typing_relay import TypingRelay


@dataclass
class Core:
    settings: GatewaySettings
    hub: Hub  # fanout to local connections (hub.py)
    verifier: TokenVerifier  # access tokens and the deny-list (tokens.py, revocations.py)
    sender: Sender  # sends into the store (sends.py)
    messages: MessagesApi  # sync (sync.py)
    limits: Limits | None = None  # per-user rates (frame_guard.py); None: unlimited
    receipts: ReceiptCoalescer | None = None  # delivered/read (receipts.py)
    typing: TypingRelay | None = None  # typing (typing_relay.py)
    signer: UrlSigner | None = None  # media URLs in replayed events (media_urls.py)
