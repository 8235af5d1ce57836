"""chat_media.sanitize against a generated attack corpus (built here with Pillow/zlib/gzip).

Every case asserts its exact outcome: the sanitized type and content, or the refusal's status
and code.
"""

from __future__ import annotations

import gzip
import random
import struct
import time
import tracemalloc
import zlib
from collections.abc import Callable
from io import BytesIO
from typing import Any

import pytest
from chat_media import sanitize as sz
from chat_media.sanitize import GIF, JPEG, PDF, PNG, TEXT, WEBP, Limits, Refused, detect, pixels_of, safe_name
from PIL import Image, ImageCms, ImageOps, PngImagePlugin

LIMITS = Limits()

# --------------------------------------------------------------------------------------------
# Builders


def encode(im: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def halves(size: tuple[int, int], left: tuple[int, ...], right: tuple[int, ...], mode: str = "RGB") -> Image.Image:
    im = Image.new(mode, size, right)
    im.paste(left, (0, 0, size[0] // 2, size[1]))
    return im


def jpeg(size: tuple[int, int] = (64, 32), **params: Any) -> bytes:
    return encode(halves(size, (255, 0, 0), (0, 0, 255)), "JPEG", quality=90, **params)


def noise_jpeg(size: tuple[int, int] = (256, 256)) -> bytes:
    raw = random.Random(7).randbytes(size[0] * size[1] * 3)
    return encode(Image.frombytes("RGB", size, raw), "JPEG", quality=95)


def png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def crafted_png(width: int, height: int, bit_depth: int, color_type: int, idat: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


# LZW data of one pixel (minimum code size 2: clear, the index, end) and the block terminator.
ONE_PIXEL_LZW = {0: b"\x02\x02\x44\x01\x00", 1: b"\x02\x02\x4c\x01\x00"}


def crafted_gif(frames: list[tuple[int, int, int, int]], screen: tuple[int, int] = (1, 1)) -> bytes:
    """A GIF89a with a black/white global palette and one 1x1 frame per (x, y, w, h) descriptor,
    black and white in turn."""
    out = bytearray(b"GIF89a" + struct.pack("<HH", *screen) + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff")
    for i, (x, y, w, h) in enumerate(frames):
        out += b"\x21\xf9\x04\x00\x0a\x00\x00\x00"  # graphic control: 100 ms
        out += b"\x2c" + struct.pack("<HHHH", x, y, w, h) + b"\x00" + ONE_PIXEL_LZW[i % 2]
    return bytes(out + b"\x3b")


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def run(data: bytes, limits: Limits = LIMITS) -> sz.Sanitized:
    return sz.sanitize(data, limits)


def refused(data: bytes, limits: Limits = LIMITS) -> Refused:
    with pytest.raises(Refused) as info:
        sz.sanitize(data, limits)
    return info.value


def assert_refused(data: bytes, status: int, code: str, limits: Limits = LIMITS) -> Refused:
    err = refused(data, limits)
    assert (err.status, err.code) == (status, code), err
    return err


def frame_durations(data: bytes) -> tuple[int, list[int], Any]:
    with Image.open(BytesIO(data)) as im:
        n = getattr(im, "n_frames", 1)
        durations = []
        for i in range(n):
            im.seek(i)
            im.load()
            durations.append(round(im.info.get("duration", 0)))
        return n, durations, im.info.get("loop")


# --------------------------------------------------------------------------------------------
# Detection by content


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", JPEG),
        (b"\x89PNG\r\n\x1a\n\x00\x00", PNG),
        (b"GIF87a\x01\x00", GIF),
        (b"GIF89a\x01\x00", GIF),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", WEBP),
        (b"%PDF-1.7\n", PDF),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00", sz.MP4),
        (b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00", None),  # AVIF is not video
        (b"hello world\n", TEXT),
        (b"caf\xc3", TEXT),  # a prefix may cut a UTF-8 sequence
        (b"<svg xmlns='http://www.w3.org/2000/svg'>", None),
        (b"\x1f\x8b\x08\x00", None),  # gzip
        (b"PK\x03\x04", None),  # zip
        (b"\x7fELF\x02\x01\x01", None),
        (b"", None),
    ],
)
def test_detect_by_magic(head: bytes, mime: str | None) -> None:
    assert detect(head) == mime


# --------------------------------------------------------------------------------------------
# Refusals by type and size


def test_html_renamed_png_is_refused() -> None:
    html = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
    err = assert_refused(html, 415, "unsupported_media_type")
    assert "markup" in err.message
    assert safe_name("cute-cat.png", TEXT).endswith(".txt")  # even if it were text, never .png/.html


def test_svg_with_script_is_refused() -> None:
    svg = (
        b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        b"<script>alert(1)</script></svg>"
    )
    assert_refused(svg, 415, "unsupported_media_type")
    assert_refused(b"  \n\t" + svg[22:], 415, "unsupported_media_type")  # leading blanks, no prolog


def test_gzip_bomb_is_refused_without_inflating() -> None:
    bomb = gzip.compress(bytes(1 << 20), 9) * 100  # 100 gzip members: 100 MB of zeros inflated
    assert len(bomb) < 200_000
    assert zlib.decompressobj(31).decompress(bomb, 1024) == bytes(1024)  # a real gzip stream
    started = time.perf_counter()
    assert_refused(bomb, 415, "unsupported_media_type")
    assert time.perf_counter() - started < 0.5


def test_empty_is_invalid() -> None:
    assert_refused(b"", 422, "invalid")


def test_one_byte_over_max_bytes() -> None:
    limits = Limits(max_bytes=1000)
    assert_refused(b"a" * 1001, 413, "too_large", limits)
    assert run(b"a" * 1000, limits).mime == TEXT


@pytest.mark.parametrize("allow_mp4", [False, True])
def test_mp4_is_refused(allow_mp4: bool) -> None:
    mp4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00\x00\x00\x08free"
    err = assert_refused(mp4, 415, "unsupported_media_type", Limits(allow_mp4=allow_mp4))
    assert "mp4" in err.message


@pytest.mark.parametrize(
    "blob",
    [
        b"\x7fELF\x02\x01\x01\x00" + bytes(64),
        b"PK\x03\x04" + bytes(40),
        b"\x00\x01\x02\x03",
        b"MZ\x90\x00\x03\x00\x00\x00",
        b"\xff\xfe<\x00h\x00t\x00m\x00l\x00>\x00",  # UTF-16 HTML
    ],
)
def test_other_binaries_are_refused(blob: bytes) -> None:
    assert_refused(blob, 415, "unsupported_media_type")


# --------------------------------------------------------------------------------------------
# Text and PDF


@pytest.mark.parametrize(
    "text",
    [
        b"hello\r\nworld\tand tabs\n",
        "ünïcødé ✓ 日本語 🐱\n".encode(),
        b"\xef\xbb\xbfwith a BOM",
        b"<3 you",  # '<' not followed by a tag name
        b"a < b and c > d",
        b"   \n  ",
    ],
)
def test_text_is_stored_as_is(text: bytes) -> None:
    out = run(text)
    assert (out.mime, out.data, out.thumbnail, out.width, out.frames) == (TEXT, text, None, None, 0)


@pytest.mark.parametrize(
    "text",
    [
        b"hello\x00world",
        b"escape \x1b[31m red",
        b"form\x0cfeed",
        b"bad utf-8 \xc3\x28",
        b"truncated utf-8 \xe2\x82",
        b"<!DOCTYPE html>\n<p>hi",
        b"<!doctype html>",
        b"\n\n   <HTML><body>",
        b"\xef\xbb\xbf<script>alert(1)</script>",
        b"\xc2\xa0<iframe src=x>",  # NBSP before markup
        b"<?xml version='1.0'?><x/>",
        b"</p>",
    ],
)
def test_bad_text_is_refused(text: bytes) -> None:
    assert_refused(text, 415, "unsupported_media_type")


def test_pdf_is_stored_as_is() -> None:
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    out = run(pdf)
    assert (out.mime, out.data, out.thumbnail, out.thumbnail_mime, out.frames) == (PDF, pdf, None, None, 0)


@pytest.mark.parametrize(
    "pdf",
    [
        b"%PDF-1.4\n1 0 obj<<>>endobj\n",  # no %%EOF
        b"%PDF-1.4\n%%EOF\n" + b" " * 2000,  # %%EOF not near the end
        b"%PDF-x\n%%EOF",  # no version
    ],
)
def test_broken_pdf_is_invalid(pdf: bytes) -> None:
    assert_refused(pdf, 422, "invalid")


# --------------------------------------------------------------------------------------------
# Images: metadata, orientation, ICC, polyglots


def test_jpeg_exif_gps_orientation_and_comments_are_stripped() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    exif[0x010F] = "EvilCam"
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">secret-xmp</x:xmpmeta>'
    src = jpeg((80, 40), exif=exif.tobytes(), xmp=xmp, comment=b"secret-comment")
    with Image.open(BytesIO(src)) as im:
        assert im.getexif().get_ifd(0x8825)  # the input does carry GPS
        expected = ImageOps.exif_transpose(im)

    out = run(src)
    assert (out.mime, out.width, out.height, out.frames) == (JPEG, 40, 80, 1)
    for needle in (b"Exif", b"EvilCam", b"secret-xmp", b"secret-comment", b"http://ns.adobe.com"):
        assert needle not in out.data
    with Image.open(BytesIO(out.data)) as im:
        assert im.format == "JPEG"
        assert len(im.getexif()) == 0
        assert "exif" not in im.info and "comment" not in im.info and "xmp" not in im.info
        assert im.size == expected.size == (40, 80)
        for xy in [(20, 10), (20, 70)]:  # red on top, blue below, as exif_transpose displays it
            got, want = im.getpixel(xy), expected.getpixel(xy)
            assert isinstance(got, tuple) and isinstance(want, tuple)
            assert all(abs(a - b) < 40 for a, b in zip(got, want, strict=True)), (xy, got, want)
    assert out.thumbnail is not None and out.thumbnail_mime == JPEG
    with Image.open(BytesIO(out.thumbnail)) as thumb:
        assert thumb.size == (40, 80) and len(thumb.getexif()) == 0


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_icc_profile_is_kept(fmt: str) -> None:
    icc = srgb_icc()
    src = encode(halves((40, 30), (10, 200, 30), (200, 10, 30)), fmt, icc_profile=icc)
    out = run(src)
    with Image.open(BytesIO(out.data)) as im:
        assert im.info.get("icc_profile") == icc


def test_invalid_icc_profile_is_dropped() -> None:
    src = encode(Image.new("RGB", (8, 8)), "JPEG", icc_profile=b"<script>alert(1)</script>" * 10)
    out = run(src)
    assert b"<script" not in out.data
    with Image.open(BytesIO(out.data)) as im:
        assert "icc_profile" not in im.info


HTML = b"<html><body><script>alert(document.domain)</script></body></html>"


def _jpeg_polyglot() -> bytes:
    return jpeg(comment=HTML) + HTML


def _png_polyglot() -> bytes:
    meta = PngImagePlugin.PngInfo()
    meta.add_text("Comment", HTML.decode())
    meta.add_text("XML:com.adobe.xmp", HTML.decode(), zip=True)
    return encode(halves((40, 30), (1, 2, 3, 255), (200, 100, 0, 128), "RGBA"), "PNG", pnginfo=meta) + HTML


def _gif_polyglot() -> bytes:
    return encode(Image.new("P", (16, 16), 1), "GIF", comment=HTML) + HTML


def _webp_polyglot() -> bytes:
    return encode(Image.new("RGB", (16, 16), (9, 9, 9)), "WEBP", xmp=HTML, exif=b"Exif\x00\x00" + HTML)


@pytest.mark.parametrize(
    ("build", "mime"),
    [(_jpeg_polyglot, JPEG), (_png_polyglot, PNG), (_gif_polyglot, GIF), (_webp_polyglot, WEBP)],
)
def test_polyglot_image_loses_its_markup(build: Callable[[], bytes], mime: str) -> None:
    src = build()
    assert b"<script" in src
    assert detect(src) == mime
    out = run(src)
    assert out.mime == mime
    for blob in (out.data, out.thumbnail or b""):
        lowered = blob.lower()
        assert b"<script" not in lowered and b"<html" not in lowered


def test_output_type_never_follows_the_name() -> None:
    out = run(jpeg())
    assert out.mime == JPEG
    assert safe_name("x.jpg.php", out.mime) in ("x.jpg.jpg", "x.jpg.jpeg")


# --------------------------------------------------------------------------------------------
# Images: budgets, refused before decoding


def test_14k_png_is_refused_without_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    row = b"\x00" + bytes(14_000 // 8)  # filter byte + 1-bit row
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row * 1000) for _ in range(14)) + packer.flush()
    src = crafted_png(14_000, 14_000, 1, 0, idat)
    assert len(src) < 100_000
    assert pixels_of(src) == 196_000_000

    def no_decoder(*args: object, **kwargs: object) -> Image.Image:
        raise AssertionError("Pillow must not see an image over the pixel budget")

    monkeypatch.setattr(Image, "open", no_decoder)  # the module calls PIL.Image.open
    tracemalloc.start()
    started = time.perf_counter()
    try:
        err = assert_refused(src, 413, "too_large")
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "pixels" in err.message
    assert elapsed < 0.5
    assert peak < 50 * 1024 * 1024


def test_png_header_claiming_65535_square_is_refused() -> None:
    src = crafted_png(65535, 65535, 8, 6, zlib.compress(b"\x00" * 64))
    assert pixels_of(src) == 65535 * 65535
    err = assert_refused(src, 413, "too_large")
    assert "pixels" in err.message


def test_jpeg_header_claiming_65535_square_is_refused() -> None:
    src = bytearray(jpeg((16, 16)))
    sof = src.index(b"\xff\xc0")
    src[sof + 5 : sof + 9] = struct.pack(">HH", 65535, 65535)
    assert pixels_of(bytes(src)) == 65535 * 65535
    assert_refused(bytes(src), 413, "too_large")


def test_webp_canvas_claiming_20000_square_is_refused() -> None:
    vp8x = b"\x00\x00\x00\x00" + (20_000 - 1).to_bytes(3, "little") + (20_000 - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x + b"VP8L" + struct.pack("<I", 6) + b"\x2f" * 6
    src = b"RIFF" + struct.pack("<I", len(body)) + body
    assert pixels_of(src) == 400_000_000
    assert_refused(src, 413, "too_large")


def test_gif_with_2000_frames_is_refused() -> None:
    src = crafted_gif([(0, 0, 1, 1)] * 2000)
    with Image.open(BytesIO(src)) as im:
        assert getattr(im, "n_frames", 1) == 2000  # a real animation
    started = time.perf_counter()
    err = assert_refused(src, 413, "too_large")
    assert time.perf_counter() - started < 0.5
    assert "frames" in err.message


def test_gif_frames_growing_the_canvas_count_against_the_budget() -> None:
    src = crafted_gif([(0, 0, 1, 1), (60_000, 60_000, 1, 1)])
    assert pixels_of(src) == 1  # header view: the logical screen and the first frame
    err = assert_refused(src, 413, "too_large")
    assert "pixels" in err.message


def test_gif_frame_past_the_logical_screen_is_put_on_the_grown_canvas() -> None:
    out = run(crafted_gif([(0, 0, 1, 1), (1, 1, 1, 1)]))
    assert (out.mime, out.width, out.height, out.frames) == (GIF, 2, 2, 2)


def test_animation_total_pixel_budget() -> None:
    frames = [Image.new("RGB", (100, 100), (i * 40, 0, 0)) for i in range(5)]
    src = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    assert_refused(src, 413, "too_large", Limits(max_total_pixels=40_000))
    assert run(src, Limits(max_total_pixels=50_000)).frames == 5


def test_progressive_jpeg_scan_bomb_is_refused() -> None:
    src = encode(Image.new("RGB", (16, 16), (1, 2, 3)), "JPEG", progressive=True)
    sos = src.rindex(b"\xff\xda")
    last_scan = src[sos:-2]
    bomb = src[:-2] + last_scan * 300 + b"\xff\xd9"
    err = assert_refused(bomb, 413, "too_large")
    assert "scans" in err.message


def test_bytes_after_jpeg_end_are_ignored_when_counting_scans() -> None:
    motion_photo = jpeg() + b"\x00\x00\x00\x18ftypmp42" + b"\xff\xda\x00\x08" * 5000
    out = run(motion_photo)
    assert out.mime == JPEG and b"ftypmp42" not in out.data


def test_block_flood_is_refused() -> None:
    # One frame whose image data is 300k one-byte sub-blocks: a Python-loop DoS, not a picture.
    head = crafted_gif([(0, 0, 1, 1)])[:-5]  # up to the LZW minimum code size
    src = head + b"\x01\x00" * 300_000 + b"\x00\x3b"
    assert_refused(src, 422, "invalid")


# --------------------------------------------------------------------------------------------
# Images: corrupt input never escapes as anything but Refused


def test_truncated_jpeg_is_invalid() -> None:
    src = noise_jpeg()
    assert_refused(src[: len(src) // 2], 422, "invalid")
    assert_refused(src[:20], 422, "invalid")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP"])
def test_mutated_images_are_sanitized_or_refused(fmt: str) -> None:
    im = halves((48, 32), (250, 20, 20), (20, 20, 250))
    src = encode(im if fmt != "GIF" else im.convert("P"), fmt)
    rng = random.Random(fmt)
    for i in range(60):
        blob = bytearray(src)
        if i % 3 == 0:
            blob = blob[: rng.randrange(8, len(blob))]
        else:
            for _ in range(rng.randrange(1, 8)):
                blob[rng.randrange(4, len(blob))] = rng.randrange(256)
        try:
            out = sz.sanitize(bytes(blob), LIMITS)
        except Refused as err:
            assert err.status in (413, 415, 422)
        else:
            assert out.mime in (JPEG, PNG, GIF, WEBP)
            assert out.thumbnail is not None


# --------------------------------------------------------------------------------------------
# Images: animations, thumbnails, modes


def test_animated_gif_keeps_frames_durations_and_loop() -> None:
    frames = [Image.new("P", (30, 20), i) for i in range(5)]
    for f in frames:
        f.putpalette([c for i in range(256) for c in (i * 37 % 256, i * 71 % 256, i * 13 % 256)])
    src = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=[100, 200, 300, 400, 500], loop=0)
    out = run(src)
    assert (out.mime, out.frames, out.width, out.height) == (GIF, 5, 30, 20)
    assert frame_durations(out.data) == (5, [100, 200, 300, 400, 500], 0)
    assert out.thumbnail_mime == JPEG


def test_animated_webp_keeps_frames_and_durations() -> None:
    frames = [Image.new("RGB", (32, 24), (i * 60, 255 - i * 60, 0)) for i in range(4)]
    src = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=[80, 120, 160, 200], loop=3)
    out = run(src)
    assert (out.mime, out.frames, out.width, out.height) == (WEBP, 4, 32, 24)
    assert frame_durations(out.data) == (4, [80, 120, 160, 200], 3)


def test_animated_png_keeps_frames() -> None:
    frames = [Image.new("RGBA", (20, 20), (i * 80, 0, 0, 255)) for i in range(3)]
    src = encode(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=[100, 150, 200], loop=0)
    out = run(src)
    assert (out.mime, out.frames) == (PNG, 3)
    assert frame_durations(out.data) == (3, [100, 150, 200], 0)


def test_png_with_alpha_gets_png_thumbnail() -> None:
    src = encode(halves((800, 400), (255, 0, 0, 0), (0, 255, 0, 255), "RGBA"), "PNG")
    out = run(src)
    assert (out.mime, out.width, out.height, out.thumbnail_mime) == (PNG, 800, 400, PNG)
    assert out.thumbnail is not None
    with Image.open(BytesIO(out.thumbnail)) as thumb:
        assert (thumb.format, thumb.mode, thumb.size) == ("PNG", "RGBA", (320, 160))
        transparent, opaque = thumb.getpixel((10, 80)), thumb.getpixel((310, 80))
        assert isinstance(transparent, tuple) and isinstance(opaque, tuple)
        assert (transparent[3], opaque) == (0, (0, 255, 0, 255))


def test_opaque_image_gets_jpeg_thumbnail_never_enlarged() -> None:
    out = run(jpeg((1000, 500)))
    assert out.thumbnail is not None and out.thumbnail_mime == JPEG
    with Image.open(BytesIO(out.thumbnail)) as thumb:
        assert (thumb.format, thumb.size) == ("JPEG", (320, 160))
    small = run(jpeg((30, 10)))
    assert small.thumbnail is not None
    with Image.open(BytesIO(small.thumbnail)) as thumb:
        assert thumb.size == (30, 10)
    custom = run(jpeg((1000, 500)), Limits(thumb_px=100))
    assert custom.thumbnail is not None
    with Image.open(BytesIO(custom.thumbnail)) as thumb:
        assert thumb.size == (100, 50)


@pytest.mark.parametrize(
    ("mode", "fmt", "thumb_mime"),
    [
        ("1", "PNG", JPEG),
        ("L", "PNG", JPEG),
        ("LA", "PNG", PNG),
        ("I;16", "PNG", JPEG),
        ("P", "PNG", JPEG),
        ("CMYK", "JPEG", JPEG),
        ("L", "JPEG", JPEG),
        ("RGBA", "WEBP", PNG),
    ],
)
def test_modes_reencode_in_place(mode: str, fmt: str, thumb_mime: str) -> None:
    src = encode(Image.new(mode, (40, 20)), fmt)
    out = run(src)
    assert (out.width, out.height, out.thumbnail_mime) == (40, 20, thumb_mime)
    with Image.open(BytesIO(out.data)) as im:
        assert im.format == fmt


def test_palette_transparency_is_kept() -> None:
    im = Image.new("P", (20, 20), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.paste(1, (0, 0, 10, 20))
    out = run(encode(im, "PNG", transparency=0))
    assert out.thumbnail_mime == PNG
    with Image.open(BytesIO(out.data)) as back:
        assert back.info.get("transparency") == 0


# --------------------------------------------------------------------------------------------
# pixels_of


def test_pixels_of() -> None:
    assert pixels_of(jpeg((64, 32))) == 2048
    assert pixels_of(encode(Image.new("RGB", (7, 9)), "PNG")) == 63
    assert pixels_of(encode(Image.new("P", (5, 4)), "GIF")) == 20
    assert pixels_of(encode(Image.new("RGB", (33, 3)), "WEBP")) == 99
    assert pixels_of(encode(Image.new("RGBA", (33, 3)), "WEBP", lossless=True)) == 99
    assert pixels_of(b"hello") is None
    assert pixels_of(b"\xff\xd8\xff\xe0garbage") is None
    assert pixels_of(b"") is None


# --------------------------------------------------------------------------------------------
# safe_name


@pytest.mark.parametrize(
    ("name", "mime", "expected"),
    [
        ("x.jpg.php", JPEG, "x.jpg.jpg"),
        ("photo.JPEG", JPEG, "photo.jpeg"),
        ("holiday.png", PNG, "holiday.png"),
        ("page.html", TEXT, "page.txt"),
        ("evil\x00.php", PNG, "evil.png"),
        ("../../etc/passwd", TEXT, "passwd.txt"),
        ("..\\..\\windows\\win.ini", TEXT, "win.txt"),
        ("..", PDF, "file.pdf"),
        ("", GIF, "file.gif"),
        (None, WEBP, "file.webp"),
        ("   ", TEXT, "file.txt"),
        (".htaccess", TEXT, "htaccess.txt"),
        ("report\u202egnp.exe", PDF, "reportgnp.pdf"),
        ("a  \t b\n\rc.pdf", PDF, "a b c.pdf"),
        ('<img src=x onerror="1">.gif', GIF, "_img src=x onerror=_1__.gif"),
        ("CON.txt", TEXT, "_CON.txt"),
        ("notes", TEXT, "notes.txt"),
        ("clip.mp4", sz.MP4, "clip.mp4"),
        ("x", "application/octet-stream", "x.bin"),
    ],
)
def test_safe_name(name: str | None, mime: str, expected: str) -> None:
    assert safe_name(name, mime) == expected


def test_safe_name_limits_length_and_keeps_extension() -> None:
    name = safe_name("é" * 300 + ".jpeg", JPEG)
    assert len(name) == 100 and name.endswith(".jpeg")
    name = safe_name("b" * 300, PNG)
    assert len(name) == 100 and name.endswith(".png")
    assert safe_name("a/b/" + "\x01\x7f\u200b\u2066" + "ok.gif", GIF) == "ok.gif"
