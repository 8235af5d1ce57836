"""Media through real processes (PROTOCOL §5 media, attachments), on the local directory and
on a real S3 server (SeaweedFS):

- an upload is typed by its bytes and sanitized (EXIF/GPS gone, orientation applied, a
  thumbnail), served to the uploader with a bearer token or a short-lived signed URL, with
  headers that keep a browser from running it; tampered, foreign and expired links refused;
- the attack corpus gets the right status each and leaves nothing stored;
- attachments: only one's own uploads, the event carries them with URLs signed for each
  reader; members (and any reader of a public channel) may fetch them, others get 404;
- deleting the message makes the media unreachable, and the objects are collected.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from chat_devtools.cluster import Cluster
from chat_devtools.s3server import S3Server
from chat_devtools.testing import ClusterFactory
from chat_sdk import Attachment, ChatClient, Event, NotFound, Upload
from helpers import media as corpus
from helpers.chat_client import Api, User
from helpers.media import s3_media_env
from helpers.peer import Peer, users
from minio.error import S3Error
from PIL import Image

CAP = 2 * 1024 * 1024
ENV = {
    "MEDIA_MAX_BYTES": str(CAP),
    "GATEWAY_MEDIA_MAX_BYTES": str(CAP),
    "MEDIA_MAX_PIXELS": str(20_000_000),
    "MEDIA_RATE_BURST": "0",  # uploads in a loop: not a rate-limit test
    "MEDIA_GC_AFTER_S": "2",
    "MEDIA_GC_INTERVAL_S": "0.5",
}
BUCKET = "media-tests"
PASSWORD = "media-tests-password-1"


@dataclass
class Media:
    c: Cluster
    storage: str
    s3: S3Server | None

    def objects(self) -> set[str]:
        """Every object the media service stored."""
        if self.s3 is not None:
            client = self.s3.client()
            if not client.bucket_exists(BUCKET):
                return set()
            return {o.object_name for o in client.list_objects(BUCKET, recursive=True) if o.object_name}
        root = Path(self.c.data_dir or ".") / "media"
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()

    def stored(self, key: str) -> bool:
        if self.s3 is not None:
            try:
                self.s3.client().stat_object(BUCKET, key)
            except S3Error as exc:
                assert exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"), exc
                return False
            return True
        return (Path(self.c.data_dir or ".") / "media" / key).is_file()


@pytest.fixture(params=["local", "s3"])
def media(request: pytest.FixtureRequest, cluster: ClusterFactory) -> Media:
    env = dict(ENV)
    s3 = None
    if request.param == "s3":
        s3 = request.getfixturevalue("s3_server")
        env |= s3_media_env(s3, BUCKET)
    return Media(cluster(media=True, env=env), request.param, s3)


async def upload(api: Api, user: User, data: bytes, name: str = "f.bin", ctype: str = "image/png") -> httpx.Response:
    return await api.http.post("/v1/media", files={"file": (name, data, ctype)}, headers=user.headers)


def key_of(media_id: str) -> str:
    return f"{media_id[:2]}/{media_id}"


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"not within {within}s: {what}"
        await asyncio.sleep(0.1)


def sign(key: str, variant: str, media_id: str, user: str, exp: int) -> str:
    digest = hmac.new(key.encode(), f"{variant}\n{media_id}\n{user}\n{exp}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def test_upload_is_sanitized_and_served_to_the_uploader(media: Media) -> None:
    async with Api(media.c.gateway_url) as api:
        (alice,) = await users(api, "alice")
        r = await upload(
            api, alice, corpus.jpeg_with_gps(64, 32, orientation=6), "../../holiday\x00.jpg.php", "text/html"
        )
        assert r.status_code == 201, r.text
        m = r.json()
        assert m["mime"] == "image/jpeg" and (m["width"], m["height"]) == (32, 64)  # as displayed
        assert m["name"].endswith((".jpg", ".jpeg")) and "/" not in m["name"] and "\x00" not in m["name"]
        assert m["url"].startswith(f"/v1/media/{m['media_id']}?") and "thumbnail_url" in m
        assert media.stored(key_of(m["media_id"])) and media.stored(key_of(m["media_id"]) + ".thumb")

        got = await api.http.get(f"/v1/media/{m['media_id']}", headers=alice.headers)
        assert got.status_code == 200
        assert got.headers["content-type"] == "image/jpeg"
        assert got.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in got.headers["content-security-policy"]
        assert (
            got.headers["content-disposition"].startswith("inline;")
            and "filename*=UTF-8''" in got.headers["content-disposition"]
        )
        assert int(got.headers["content-length"]) == m["size"] == len(got.content)
        assert b"Exif" not in got.content and b"CameraMaker" not in got.content
        img = Image.open(io.BytesIO(got.content))
        assert img.size == (32, 64) and not img.getexif()

        # the signed URLs work without a bearer token (an <img src>)
        plain = httpx.AsyncClient(base_url=media.c.gateway_url)
        try:
            assert (await plain.get(m["url"])).content == got.content
            thumb = await plain.get(m["thumbnail_url"])
            assert thumb.status_code == 200 and thumb.headers["content-type"].startswith("image/")
            q = {k: v[0] for k, v in parse_qs(urlparse(m["url"]).query).items()}
            base = f"/v1/media/{m['media_id']}"
            assert (await plain.get(base, params={**q, "sig": q["sig"][:-2] + "AA"})).status_code == 401
            assert (await plain.get(base, params={**q, "u": "someone-else"})).status_code == 401
            assert (await plain.get(base + "/thumbnail", params=q)).status_code == 401  # the file's link
            past = int(time.time()) - 1
            expired = {
                "u": alice.id,
                "exp": past,
                "sig": sign(media.c.media_url_key, "file", m["media_id"], alice.id, past),
            }
            assert (await plain.get(base, params=expired)).status_code == 401
            assert (await plain.get(base)).status_code == 401  # neither bearer nor link
        finally:
            await plain.aclose()


CORPUS: list[tuple[str, Callable[[], bytes], str, int, str]] = [
    ("html renamed png", lambda: corpus.HTML, "cat.png", 415, "unsupported_media_type"),
    ("svg with script", lambda: corpus.SVG, "logo.svg", 415, "unsupported_media_type"),
    ("gzip bomb", corpus.gzip_bomb, "zeros.png", 415, "unsupported_media_type"),
    ("header claims 65535x65535", lambda: corpus.png_header_claiming(65535, 65535), "big.png", 413, "too_large"),
    ("14k x 14k png", corpus.huge_png, "huge.png", 413, "too_large"),
    ("2,000-frame gif", corpus.many_frames_gif, "anim.gif", 413, "too_large"),
    ("one byte over the cap", lambda: b"a" * (CAP + 1), "big.txt", 413, "too_large"),
    ("empty", lambda: b"", "empty.png", 422, "invalid"),
]


async def test_attack_corpus_is_refused_and_leaves_nothing_stored(media: Media) -> None:
    async with Api(media.c.gateway_url) as api:
        (mallory,) = await users(api, "mallory")
        before = media.objects()
        for what, make, name, status, code in CORPUS:
            r = await upload(api, mallory, make(), name)
            assert r.status_code == status, (what, r.status_code, r.text)
            assert r.json()["code"] == code, (what, r.text)
        no_file = await api.http.post("/v1/media", files={"other": ("x", b"x")}, headers=mallory.headers)
        assert no_file.status_code == 422, no_file.text
        not_multipart = await api.http.post("/v1/media", content=b"\x89PNG", headers=mallory.headers)
        assert not_multipart.status_code == 422, not_multipart.text
        assert (await api.http.post("/v1/media", files={"file": ("a", b"x")})).status_code == 401
        # (the collector may delete earlier uploads meanwhile: nothing may be added)
        assert not media.objects() - before, "a refused upload left something stored"
        # a polyglot is a JPEG: stored re-encoded, the HTML gone
        r = await upload(api, mallory, corpus.jpeg_html_polyglot(), "pic.html")
        assert r.status_code == 201, r.text
        assert r.json()["mime"] == "image/jpeg" and r.json()["name"].endswith((".jpg", ".jpeg"))
        body = (await api.http.get(f"/v1/media/{r.json()['media_id']}", headers=mallory.headers)).content
        assert b"<script" not in body and b"<html" not in body.lower()


async def test_attachments_reach_members_with_their_own_links(media: Media) -> None:
    c = media.c
    async with Api(c.gateway_url) as api:
        alice, carol, dave, bob = await users(api, "alice", "carol", "dave", "bob")
        conv = (await api.create(alice, "group", [carol]))["id"]
        mine = (await upload(api, alice, corpus.png(40, 30), "chart.png")).json()
        doc = (await upload(api, alice, b"meeting notes\n", "notes.txt", "text/plain")).json()
        bobs = (await upload(api, bob, corpus.png(8, 8), "b.png")).json()
        pa, pc = await Peer.connect(c.ws_urls[0], alice), await Peer.connect(c.ws_urls[0], carol)
        try:
            # not one's own upload: not_found; duplicates: invalid
            f = await pa.send_msg(conv, "look", attachments=[bobs["media_id"]])
            assert f["type"] == "error" and f["code"] == "not_found", f
            f = await pa.send_msg(conv, "x", attachments=[mine["media_id"], mine["media_id"]])
            assert f["type"] == "error" and f["code"] == "invalid", f
            # an empty body with attachments is a message
            ack = await pa.send_msg(conv, "", attachments=[mine["media_id"], doc["media_id"]])
            assert ack["type"] == "ack", ack
            await pc.wait_for_seq(conv, ack["seq"])
            ev = next(e for e in pc.events if e["seq"] == ack["seq"])
            img, txt = ev["attachments"]
            assert img["media_id"] == mine["media_id"] and img["mime"] == "image/png" and img["name"] == "chart.png"
            assert (img["width"], img["height"]) == (40, 30) and img["size"] == mine["size"]
            assert txt["mime"].startswith("text/plain") and "thumbnail_url" not in txt and "width" not in txt
            assert parse_qs(urlparse(img["url"]).query)["u"] == [carol.id]  # signed for the reader
            assert parse_qs(urlparse(img["thumbnail_url"]).query)["u"] == [carol.id]

            plain = httpx.AsyncClient(base_url=c.gateway_url)
            try:

                async def carol_can() -> bool:
                    return (await plain.get(img["url"])).status_code == 200

                await eventually(carol_can, what="a member fetches the attachment")
                got = await api.http.get(f"/v1/media/{doc['media_id']}", headers=carol.headers)
                assert got.status_code == 200 and got.content == b"meeting notes\n"
                assert got.headers["content-disposition"].startswith("attachment;")
            finally:
                await plain.aclose()
            # strangers: 404, whether the media exists or not
            assert (await api.http.get(f"/v1/media/{mine['media_id']}", headers=dave.headers)).status_code == 404
            assert (await api.http.get(f"/v1/media/{'x' * 22}", headers=dave.headers)).status_code == 404
            # history signs the links for its caller
            page = (await api.history(carol, conv)).json()
            h = next(e for e in page["events"] if e["seq"] == ack["seq"])
            assert parse_qs(urlparse(h["attachments"][0]["url"]).query)["u"] == [carol.id]

            # a public channel: any signed-in reader may fetch what its messages show
            chan = (await api.create(alice, "channel", [], name=f"pics-{uuid.uuid4().hex[:6]}"))["id"]
            pic = (await upload(api, alice, corpus.png(9, 9), "p.png")).json()
            assert (await pa.send_msg(chan, "pic", attachments=[pic["media_id"]]))["type"] == "ack"

            async def dave_can() -> bool:
                r = await api.http.get(f"/v1/media/{pic['media_id']}", headers=dave.headers)
                return r.status_code == 200

            await eventually(dave_can, what="a reader of a public channel fetches its media")
        finally:
            await pa.close()
            await pc.close()


async def test_deleting_the_message_makes_its_media_unreachable_then_collected(media: Media) -> None:
    async with Api(media.c.gateway_url) as api:
        alice, carol = await users(api, "alice", "carol")
        conv = (await api.create(alice, "dm", [carol]))["id"]
        m = (await upload(api, alice, corpus.png(20, 20), "x.png")).json()
        stray = (await upload(api, alice, corpus.png(5, 5), "never-sent.png")).json()
        r = await api.http.post(
            f"/v1/conversations/{conv}/messages",
            headers=alice.headers,
            json={"client_msg_id": uuid.uuid4().hex, "body": "see", "attachments": [m["media_id"]]},
        )
        assert r.status_code == 201, r.text
        assert r.json()["attachments"][0]["url"].startswith(f"/v1/media/{m['media_id']}?")
        seq = r.json()["seq"]

        async def status(user: User) -> int:
            return (await api.http.get(f"/v1/media/{m['media_id']}", headers=user.headers)).status_code

        async def carol_sees() -> bool:
            return await status(carol) == 200

        await eventually(carol_sees, what="the member fetches it")
        d = await api.http.delete(f"/v1/conversations/{conv}/messages/{seq}", headers=alice.headers)
        assert d.status_code == 200, d.text

        async def gone_for_both() -> bool:
            return await status(carol) == 404 and await status(alice) == 404

        await eventually(gone_for_both, what="deleted message's media unreachable, the uploader's too")
        # collected from storage after MEDIA_GC_AFTER_S (2 s here), the never-sent upload too
        keys = [key_of(m["media_id"]), key_of(m["media_id"]) + ".thumb", key_of(stray["media_id"])]

        async def collected() -> bool:
            return not any(media.stored(k) for k in keys)

        await eventually(collected, within=30, what="objects deleted from storage")
        # and the ids can no longer be attached
        r = await api.http.post(
            f"/v1/conversations/{conv}/messages",
            headers=alice.headers,
            json={"client_msg_id": uuid.uuid4().hex, "body": "again", "attachments": [stray["media_id"]]},
        )
        assert r.status_code == 404, r.text


async def test_upload_rate_and_quota(cluster: ClusterFactory) -> None:
    c = cluster(
        media=True, env={**ENV, "MEDIA_RATE_BURST": "3", "MEDIA_RATE_PER_S": "0.01", "MEDIA_QUOTA_BYTES": str(CAP)}
    )
    async with Api(c.gateway_url) as api:
        alice, bob = await users(api, "alice", "bob")
        for _ in range(3):
            assert (await upload(api, alice, corpus.png(4, 4), "a.png")).status_code == 201
        r = await upload(api, alice, corpus.png(4, 4), "a.png")
        assert r.status_code == 429 and r.json()["code"] == "rate_limited", r.text
        assert int(r.headers["retry-after"]) >= 1
        # quota: bob's live uploads may take CAP bytes at most
        big = b"x" * (CAP - 100)
        assert (await upload(api, bob, big, "a.txt", "text/plain")).status_code == 201
        r = await upload(api, bob, b"y" * 200, "b.txt", "text/plain")
        assert r.status_code == 413 and "quota" in r.json()["detail"], r.text


async def test_sdk_uploads_sends_attachments_and_downloads(cluster: ClusterFactory) -> None:
    c = cluster(media=True, env=ENV)
    urls = c.gateway_urls
    names = [f"sdk{uuid.uuid4().hex[:10]}" for _ in range(2)]
    for n in names:
        await ChatClient.register(urls, n, PASSWORD)
    alice = await ChatClient.connect(urls, username=names[0], password=PASSWORD)
    carol = await ChatClient.connect(urls, username=names[1], password=PASSWORD)
    try:
        conv = await alice.create_conversation("dm", members=[carol.user_id or ""])
        up = await alice.upload(corpus.jpeg_with_gps(30, 20, orientation=1), name="p.jpg")
        assert isinstance(up, Upload) and up.mime == "image/jpeg" and (up.width, up.height) == (30, 20)
        sent = await alice.send(conv.id, "", attachments=[up])
        got: list[Event] = []

        async def receive() -> None:
            async for item in carol.events():
                if isinstance(item, Event) and item.seq == sent.seq:
                    got.append(item)
                    return

        await asyncio.wait_for(receive(), 15)
        (att,) = got[0].attachments or []
        assert isinstance(att, Attachment) and att.media_id == up.media_id and att.url and att.thumbnail_url
        mine = await alice.download(up)

        async def carol_gets_it() -> bool:
            try:
                return await carol.download(att) == mine
            except NotFound:
                return False

        await eventually(carol_gets_it, what="the member downloads the attachment")
        assert (await carol.download(att, thumbnail=True))[:3] in (b"\xff\xd8\xff", b"\x89PN")
    finally:
        await alice.close()
        await carol.close()


def test_cli_upload_send_download(cluster: ClusterFactory, tmp_path: Path) -> None:
    c = cluster(media=True, env={**ENV, "MEDIA_GC_AFTER_S": "600"})  # a CLI run takes about a second
    env = {**os.environ, "CHAT_CONFIG_DIR": str(tmp_path / "cfg"), "CHAT_PASSWORD": PASSWORD}
    exe = str(Path(sys.executable).with_name("chat"))

    def chat(*args: str) -> list[dict[str, Any]]:
        p = subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert p.returncode == 0, f"{args}: rc={p.returncode}\n{p.stdout}\n{p.stderr}"
        return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]

    chat("login", c.gateway_url, f"cli{uuid.uuid4().hex[:8]}", "--register", "--json")
    src = tmp_path / "notes.txt"
    src.write_text("hello from a file\n")
    (up,) = chat("upload", str(src), "--json")
    assert up["mime"].startswith("text/plain") and up["name"] == "notes.txt"
    (conv,) = chat("create", "channel", "--name", f"cli{uuid.uuid4().hex[:6]}", "--json")
    (sent,) = chat("send", conv["id"], "", "--attach", up["media_id"], "--json")
    out = tmp_path / "copy.txt"
    p = subprocess.run(
        [exe, "download", up["media_id"], "-o", str(out)], env=env, capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr
    assert out.read_text() == "hello from a file\n"
    hist = chat("history", conv["id"], "--json")
    msg = next(e for e in hist if e["seq"] == sent["seq"])
    assert msg["attachments"][0]["media_id"] == up["media_id"]
