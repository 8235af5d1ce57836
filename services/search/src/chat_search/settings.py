"""Settings of the search service (env prefix ``SEARCH_``)."""

from __future__ import annotations

from typing import Literal

from chat_common.settings import ServiceSettings
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict


class SearchSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SEARCH_")

    host: str = "127.0.0.1"
    port: int = 8085
    rpc_timeout_s: float = Field(default=5.0, gt=0)
    # fts: SQLite FTS5 in FTS_PATH (the embedded default); opensearch: OPENSEARCH_URL
    backend: Literal["fts", "opensearch"] = "fts"
    fts_path: str = "data/search.db"
    # read-only SQLite connections for searches (0: searches share the writer's connection)
    fts_readers: int = Field(default=3, ge=0, le=16)
    # the FTS index writer's SQLite page cache
    fts_cache_mib: int = Field(default=64, ge=2, le=4096)
    # the FTS index file is read through a memory map of up to this size (0: read() calls)
    fts_mmap_mib: int = Field(default=1024, ge=0, le=1 << 20)
    opensearch_url: str = ""
    opensearch_user: str = ""
    opensearch_password: SecretStr = SecretStr("")
    index_prefix: str = Field(default="chat-messages", pattern=r"^[a-z0-9][a-z0-9_-]{0,60}$")
    # of indices created from now on (the template): raise replicas on a multi-node cluster
    index_shards: int = Field(default=1, ge=1, le=64)
    index_replicas: int = Field(default=0, ge=0, le=8)
    # how soon an indexed message is searchable (the index's refresh_interval; applied to the
    # template and, at start, to the live index). Shorter: fresher results, more refresh work.
    refresh_ms: int = Field(default=500, ge=100, le=60_000)
    # events indexed per bulk write, at most (and at most this long a wait for more)
    batch: int = Field(default=2000, ge=1, le=5000)
    batch_window_s: float = Field(default=0.05, ge=0)
    # bulk writes in flight at once (their order does not matter: documents carry versions)
    inflight: int = Field(default=2, ge=1, le=8)
    # a caller's conversations (the filter) are asked of messages at most this often; when
    # messages is down, the last answer keeps being used (search stays up, read-only)
    convs_cache_s: float = Field(default=5.0, ge=0)
    # how often the indexer compares its position with the event stream for lost events
    # (a rebuild from the messages store follows a loss); also checked at start
    gap_check_s: float = Field(default=60.0, gt=0)
    # an event a replica took and did not settle within this is delivered again (a killed
    # replica, a NATS restart); a live replica keeps what it holds alive meanwhile
    ack_wait_s: float = Field(default=10.0, ge=1, le=600)
    # a rebuild whose heartbeat is older than this is taken over by the next one
    rebuild_stale_s: float = Field(default=60.0, ge=5)

    @model_validator(mode="after")
    def _backend(self) -> SearchSettings:
        if self.backend == "opensearch" and not self.opensearch_url:
            raise ValueError("SEARCH_BACKEND=opensearch needs SEARCH_OPENSEARCH_URL")
        return self
