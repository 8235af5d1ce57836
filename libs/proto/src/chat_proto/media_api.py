"""The media service's API (``svc.media.*``) and its attachment objects (PROTOCOL §5).

An attachment as stored in an event: ``{media_id, mime, size, name, width?, height?}``
(``chat_proto.events.Attachment``); clients get ``url`` and ``thumbnail_url`` added by the
gateway (short-lived, signed for the reader). A ``send`` names its attachments by id; the
gateway asks the media service to resolve them (only media the sender uploaded, not
deleted), and the command carries the resolved objects.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from chat_proto.events import Attachment

MEDIA_ID = r"^[A-Za-z0-9_-]{1,64}$"
MAX_ATTACHMENTS = 10


def _unique(ids: list[str]) -> list[str]:
    if len(set(ids)) != len(ids):
        raise ValueError("attachments must be unique")
    return ids


MediaId = Annotated[str, Field(pattern=MEDIA_ID)]
# What ``send`` and ``POST …/messages`` take: 1..10 unique ids of the sender's uploads.
AttachmentIds = Annotated[
    list[MediaId],
    Field(min_length=1, max_length=MAX_ATTACHMENTS, json_schema_extra={"uniqueItems": True}),
    AfterValidator(_unique),
]


class _Req(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResolveAttachments(_Req):
    """The caller's (``Chat-User``) uploads ``media_ids``, in order, as attachment objects;
    any id that is not an upload of the caller's (or is gone) → ``not_found``."""

    media_ids: AttachmentIds


class Attachments(BaseModel):
    attachments: list[Attachment]
