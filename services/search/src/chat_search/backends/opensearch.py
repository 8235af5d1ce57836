"""OpenSearch search backend (opensearch-py's sync client, run in worker threads).

Layout, created by :meth:`OpenSearchBackend.start` (idempotent):

- an index template ``{prefix}-template`` for ``{prefix}-*``: 1 shard, 0 replicas (a small
  single node; both configurable), strict mappings: ``conv``/``sender`` keyword, ``seq``
  long, ``ts`` date, ``body`` text (``standard``), ``body_cjk`` the body again with the
  built-in ``cjk`` analyzer (overlapping bigrams, so a word is found inside a CJK sentence),
  only in documents whose body is not ASCII (most chat text is: one analysis, not two);
  indices of template version 1 have a ``body.cjk`` multi-field instead, for every
  document (searched too; at start such an index gains ``body_cjk``; a rebuild retires it),
  ``attachments`` text with a ``file_name`` analyzer (runs of letters and digits,
  lowercased: ``report-2024.pdf`` is ``report 2024 pdf``), ``event`` an object with
  ``enabled: false`` (kept in ``_source`` without the fields stored beside it,
  :meth:`Doc.stored_event`; returned in hits whole again; never indexed);
- the concrete index ``{prefix}-000001`` behind the alias ``{prefix}``. Every read and write
  goes through the alias, so a rebuild can fill ``{prefix}-000002`` and swap the alias.

Documents have the id ``f"{conv}:{seq}"`` and an external version (:attr:`Doc.ver`): an
upsert is an ``index`` action with ``version_type: external_gte`` and a removal a ``delete``
with ``version_type: external``, so OpenSearch itself refuses anything older than what it
holds (a 409 item, which is success here) and remembers deletes for ``index.gc_deletes``
(10 minutes). A delete of a missing id is fine.

Beside the messages: the index ``{prefix}.meta`` (not matched by the template) holds the
stream positions (``position:<stream>``, external version = the stream sequence, so the
highest write wins) and the rebuild lock (``rebuild``: owner, heartbeat, progress; taken
with ``op_type: create``, renewed and taken over with ``if_seq_no``).

Rebuild: a new index ``{prefix}-00000N`` (the template applies) behind the alias
``{prefix}-next``. Every process checks for that alias at most once per
:data:`NEXT_CHECK_S` before a write and, while it exists, writes each action to it too
(``require_alias``, so a write after the alias is gone never auto-creates an index); the
rebuild waits :data:`NEXT_SETTLE_S` after creating it before it reads the store, so that
every live write from then on reaches the new index. The finish is one atomic
``_aliases`` call (``{prefix}`` moves to the new index, ``{prefix}-next`` goes away), then
the old index is deleted.

Queries (user text only ever lands in a ``query`` *value*): a ``bool`` query whose
``filter`` always holds ``terms: {conv: convs}`` (and ``term: {conv}`` to narrow), and whose
``should`` holds one ``multi_match`` of type ``phrase`` per term over the fixed fields
``body``, ``body_cjk``, ``body.cjk``, ``attachments`` (``minimum_should_match: 1``). ``multi_match``
analyzes its text and never parses it, so no operator, field name, wildcard or regex typed
by a user means anything. Budget: ``timeout: 2s`` in the request (a slow shard answers with
what it has) and a 2.5 s client timeout.

Order: ``[_score desc, ts desc, conv asc, seq asc]`` and ``search_after`` with the last
hit's sort values, which the cursor carries. Highlights are made here from the page's
bodies by :mod:`._highlight` (the same as FTS5's): OpenSearch's highlighter cost 10 to 20 %
of a query's server time (bench/README.md), and a page is at most 100 bodies.

The sync client in threads: ``aiohttp`` (needed by opensearch-py's async client) is not a
dependency of the workspace; a request ties up one worker thread for at most 2.5 s.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import AuthorizationException, ConflictError, NotFoundError, RequestError, TransportError
from opensearchpy.exceptions import ConnectionError as OSConnectionError

from chat_search.backends import (
    UNVERSIONED_DELETE,
    BackendUnavailable,
    Doc,
    Hit,
    Page,
    Position,
    QueryInvalid,
    RebuildBusy,
    RebuildTarget,
    Removal,
    clamp_limit,
    whole_event,
)
from chat_search.backends._highlight import highlight
from chat_search.backends._query import ParsedQuery, decode_cursor, encode_cursor, parse_query

NAME = "opensearch"
# body.cjk: the multi-field of indices made by template version 1 (a rebuild retires it)
FIELDS = ("body", "body_cjk", "body.cjk", "attachments")
BODY_CJK = {"type": "text", "analyzer": "cjk"}
MERGE_POLICY = {"segments_per_tier": 4, "floor_segment": "32mb"}
SEARCH_TIMEOUT = "2s"
REQUEST_TIMEOUT = 2.5
WRITE_TIMEOUT = 30.0
NEXT_CHECK_S = 1.0
"""How stale a process's knowledge of a running rebuild may be (one alias check per period)."""
NEXT_SETTLE_S = 2 * NEXT_CHECK_S + 0.5
"""A rebuild waits this long after creating its index before reading the store."""
log = logging.getLogger("chat.search.opensearch")

