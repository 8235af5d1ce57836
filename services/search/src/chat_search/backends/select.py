"""The configured index backend: OpenSearch, or SQLite FTS5 (the embedded default)."""

from __future__ import annotations

from pathlib import Path

from chat_search.backends import SearchBackend
from chat_search.settings import SearchSettings


def backend_from(s: SearchSettings) -> SearchBackend:
    if s.backend == "opensearch":
        from chat_search.backends.opensearch import OpenSearchBackend

        auth = (s.opensearch_user, s.opensearch_password.get_secret_value()) if s.opensearch_user else None
        return OpenSearchBackend(
            s.opensearch_url,
            index_prefix=s.index_prefix,
            shards=s.index_shards,
            replicas=s.index_replicas,
            refresh_ms=s.refresh_ms,
            http_auth=auth,
        )
    from chat_search.backends.fts import FtsBackend

    Path(s.fts_path).parent.mkdir(parents=True, exist_ok=True)
    return FtsBackend(s.fts_path, readers=s.fts_readers, cache_mib=s.fts_cache_mib, mmap_mib=s.fts_mmap_mib)
