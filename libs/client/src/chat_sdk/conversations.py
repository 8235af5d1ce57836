"""The REST side of ``ChatClient``: account, history and conversation helpers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chat_sdk.delivery import Delivery
from chat_sdk.models import Attachment, Conversation, HistoryPage, SearchPage, Upload, User
from chat_sdk.rest import Rest


class ConversationsMixin:
    _rest: Rest
    _delivery: Delivery

    @property
    def user_id(self) -> str | None:
        raise NotImplementedError

    async def me(self) -> User:
        return User.model_validate(await self._rest.call("GET", "/v1/me"))

    async def history(
        self, conv: str, *, before: int | None = None, after: int | None = None, limit: int | None = None
    ) -> HistoryPage:
        """``GET …/messages`` (ascending; see PROTOCOL §3 for before/after/limit)."""
        params = {k: v for k, v in (("before", before), ("after", after), ("limit", limit)) if v is not None}
        return HistoryPage.parse(await self._rest.call("GET", f"/v1/conversations/{conv}/messages", params=params))

    async def create_conversation(
        self, kind: str, *, name: str | None = None, private: bool | None = None, members: Sequence[str] = ()
    ) -> Conversation:
        body: dict[str, Any] = {"kind": kind, "members": list(members)}
        if name is not None:
            body["name"] = name
        if private is not None:
            body["private"] = private
        status, out = await self._rest.call_status("POST", "/v1/conversations", json=body)
        conv = Conversation.model_validate(out)
        # A new conversation is followed from its start; an existing dm (200) from its end.
        self._delivery.order.start(conv.id, 0 if status == 201 else conv.last_seq)
        return conv

    async def list_conversations(self) -> list[Conversation]:
        out = await self._rest.call("GET", "/v1/conversations")
        return [Conversation.model_validate(c) for c in out.get("conversations", [])]

    async def get_conversation(self, conv: str) -> Conversation:
        return Conversation.model_validate(await self._rest.call("GET", f"/v1/conversations/{conv}"))

    async def join(self, conv: str) -> Conversation:
        """Join a public channel; its events are delivered from the ``member_joined`` on."""
        return Conversation.model_validate(await self._rest.call("POST", f"/v1/conversations/{conv}/join"))

    async def add_member(self, conv: str, user_id: str, role: str | None = None) -> Conversation:
        body: dict[str, Any] = {"user_id": user_id} | ({"role": role} if role else {})
        out = await self._rest.call("POST", f"/v1/conversations/{conv}/members", json=body)
        return Conversation.model_validate(out)

    async def search(
        self, q: str, *, conv: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> SearchPage:
        """``GET /v1/search``: messages of your conversations matching ``q`` (words and
        ``"phrases"``), most relevant first; pass ``next_cursor`` back for the next page."""
        params = {k: v for k, v in (("q", q), ("conv", conv), ("limit", limit), ("cursor", cursor)) if v is not None}
        return SearchPage.parse(await self._rest.call("GET", "/v1/search", params=params))

    # -- media (PROTOCOL §5) ------------------------------------------------------------
    async def upload(self, data: bytes, name: str = "file") -> Upload:
        """``POST /v1/media``: the server types the bytes and sanitizes them; the answer's
        ``media_id`` goes into ``send(..., attachments=[media_id])``."""
        out = await self._rest.call("POST", "/v1/media", files={"file": (name, data, "application/octet-stream")})
        return Upload.model_validate(out)

    async def download(self, media: str | Attachment | Upload, *, thumbnail: bool = False) -> bytes:
        """The bytes of an upload or attachment (by id, with the bearer token): the
        uploader, and readers of a conversation showing it; else :class:`NotFound`."""
        media_id = media if isinstance(media, str) else media.media_id
        path = f"/v1/media/{media_id}" + ("/thumbnail" if thumbnail else "")
        return await self._rest.call_bytes("GET", path)

    async def leave(self, conv: str) -> None:
        await self._rest.call("DELETE", f"/v1/conversations/{conv}/members/{self.user_id}")