# Root causes of a search that a user's input (not the cluster) made fail: a 422, not a 503.
_QUERY_ERRORS = frozenset(
    {"too_many_clauses", "query_shard_exception", "parse_exception", "illegal_argument_exception"}
)


def index_template(prefix: str, shards: int = 1, replicas: int = 0, refresh_ms: int = 500) -> dict[str, Any]:
    """The composable index template for ``{prefix}-*``."""
    return {
        "index_patterns": [f"{prefix}-*"],
        "priority": 100,
        "_meta": {"owner": "chat-search", "version": 2},
        "template": {
            "settings": {
                "number_of_shards": shards,
                "number_of_replicas": replicas,
                # how soon a write is searchable (OpenSearch's default is 1 s)
                "refresh_interval": f"{refresh_ms}ms",
                "gc_deletes": "10m",  # how long a delete's version is remembered (see Versions)
                # few segments: the membership filter's terms are looked up in every one
                # (bench/README.md: 21 -> 5 segments took search p99 from 147 to 87 ms)
                "merge": {"policy": MERGE_POLICY},
                "analysis": {
                    "tokenizer": {"file_name_parts": {"type": "pattern", "pattern": "[^\\p{L}\\p{N}]+"}},
                    "analyzer": {
                        "file_name": {"type": "custom", "tokenizer": "file_name_parts", "filter": ["lowercase"]}
                    },
                },
            },
            "mappings": {
                "dynamic": "strict",
                "properties": {
                    "conv": {"type": "keyword"},
                    "seq": {"type": "long"},
                    "sender": {"type": "keyword"},
                    "ts": {"type": "date", "format": "strict_date_optional_time||epoch_millis"},
                    "body": {"type": "text", "analyzer": "standard"},
                    # the body again for CJK bigrams, only in documents with non-ASCII text
                    "body_cjk": BODY_CJK,
                    "attachments": {"type": "text", "analyzer": "file_name"},
                    "event": {"type": "object", "enabled": False},
                },
            },
        },
    }


