"""The test OpenSearch server (chat_devtools.opensearch) against opensearch-py.

OpenSearch 2.19.1 embedded by codelibs' runner, from jars that scripts/test.sh installs
with Maven. Missing jars: a failure under CI=true, a skip elsewhere (``opensearch_home``).

The analysis the search service needs, with what OpenSearch has built in (no analysis
plugin is on Maven Central): the ``cjk`` analyzer (CJK bigrams) for message text, and a
``pattern`` tokenizer for file names, so that ``foo.png`` is found by ``foo.png`` and by
``foo`` but not by ``fo``, and ``food.png`` is not found by ``foo``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chat_devtools import _proc
from chat_devtools.opensearch import OPENSEARCH_VERSION, OpenSearchServer
from opensearchpy import OpenSearch

pytestmark = pytest.mark.integration

INDEX_BODY: dict[str, Any] = {
    "settings": {
        "number_of_shards": 1,
        "number_of_replicas": 0,
        "analysis": {
            "tokenizer": {
                # runs of letters and digits: "IMG_2024-01.final.PDF" -> img 2024 01 final pdf
                "file_name_parts": {"type": "pattern", "pattern": "[^\\p{L}\\p{N}]+"},
            },
            "analyzer": {
                "file_name": {"type": "custom", "tokenizer": "file_name_parts", "filter": ["lowercase"]},
            },
            "normalizer": {
                "lowercase": {"type": "custom", "filter": ["lowercase"]},
            },
        },
    },
    "mappings": {
        "dynamic": "strict",
        "properties": {
            "text": {"type": "text", "analyzer": "cjk"},
            "file_name": {
                "type": "text",
                "analyzer": "file_name",
                "fields": {"raw": {"type": "keyword", "normalizer": "lowercase"}},
            },
            "conversation_id": {"type": "keyword"},
        },
    },
}

DOCS: dict[str, dict[str, str]] = {
    "png": {"file_name": "foo.png", "text": "design mockup"},
    "txt": {"file_name": "foo.txt", "text": "meeting notes"},
    "food": {"file_name": "food.png", "text": "lunch photo"},
    "report": {"file_name": "IMG_2024-01-05_Report.Final.PDF", "text": "quarterly report"},
    "zh": {"text": "我们明天去北京开会"},
    "zh2": {"text": "上海的天气很好"},
    "ja": {"text": "東京タワーに行きました"},
    "ko": {"text": "서울에서 만나요"},
    "en": {"text": "The quick brown fox jumps over the lazy dog"},
}


@pytest.fixture(scope="module")
def server(opensearch_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenSearchServer]:
    """This module's own node: one of its tests kills and restarts it."""
    server = OpenSearchServer(tmp_path_factory.mktemp("opensearch"), home=opensearch_home).start()
    yield server
    server.stop()
    assert not server.running()


@pytest.fixture
def client(server: OpenSearchServer) -> OpenSearch:
    return server.client()


@pytest.fixture(scope="module")
def docs_index(server: OpenSearchServer) -> str:
    """An index with the mapping above and DOCS in it (refreshed: searchable at once)."""
    client = server.client()
    name = f"messages-{uuid.uuid4().hex[:8]}"
    client.indices.create(index=name, body=INDEX_BODY)
    actions: list[dict[str, Any]] = []
    for doc_id, doc in DOCS.items():
        actions += [{"index": {"_index": name, "_id": doc_id}}, {**doc, "conversation_id": "c1"}]
    resp = client.bulk(body=actions, refresh="true")
    assert not resp["errors"], resp
    return name


def _ids(client: OpenSearch, index: str, query: dict[str, Any]) -> set[str]:
    resp = client.search(index=index, body={"query": query, "size": 50})
    return {hit["_id"] for hit in resp["hits"]["hits"]}


def _tokens(client: OpenSearch, index: str, analyzer: str, text: str) -> list[str]:
    resp = client.indices.analyze(index=index, body={"analyzer": analyzer, "text": text})
    return [t["token"] for t in resp["tokens"]]


def test_cluster_health_plain_http_on_loopback(server: OpenSearchServer, client: OpenSearch) -> None:
    assert _proc.http_status(f"{server.url}/_cluster/health?wait_for_status=yellow&timeout=5s") == 200
    health = client.cluster.health()
    assert health["status"] in {"green", "yellow"}
    assert health["number_of_nodes"] == 1 and health["cluster_name"] == server.cluster_name
    assert client.info()["version"]["number"] == OPENSEARCH_VERSION

    # no security plugin: plain HTTP, no credentials, no https
    plugins = {p["component"] for p in client.cat.plugins(format="json")}
    assert "org.opensearch.analysis.common.CommonAnalysisPlugin" in plugins
    assert not any("security" in p.lower() for p in plugins), plugins

    # both listeners on 127.0.0.1 and on our ports (any port: the runner's 9299 ceiling is lifted)
    (node,) = client.nodes.info(node_id="_local", metric="http,transport")["nodes"].values()
    assert node["http"]["bound_address"] == [f"127.0.0.1:{server.port}"]
    assert node["transport"]["bound_address"] == [f"127.0.0.1:{server.transport_port}"]
    assert server.running() and server.pid is not None
    rss = server.rss_bytes()
    assert rss is not None and rss < 1 << 30, rss


