"""The write path: a batch of send commands becomes events in ONE transaction.

Per batch (one ``write_tx``: on SQLite the whole transaction is one hop to its writer
thread): validate, find events already stored under the same idempotency key,
check membership, role and archived state (``permissions.py``, the ``post`` row), allocate
every conversation's seqs (``Store.allocate_many``: one UPDATE ... RETURNING for the batch;
the membership check locked the rows in id order, so concurrent replicas never deadlock) and
insert all new events. The caller answers the senders, publishes the events and only then
acks the commands.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chat_common.db import write_tx
from chat_proto.commands import SendCommand
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.events import Event
from chat_proto.timefmt import now_ts
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from chat_messages import privacy_store
from chat_messages.permissions import hidden, refusal
from chat_messages.rules import clean_body
from chat_messages.store import SendKey, Store


@dataclass
class Outcome:
    event: Event | None = None
    created: bool = False
    error: ChatError | None = None


@dataclass
class BatchResult:
    outcomes: list[Outcome]
    new_events: list[Event] = field(default_factory=list)


class Writer:
    def __init__(self, store: Store, max_body_codepoints: int = 4000) -> None:
        self.store = store
        self.max_body = max_body_codepoints

    def _validate(self, cmd: SendCommand) -> str:
        # The attachments were resolved by the media service (the sender's own uploads)
        # before the gateway queued the command; with attachments the body may be empty.
        return clean_body(cmd.body, self.max_body, allow_empty=bool(cmd.attachments))

    async def write_batch(self, cmds: list[SendCommand], *, maybe_replays: bool = True) -> BatchResult:
        """Store a batch. With ``maybe_replays=False`` (no command was delivered before, so
        JetStream's de-duplication window already dropped recent resends) the batch is
        inserted without looking up the idempotency keys first; a replay from beyond that
        window then violates the unique key, the transaction rolls back whole (seqs
        included) and the batch is written again the careful way."""
        if not maybe_replays:
            try:
                return await self._write(cmds, look_up=False)
            except IntegrityError:
                pass
        return await self._write(cmds, look_up=True)

    async def _write(self, cmds: list[SendCommand], *, look_up: bool) -> BatchResult:
        outcomes = [Outcome() for _ in cmds]
        bodies: dict[int, str] = {}
        for i, cmd in enumerate(cmds):
            try:
                bodies[i] = self._validate(cmd)
            except ChatError as err:
                outcomes[i].error = err
        keys: dict[int, SendKey] = {i: (cmds[i].conv, cmds[i].sender, cmds[i].client_msg_id) for i in bodies}
        # The transaction runs whole in one hop (write_tx): on SQLite on its writer thread.
        new_events, first_of = await write_tx(self.store.engine, self._tx, cmds, bodies, keys, look_up, outcomes)
        for i, key in keys.items():
            if outcomes[i].event is None and outcomes[i].error is None:
                earlier = outcomes[first_of[key]]
                outcomes[i].event, outcomes[i].error = earlier.event, earlier.error
        return BatchResult(outcomes, new_events)

    def _tx(
        self,
        conn: Connection,
        cmds: list[SendCommand],
        bodies: dict[int, str],
        keys: dict[int, SendKey],
        look_up: bool,
        outcomes: list[Outcome],
    ) -> tuple[list[Event], dict[SendKey, int]]:
        """The write transaction (synchronous SQLAlchemy: see ``write_tx``). Fills
        ``outcomes``; returns the new events and, per key, the command that stored it."""
        existing = self.store.existing_sends(conn, keys.values()) if look_up else {}
        kinds, roles = self.store.senders_roles(conn, ((k[0], k[1]) for k in keys.values()))
        first_of: dict[SendKey, int] = {}
        pending: dict[str, list[int]] = {}
        for i, key in keys.items():
            if key in existing:
                outcomes[i].event = existing[key]
                continue
            if key in first_of:  # same key twice in one batch: answered like a replay
                continue
            refusal = self._authorize(key, roles, kinds)
            if refusal is not None:
                outcomes[i].error = refusal
                continue
            first_of[key] = i
            pending.setdefault(key[0], []).append(i)
        self._check_blocks(conn, cmds, pending, kinds, outcomes)
        self._check_replies(conn, cmds, pending, outcomes)
        ts = now_ts()
        # senders_roles locked every conversation of the batch (PostgreSQL, in id order)
        firsts = self.store.allocate_many(conn, {conv: len(idx) for conv, idx in pending.items()})
        new_events: list[Event] = []
        for conv in sorted(pending):
            idx = pending[conv]
            first = firsts[conv]
            for n, i in enumerate(idx):
                cmd = cmds[i]
                ev = Event(
                    conv=conv,
                    seq=first + n,
                    kind="message",
                    sender=cmd.sender,
                    ts=ts,
                    client_msg_id=cmd.client_msg_id,
                    body=bodies[i],
                    attachments=cmd.attachments,
                    reply_to=cmd.reply_to,
                )
                outcomes[i].event = ev
                outcomes[i].created = True
                new_events.append(ev)
        self.store.insert_events(conn, new_events)
        return new_events, first_of

    @staticmethod
    def _check_blocks(
        conn: Connection,
        cmds: list[SendCommand],
        pending: dict[str, list[int]],
        kinds: dict[str, tuple[str, bool, bool]],
        outcomes: list[Outcome],
    ) -> None:
        """A sender blocked by the other member of a dm may not post there (privacy.py):
        one query for a batch with dm sends, none otherwise. Refused commands leave ``pending``."""
        dms = [c for c in pending if kinds[c][0] == "dm"]
        if not dms:
            return
        senders = {cmds[i].sender for c in dms for i in pending[c]}
        blocked = privacy_store.blocked_in_convs(conn, dms, senders)
        for conv in dms:
            keep = []
            for i in pending[conv]:
                if (conv, cmds[i].sender) in blocked:
                    outcomes[i].error = ChatError(ErrorCode.FORBIDDEN, "this user does not accept your messages")
                else:
                    keep.append(i)
            if keep:
                pending[conv] = keep
            else:
                del pending[conv]

    def _check_replies(
        self, conn: Connection, cmds: list[SendCommand], pending: dict[str, list[int]], outcomes: list[Outcome]
    ) -> None:
        """``reply_to`` must be the seq of a ``message`` of the same conversation (deleted
        or not): one query for all of a batch's replies, none for a batch without any.
        Refused commands leave ``pending``."""
        replies = {(cmds[i].conv, cmds[i].reply_to) for idx in pending.values() for i in idx if cmds[i].reply_to}
        if not replies:
            return
        found = self.store.message_seqs(conn, ((c, s) for c, s in replies if s is not None))
        for conv in list(pending):
            keep = []
            for i in pending[conv]:
                if cmds[i].reply_to is not None and (conv, cmds[i].reply_to) not in found:
                    outcomes[i].error = ChatError(ErrorCode.INVALID, "reply_to is not a message of this conversation")
                else:
                    keep.append(i)
            if keep:
                pending[conv] = keep
            else:
                del pending[conv]

    @staticmethod
    def _authorize(
        key: SendKey, roles: dict[tuple[str, str], str], kinds: dict[str, tuple[str, bool, bool]]
    ) -> ChatError | None:
        """The permission matrix's ``post``: non-members 404 (403 on a public channel),
        guests 403, anyone 403 while the conversation is archived."""
        conv, sender, _ = key
        if conv not in kinds:
            return hidden()
        kind, private, archived = kinds[conv]
        return refusal("post", kind, private, roles.get((conv, sender)), archived)