class OpenSearchBackend:
    """:class:`~chat_search.backends.SearchBackend` on OpenSearch.

    ``hosts``: URLs (``http://127.0.0.1:9200``) or opensearch-py host dicts.
    ``index_prefix``: the alias name, and the prefix of the concrete indices and the
    template (tests give each their own). ``refresh``: make every write visible before it
    returns (tests; the service relies on the index's refresh interval, ``refresh_ms``,
    set in the template and, at start, on the index behind the alias). ``client_options`` go to
    :class:`opensearchpy.OpenSearch` (``http_auth``, ``use_ssl``, ``ca_certs``...)."""

    def __init__(
        self,
        hosts: str | list[Any],
        *,
        index_prefix: str = "chat-messages",
        refresh: bool = False,
        shards: int = 1,
        replicas: int = 0,
        refresh_ms: int = 500,
        **client_options: Any,
    ) -> None:
        self.alias = index_prefix
        self.next_alias = f"{index_prefix}-next"
        self.meta_index = f"{index_prefix}.meta"
        self.first_index = f"{index_prefix}-000001"
        self._replicas = replicas
        self._next_checked = -NEXT_CHECK_S
        self._next_active = False
        self.template_name = f"{index_prefix}-template"
        self._refresh_ms = refresh_ms
        self._template = index_template(index_prefix, shards, replicas, refresh_ms)
        self._refresh = "true" if refresh else "false"
        self._body_cjk = True  # False: the live index has no body_cjk (and cannot get it)
        options: dict[str, Any] = {"timeout": REQUEST_TIMEOUT, "max_retries": 0, "retry_on_timeout": False}
        options.update(client_options)
        self._client = OpenSearch(hosts=[hosts] if isinstance(hosts, str) else hosts, **options)

    # -- plumbing -------------------------------------------------------------------------
    async def _call(self, fn: Callable[..., Any], /, *, user_query: bool = False, **kwargs: Any) -> Any:
        """``fn(**kwargs)`` in a worker thread. Unreachable, overloaded or failing →
        BackendUnavailable; with ``user_query``, a search the user's input made fail (400,
        too many clauses...) → QueryInvalid and a missing index → BackendUnavailable."""
        try:
            return await asyncio.to_thread(functools.partial(fn, **kwargs))
        except OSConnectionError as e:  # includes ConnectionTimeout; before TransportError (its base)
            raise BackendUnavailable(f"OpenSearch unreachable: {e}") from e
        except TransportError as e:
            status = e.status_code if isinstance(e.status_code, int) else 500
            if user_query and (status == 400 or _root_causes(e) & _QUERY_ERRORS):
                raise QueryInvalid("the query cannot be searched") from e
            if user_query or status == 429 or status >= 500:
                raise BackendUnavailable(f"OpenSearch failed ({status}): {e.error}") from e
            raise

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        c = self._client
        await self._call(c.indices.put_index_template, name=self.template_name, body=self._template)
        if not await self._call(c.indices.exists, index=self.meta_index):
            meta = {
                "settings": {"number_of_shards": 1, "number_of_replicas": self._replicas},
                "mappings": {"dynamic": False, "properties": {}},
            }
            try:
                await self._call(c.indices.create, index=self.meta_index, body=meta, request_timeout=WRITE_TIMEOUT)
            except RequestError as e:
                if e.error != "resource_already_exists_exception":
                    raise
        if await self._call(c.indices.exists_alias, name=self.alias):
            # an index made before the setting changed follows it (a dynamic setting)
            settings = {"index": {"refresh_interval": f"{self._refresh_ms}ms", "merge": {"policy": MERGE_POLICY}}}
            try:
                await self._call(c.indices.put_settings, index=self.alias, body=settings, request_timeout=WRITE_TIMEOUT)
            except AuthorizationException:  # a user without indices:admin/settings/update
                log.warning("cannot set refresh_interval of the live index; new indices get it from the template")
            # an index of template version 1 has body.cjk for every document instead: it
            # gains the field (adding a field is allowed on a live index)
            mapping = {"properties": {"body_cjk": BODY_CJK}}
            try:
                await self._call(c.indices.put_mapping, index=self.alias, body=mapping, request_timeout=WRITE_TIMEOUT)
            except AuthorizationException:
                log.warning("cannot add body_cjk to the live index; its body.cjk keeps serving until a rebuild")
                self._body_cjk = False
            return
        try:
            body = {"aliases": {self.alias: {"is_write_index": True}}}
            await self._call(c.indices.create, index=self.first_index, body=body, request_timeout=WRITE_TIMEOUT)
        except RequestError as e:
            if e.error != "resource_already_exists_exception":
                raise
            # created meanwhile by another process, or left without its alias: (re)attach it
            if not await self._call(c.indices.exists_alias, name=self.alias):
                await self._call(c.indices.put_alias, index=self.first_index, name=self.alias)
        await self._call(
            c.cluster.health, index=self.alias, wait_for_status="yellow", timeout="30s", request_timeout=WRITE_TIMEOUT
        )

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)

    async def ping(self) -> None:
        try:
            health = await self._call(
                self._client.cluster.health, index=self.alias, timeout="2s", request_timeout=REQUEST_TIMEOUT
            )
        except NotFoundError as e:
            raise BackendUnavailable(f"no index behind the alias {self.alias}") from e
        except TransportError as e:
            raise BackendUnavailable(f"OpenSearch: {e}") from e
        if health.get("status") not in ("green", "yellow"):
            raise BackendUnavailable(f"index {self.alias} is {health.get('status')}")

    # -- writes ---------------------------------------------------------------------------
    async def write(self, docs: list[Doc], removals: list[Removal], position: Position | None = None) -> None:
        targets = [self.alias]
        if await self._rebuilding():
            targets.append(self.next_alias)
        actions = _actions(docs, removals, targets, body_cjk=self._body_cjk)
        if position is not None:
            actions.append(
                {
                    "index": {
                        "_index": self.meta_index,
                        "_id": f"position:{position.stream}",
                        "version": position.seq,
                        "version_type": "external_gte",
                    }
                }
            )
            actions.append({"stream": position.stream, "seq": position.seq})
        await self._bulk(actions)

    async def upsert(self, docs: list[Doc]) -> None:
        await self.write(docs, [])

    async def delete(self, keys: list[tuple[str, int]]) -> None:
        await self.write([], [Removal(c, s, UNVERSIONED_DELETE) for c, s in keys])

    async def delete_conv(self, conv: str) -> None:
        await self._call(
            self._client.delete_by_query,
            index=self.alias,
            body={"query": {"term": {"conv": conv}}},
            conflicts="proceed",
            refresh=self._refresh,
            request_timeout=WRITE_TIMEOUT,
        )

    async def _rebuilding(self) -> bool:
        """Whether a rebuild's index exists (``{prefix}-next``), known at most NEXT_CHECK_S old."""
        now = time.monotonic()
        if now - self._next_checked >= NEXT_CHECK_S:
            self._next_active = bool(await self._call(self._client.indices.exists_alias, name=self.next_alias))
            self._next_checked = now
        return self._next_active

    async def _bulk(self, actions: list[dict[str, Any]]) -> None:
        """One bulk request. Items refused for load (429, 5xx) → BackendUnavailable (retry
        later); refused as malformed → ValueError (retrying cannot help). Fine: a delete's
        404, a version conflict (409: a newer version is there), and a write to the rebuild's
        alias after it went away (404)."""
        if not actions:
            return
        resp = await self._call(self._client.bulk, body=actions, refresh=self._refresh, request_timeout=WRITE_TIMEOUT)
        if not resp.get("errors"):
            return
        failed = []
        for op in resp["items"]:
            for kind, item in op.items():
                status = item.get("status", 500)
                if status < 300 or status == 409 or (kind == "delete" and status == 404 and "error" not in item):
                    continue
                if status == 404 and item.get("_index") == self.next_alias:
                    continue
                failed.append(item)
        if any(item.get("status") == 429 or item.get("status", 500) >= 500 for item in failed):
            raise BackendUnavailable(f"OpenSearch refused {len(failed)} writes: {failed[0]}")
        if failed:
            raise ValueError(f"OpenSearch rejected {len(failed)} documents: {failed[0]}")

    async def position(self, stream: str) -> int | None:
        try:
            doc = await self._call(self._client.get, index=self.meta_index, id=f"position:{stream}")
        except NotFoundError:
            return None
        return int(doc["_source"]["seq"])

    # -- rebuild --------------------------------------------------------------------------
    async def rebuild_state(self) -> dict[str, Any] | None:
        lock = await self._lock()
        return dict(lock["_source"]) if lock is not None else None

    async def _lock(self) -> dict[str, Any] | None:
        try:
            return dict(await self._call(self._client.get, index=self.meta_index, id="rebuild"))
        except NotFoundError:
            return None

    async def begin_rebuild(self, owner: str, stale_after_s: float = 60.0) -> RebuildTarget:
        c = self._client
        now = time.time()
        state: dict[str, Any] = {"owner": owner, "index": "", "started": now, "heartbeat": now, "done": 0, "total": 0}
        lock = await self._lock()
        try:
            if lock is None:
                put = await self._call(
                    c.index, index=self.meta_index, id="rebuild", body=state, op_type="create", refresh="true"
                )
            else:
                running = lock["_source"]
                if now - float(running.get("heartbeat", 0)) < stale_after_s:
                    owner_, since = running.get("owner"), running.get("started")
                    raise RebuildBusy(f"a rebuild by {owner_} is running (since {since})")
                put = await self._call(
                    c.index,
                    index=self.meta_index,
                    id="rebuild",
                    body=state,
                    if_seq_no=lock["_seq_no"],
                    if_primary_term=lock["_primary_term"],
                    refresh="true",
                )
                if running.get("index"):  # the stale one's half-built index
                    await self._drop_next(str(running["index"]))
        except ConflictError as e:
            raise RebuildBusy("another rebuild took the lock first") from e
        target = _OpenSearchRebuild(self, owner, state, put["_seq_no"], put["_primary_term"])
        try:
            index = await self._next_index_name()
            state["index"] = index
            await target._save()
            body: dict[str, Any] = {"aliases": {self.next_alias: {}}}
            await self._call(c.indices.create, index=index, body=body, request_timeout=WRITE_TIMEOUT)
            await self._call(
                c.cluster.health, index=index, wait_for_status="yellow", timeout="30s", request_timeout=WRITE_TIMEOUT
            )
            self._next_checked = -NEXT_CHECK_S
            await asyncio.sleep(NEXT_SETTLE_S)  # every process's next write sees the alias
        except BaseException:
            await target.abort()
            raise
        return target

    async def _next_index_name(self) -> str:
        names = await self._call(self._client.indices.get_alias, index=f"{self.alias}-*")
        numbers = [int(m.group(1)) for n in names if (m := re.fullmatch(re.escape(self.alias) + r"-(\d{6})", n))]
        return f"{self.alias}-{max(numbers, default=0) + 1:06d}"

    async def _drop_next(self, index: str) -> None:
        """Delete a rebuild's index unless it is the live one (and with it ``{prefix}-next``)."""
        try:
            holders = await self._call(self._client.indices.get_alias, name=self.alias)
        except NotFoundError:
            holders = {}
        if index in holders:
            return
        try:
            await self._call(self._client.indices.delete, index=index, request_timeout=WRITE_TIMEOUT)
        except NotFoundError:
            pass

    # -- search ---------------------------------------------------------------------------
    async def search(self, q: str, convs: list[str], limit: int, cursor: str | None, conv: str | None = None) -> Page:
        parsed = parse_query(q, conv)
        after = decode_cursor(cursor, NAME, parsed.fingerprint) if cursor is not None else None
        limit = clamp_limit(limit)
        members = sorted(set(convs))
        if not members or (conv is not None and conv not in members):
            return Page([], None)
        body = search_body(parsed, members, conv, list(after) if after else None, limit + 1)
        resp = await self._call(
            self._client.search, user_query=True, index=self.alias, body=body, request_timeout=REQUEST_TIMEOUT
        )
        raw = resp["hits"]["hits"]
        hits = [
            Hit(_event_of(h["_source"]), highlight(str(h["_source"].get("body", "")), parsed.terms))
            for h in raw[:limit]
        ]
        next_cursor = None
        if len(raw) > limit:
            next_cursor = encode_cursor(NAME, parsed.fingerprint, raw[limit - 1]["sort"])
        return Page(hits, next_cursor)


