"""The messages service: conversations, membership, the event log and its write path."""
