"""Files for the media tests, generated here (nothing downloaded), and the media service's
environment on a real S3 server."""

from __future__ import annotations

import gzip
import io
import struct
import zlib

from chat_devtools.s3server import S3Server
from PIL import Image


def s3_media_env(server: S3Server, bucket: str) -> dict[str, str]:
    """The media service on ``server``, in its own bucket."""
    return {
        "MEDIA_STORAGE": "s3",
        "MEDIA_S3_ENDPOINT": server.endpoint,
        "MEDIA_S3_ACCESS_KEY": server.access_key,
        "MEDIA_S3_SECRET_KEY": server.secret_key,
        "MEDIA_S3_BUCKET": bucket,
        "MEDIA_S3_SECURE": "false",
        "MEDIA_S3_REGION": "us-east-1",
    }


def jpeg_with_gps(w: int = 64, h: int = 32, orientation: int = 6) -> bytes:
    """A JPEG whose EXIF has GPS coordinates and an orientation (6: rotate 90° to display)."""
    img = Image.new("RGB", (w, h), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "CameraMaker"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (48.0, 51.0, 29.0)
    gps[3], gps[4] = "E", (2.0, 17.0, 40.0)
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif, quality=90)
    return out.getvalue()


def png(w: int = 40, h: int = 30, mode: str = "RGBA") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (w, h), (10, 200, 10, 128) if mode == "RGBA" else (10, 200, 10)).save(out, "PNG")
    return out.getvalue()


def png_header_claiming(w: int, h: int) -> bytes:
    """A PNG whose IHDR claims ``w`` x ``h`` with a tiny (wrong) image stream."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def huge_png(side: int = 14_000) -> bytes:
    """A real ``side`` x ``side`` PNG (1-bit, compresses to almost nothing)."""
    out = io.BytesIO()
    Image.new("1", (side, side), 0).save(out, "PNG")
    return out.getvalue()


def many_frames_gif(n: int = 2000) -> bytes:
    """An animation of ``n`` frames (consecutive frames differ, so none is merged away)."""
    frames = [Image.new("L", (2, 2), 255 * (i % 2)) for i in range(n)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=10, loop=0, optimize=False)
    data = out.getvalue()
    assert Image.open(io.BytesIO(data)).n_frames == n  # type: ignore[attr-defined]
    return data


HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script><rect width="10" height="10"/></svg>'


def gzip_bomb(mib: int = 64) -> bytes:
    return gzip.compress(b"\0" * (mib * 1024 * 1024), compresslevel=9)


def jpeg_html_polyglot() -> bytes:
    """A valid JPEG with an HTML document appended after its end marker."""
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(out, "JPEG")
    return out.getvalue() + HTML