class _OpenSearchRebuild:
    def __init__(self, backend: OpenSearchBackend, owner: str, state: dict[str, Any], seq_no: int, term: int) -> None:
        self.b, self.owner, self.state = backend, owner, state
        self._seq_no, self._term = seq_no, term

    async def _save(self) -> None:
        """Renew the lock document (only if it is still this rebuild's)."""
        try:
            put = await self.b._call(
                self.b._client.index,
                index=self.b.meta_index,
                id="rebuild",
                body=self.state,
                if_seq_no=self._seq_no,
                if_primary_term=self._term,
                refresh="true",
            )
        except (ConflictError, NotFoundError) as e:
            raise RebuildBusy("this rebuild was taken over (its heartbeat went stale)") from e
        self._seq_no, self._term = put["_seq_no"], put["_primary_term"]

    async def write(self, docs: list[Doc], removals: list[Removal]) -> None:
        await self.b._bulk(_actions(docs, removals, [self.state["index"]]))

    async def progress(self, done: int, total: int) -> None:
        self.state.update(heartbeat=time.time(), done=done, total=total)
        await self._save()

    async def finish(self, position: Position | None) -> None:
        b, index = self.b, self.state["index"]
        await self.progress(self.state["done"], self.state["total"])  # still ours
        await b._call(b._client.indices.refresh, index=index, request_timeout=WRITE_TIMEOUT)
        try:
            old = list(await b._call(b._client.indices.get_alias, name=b.alias))
        except NotFoundError:
            old = []
        actions: list[dict[str, Any]] = [{"remove": {"index": i, "alias": b.alias}} for i in old if i != index]
        actions += [
            {"add": {"index": index, "alias": b.alias, "is_write_index": True}},
            {"remove": {"index": index, "alias": b.next_alias}},
        ]
        await b._call(b._client.indices.update_aliases, body={"actions": actions}, request_timeout=WRITE_TIMEOUT)
        for i in old:
            if i != index:
                try:
                    await b._call(b._client.indices.delete, index=i, request_timeout=WRITE_TIMEOUT)
                except NotFoundError:
                    pass
        if position is not None:
            await b.write([], [], position)
        await self._release()

    async def abort(self) -> None:
        if self.state.get("index"):
            await self.b._drop_next(self.state["index"])
        await self._release()

    async def _release(self) -> None:
        try:
            await self.b._call(
                self.b._client.delete,
                index=self.b.meta_index,
                id="rebuild",
                if_seq_no=self._seq_no,
                if_primary_term=self._term,
                refresh="true",
            )
        except (ConflictError, NotFoundError):
            pass  # taken over meanwhile: the lock is the new owner's