def test_analyzers(client: OpenSearch, docs_index: str) -> None:
    assert _tokens(client, docs_index, "file_name", "IMG_2024-01.Final.PDF") == ["img", "2024", "01", "final", "pdf"]
    assert _tokens(client, docs_index, "file_name", "foo.png") == ["foo", "png"]
    # cjk: overlapping bigrams of CJK characters, so a word is found inside a sentence
    assert _tokens(client, docs_index, "cjk", "我们明天去北京开会") == [
        "我们", "们明", "明天", "天去", "去北", "北京", "京开", "开会",
    ]  # fmt: skip
    assert _tokens(client, docs_index, "cjk", "The Quick fox") == ["quick", "fox"]  # lowercase, stop words


def test_file_names_are_found_by_name_and_by_part(client: OpenSearch, docs_index: str) -> None:
    def match(q: str) -> set[str]:
        return _ids(client, docs_index, {"match": {"file_name": {"query": q, "operator": "and"}}})

    assert match("foo.png") == {"png"}
    assert match("FOO.PNG") == {"png"}
    assert match("foo") == {"png", "txt"}  # not food.png
    assert match("png") == {"png", "food"}
    assert match("fo") == set()  # whole parts only (no prefix search)
    assert match("report final") == {"report"}
    assert match("img 2024 pdf") == {"report"}
    # the exact name, case-insensitively (keyword sub-field with a lowercase normalizer)
    assert _ids(client, docs_index, {"term": {"file_name.raw": "Foo.PNG"}}) == {"png"}


def test_simple_query_string(client: OpenSearch, docs_index: str) -> None:
    def sqs(q: str) -> set[str]:
        query = {"query": q, "fields": ["text", "file_name"], "default_operator": "and"}
        return _ids(client, docs_index, {"simple_query_string": query})

    assert sqs("foo.png") == {"png"}
    assert sqs("foo") == {"png", "txt"}
    assert sqs("foo -png") == {"txt"}
    assert sqs("report") == {"report"}  # in the text and in the file name
    assert sqs('"quick brown"') == {"en"}
    assert sqs("北京") == {"zh"}
    assert sqs("北京 | 上海") == {"zh", "zh2"}
    assert sqs("我们 -北京") == set()


def test_cjk_word_inside_a_sentence(client: OpenSearch, docs_index: str) -> None:
    def match(q: str) -> set[str]:
        return _ids(client, docs_index, {"match": {"text": {"query": q, "operator": "and"}}})

    assert match("北京") == {"zh"}
    assert match("明天 开会") == {"zh"}  # two words: bigrams 明天 and 开会, both in the text
    # written together they are one run of CJK: 明天, 天开, 开会; 天开 is not in the text,
    # so "all terms" (and) misses it and "any term" (or, match's default) finds it
    assert match("明天开会") == set()
    assert _ids(client, docs_index, {"match": {"text": "明天开会"}}) == {"zh"}
    assert match("东京") == set()  # simplified 东 is not 東 (no script folding)
    assert match("東京") == {"ja"}
    assert match("서울") == {"ko"}
    assert match("上海") == {"zh2"}
    assert match("fox") == {"en"}
    # a lone CJK character is a unigram query against bigrams only: not found (cjk's limit)
    assert match("北") == set()
    hits = client.search(index=docs_index, body={"query": {"match_phrase": {"text": "去北京"}}})["hits"]
    assert [h["_id"] for h in hits["hits"]] == ["zh"]


def test_kill_stops_answering_and_restart_keeps_data(server: OpenSearchServer) -> None:
    client = server.client()
    index = f"crash-{uuid.uuid4().hex[:8]}"
    client.indices.create(index=index, body={"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    # acknowledged = in the translog, fsynced (index.translog.durability: request)
    client.index(index=index, id="1", body={"text": "survives a crash"})
    url, port, pid = server.url, server.port, server.pid
    assert server.answers()

    server.kill()
    assert not server.running()
    assert _proc.wait_for(lambda: not server.answers(0.2), 5.0), "the HTTP port still answers after SIGKILL"
    assert _proc.http_status(f"{url}/", timeout=0.5) is None

    started = time.monotonic()
    server.start()  # same ports, same data dir
    assert server.url == url and server.port == port and server.pid != pid
    assert time.monotonic() - started < 120
    client = server.client()
    assert client.get(index=index, id="1")["_source"] == {"text": "survives a crash"}
    client.indices.refresh(index=index)
    assert client.count(index=index)["count"] == 1


def test_session_fixture_runs_beside_another_node(
    opensearch_server: OpenSearchServer, server: OpenSearchServer
) -> None:
    """The conftest's session node and this module's run side by side: their own HTTP and
    transport ports and cluster names (a second node left to defaults would take 9300-9400
    and could join the first one's cluster)."""
    a, b = opensearch_server.client(), server.client()
    assert a.cluster.health()["number_of_nodes"] == 1 == b.cluster.health()["number_of_nodes"]
    assert opensearch_server.cluster_name != server.cluster_name
    assert len({opensearch_server.port, opensearch_server.transport_port, server.port, server.transport_port}) == 4
    index = f"only-a-{uuid.uuid4().hex[:8]}"
    a.index(index=index, body={"x": 1}, refresh="true")
    assert a.indices.exists(index=index) and not b.indices.exists(index=index)
