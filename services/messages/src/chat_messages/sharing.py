"""Who shares conversations with whom: the presence service's questions.

- ``shared_with``: which of some users share a conversation with a user (the user themself
  always counts): who may see whose presence.
- ``readable``: which conversations a user may read (the media service, before serving
  an attachment referenced there).
- ``presence_convs``: the conversations a user's presence changes are pushed to — dms,
  groups and channels with at most ``max_members`` members, at least two. Bigger channels
  get no pushes (clients ask ``GET /v1/presence``), which bounds the frames one change
  makes.
"""

from __future__ import annotations

from typing import Any

from chat_proto.messages_api import PresenceConvs, Readable, SharedWith

from chat_messages import sharing_store
from chat_messages.store import Store


class Sharing:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def shared_with(self, req: SharedWith) -> dict[str, Any]:
        others = [u for u in dict.fromkeys(req.user_ids) if u != req.user_id]
        async with self.store.tx() as conn:
            found = await sharing_store.shared_with(conn, req.user_id, others)
        found.add(req.user_id)
        return {"user_ids": [u for u in dict.fromkeys(req.user_ids) if u in found]}

    async def readable(self, req: Readable) -> dict[str, Any]:
        """Which of ``req.convs`` the user may read: member, or a public channel."""
        wanted = list(dict.fromkeys(req.convs))
        if not wanted:
            return {"convs": []}
        async with self.store.tx() as conn:
            ok = await self.store.member_convs(conn, req.user_id, wanted)
            ok |= await sharing_store.public_channels_among(conn, [c for c in wanted if c not in ok])
        return {"convs": [c for c in wanted if c in ok]}

    async def presence_convs(self, req: PresenceConvs) -> dict[str, Any]:
        async with self.store.tx() as conn:
            rows = await sharing_store.small_conversations(conn, list(set(req.user_ids)), req.max_members)
        out: dict[str, list[str]] = {u: [] for u in req.user_ids}
        for r in rows:
            out[r.user_id].append(r.conv_id)
        for convs in out.values():
            convs.sort()
        return {"convs": out}