def _actions(
    docs: list[Doc], removals: list[Removal], targets: list[str], body_cjk: bool = True
) -> list[dict[str, Any]]:
    """Bulk actions writing ``docs`` and ``removals`` to each of ``targets`` (the first is the
    live alias or a concrete index; a second is the rebuild's alias, required to exist).
    ``body_cjk``: a document with non-ASCII text has its body in ``body_cjk`` too."""
    out: list[dict[str, Any]] = []
    for n, target in enumerate(targets):
        extra = {"require_alias": True} if n else {}
        for d in docs:
            meta = {"_index": target, "_id": f"{d.conv}:{d.seq}", "version": d.ver, "version_type": "external_gte"}
            out.append({"index": {**meta, **extra}})
            out.append(
                {
                    "conv": d.conv,
                    "seq": d.seq,
                    "sender": d.sender,
                    "ts": d.ts,
                    "body": d.body,
                    "attachments": list(d.attachments),
                    "event": d.stored_event(),
                    **({} if not body_cjk or d.body.isascii() else {"body_cjk": d.body}),
                }
            )
        for r in removals:
            meta = {"_index": target, "_id": f"{r.conv}:{r.seq}", "version": r.version, "version_type": "external"}
            out.append({"delete": meta})
    return out


def search_body(
    parsed: ParsedQuery, members: list[str], conv: str | None, after: list[Any] | None, size: int
) -> dict[str, Any]:
    """The search request. The user's terms appear only as ``multi_match`` query values."""
    filters: list[dict[str, Any]] = [{"terms": {"conv": members}}]
    if conv is not None:
        filters.append({"term": {"conv": conv}})
    should = [{"multi_match": {"query": t.text, "type": "phrase", "fields": list(FIELDS)}} for t in parsed.terms]
    body: dict[str, Any] = {
        "query": {"bool": {"filter": filters, "should": should, "minimum_should_match": 1}},
        "sort": [{"_score": "desc"}, {"ts": "desc"}, {"conv": "asc"}, {"seq": "asc"}],
        "size": size,
        "timeout": SEARCH_TIMEOUT,
        "track_total_hits": False,
        "_source": ["event", "conv", "seq", "sender", "ts", "body"],
    }
    if after is not None:
        body["search_after"] = after
    return body


def _event_of(src: dict[str, Any]) -> dict[str, Any]:
    return whole_event(
        src.get("event") or {},
        str(src.get("conv", "")),
        int(src.get("seq", 0)),
        str(src.get("sender", "")),
        str(src.get("ts", "")),
        str(src.get("body", "")),
    )


def _root_causes(e: TransportError) -> set[str]:
    info = e.info if isinstance(e.info, dict) else {}
    error = info.get("error", {})
    if not isinstance(error, dict):
        return set()
    causes = [error, *error.get("root_cause", []), *(f.get("reason", {}) for f in error.get("failed_shards", []))]
    return {str(c.get("type")) for c in causes if isinstance(c, dict)}
