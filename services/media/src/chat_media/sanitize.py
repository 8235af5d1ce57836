"""Typing and sanitizing of uploaded bytes. Everything handed to this module is hostile.

Rules
=====

Type by content only
    The declared type and the file name are never consulted. :func:`detect` looks at magic bytes:
    JPEG ``FF D8 FF``, PNG ``89 50 4E 47 0D 0A 1A 0A``, GIF ``GIF87a``/``GIF89a``, WebP
    ``RIFF....WEBP``, PDF ``%PDF-``, MP4 (an ISO-BMFF ``ftyp`` box at offset 4; AVIF/HEIF brands are
    not MP4) and plain text. Text is valid UTF-8 without NUL or any C0 control other than TAB, LF
    and CR, whose first non-blank characters are not markup (``<`` followed by a letter, ``!``,
    ``?`` or ``/``: ``<!doctype``, ``<html``, ``<svg``, ``<?xml``, ``<script``...). Anything else
    (HTML, SVG, XML, gzip, zip, ELF, ...) is refused with 415, as is MP4, whose metadata this module
    cannot strip (even with ``Limits.allow_mp4``).

Refusals
    :class:`Refused` carries ``status`` and ``code``: empty input 422 ``invalid``; more than
    ``max_bytes`` 413 ``too_large``; unsupported type 415 ``unsupported_media_type``; an image or
    PDF that does not parse 422 ``invalid``; an image over a pixel, frame or scan budget 413
    ``too_large``. No other exception escapes :func:`sanitize` for any input (``MemoryError`` is
    reported as 413).

Images (JPEG, PNG incl. APNG, GIF, WebP)
    1. The header is parsed here, without Pillow, and the budgets are enforced before any decoder
       (or libwebp's canvas allocation) runs: ``width*height`` of one frame <= ``max_pixels``
       (for GIF the canvas grown by frames reaching past the logical screen, as Pillow does),
       frames <= ``max_frames``, ``width*height*frames`` <= ``max_total_pixels`` (every frame of an
       animation is held decoded while it is re-encoded), and at most :data:`MAX_JPEG_SCANS` JPEG
       scans (a progressive-JPEG CPU bomb; bytes after EOI, e.g. a motion photo's video, are not
       counted). Nothing is decompressed; the walk stops at the frame cap and has a step budget
       (segments/chunks/blocks; real files are far below it): a flood of tiny blocks is 422.
    2. Pillow opens the bytes restricted to the detected format (``formats=[...]``); its own view
       of the size and frame count is checked against the same budgets. ``Image.MAX_IMAGE_PIXELS``
       is neither relied upon nor modified (it is process-global); if Pillow's check fires anyway
       (``DecompressionBombError``, or the warning when warnings are errors) the result is 413.
    3. Every frame is decoded, the EXIF/XMP orientation is applied (the transposition
       ``ImageOps.exif_transpose`` uses, applied to every frame alike), and the pixels are
       re-encoded in the same format from images whose ``info`` was replaced: no EXIF, XMP, GPS,
       comments, text chunks or trailing bytes survive. A well-formed ICC profile (``acsp``
       signature, at most :data:`MAX_ICC_BYTES`) is kept. JPEG quality :data:`JPEG_QUALITY`; PNG
       without ``optimize``; GIF/WebP/APNG keep their frames, per-frame durations and loop count
       (encoders may merge identical consecutive frames; ``Sanitized.frames`` counts the output).
       JPEG is a still (extra MPO pictures are dropped).
    4. The re-encoded bytes must still fit ``max_bytes`` (413 otherwise): what is stored never
       exceeds the upload limit.
    5. A thumbnail of the first frame, longest side ``thumb_px`` (never enlarged): PNG when the
       image has alpha/transparency, JPEG otherwise.

PDF
    Must start with ``%PDF-<digit>.<digit>`` and have ``%%EOF`` in its last 1024 bytes; stored
    as-is (to be served as an attachment under a sandbox CSP); no thumbnail.

Text
    Stored as-is as ``text/plain; charset=utf-8``.

Non-images have ``width``/``height``/``thumbnail`` ``None`` and ``frames == 0``.

Names
    :func:`safe_name` makes a display name: basename only, no control/format (bidi) characters, no
    ``<>:"/\\|?*``, whitespace collapsed, no leading/trailing dots or blanks, at most
    :data:`MAX_NAME_CHARS` characters, always ending with the extension of the sanitized type.

:func:`pixels_of`
    Header only, bounded work (at most ``_HEADER_STEPS`` segments or blocks), so it can run on an
    event loop; for GIF it sees the logical screen grown by the first frame only.

Threads
    The functions are pure and keep no state. They rely on Pillow's process-wide defaults
    ``ImageFile.LOAD_TRUNCATED_IMAGES = False`` (truncated images are refused) and the default
    ``GifImagePlugin.LOADING_STRATEGY``, and never change any Pillow global, so they can run in
    threads (Pillow's codecs release the GIL) or, better for isolation, in worker processes.
"""

from __future__ import annotations

import codecs
import re
import struct
import unicodedata
from dataclasses import dataclass
from io import BytesIO
from typing import Any, Final, Literal

from PIL import GifImagePlugin, Image, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

# Imported for their side effect: the four codecs are registered at import time, so no worker
# thread triggers Pillow's lazy plugin loading.
_PLUGINS: Final = (GifImagePlugin, JpegImagePlugin, PngImagePlugin, WebPImagePlugin)

__all__ = [
    "GIF",
    "JPEG",
    "MP4",
    "PDF",
    "PNG",
    "TEXT",
    "WEBP",
    "Limits",
    "Refused",
    "Sanitized",
    "detect",
    "pixels_of",
    "safe_name",
    "sanitize",
]

JPEG: Final = "image/jpeg"
PNG: Final = "image/png"
GIF: Final = "image/gif"
WEBP: Final = "image/webp"
PDF: Final = "application/pdf"
MP4: Final = "video/mp4"
TEXT: Final = "text/plain; charset=utf-8"

IMAGE_TYPES: Final = frozenset({JPEG, PNG, GIF, WEBP})

JPEG_QUALITY: Final = 88
WEBP_QUALITY: Final = 88
THUMB_JPEG_QUALITY: Final = 85
MAX_JPEG_SCANS: Final = 256
"""Real progressive JPEGs have about ten scans; each scan costs a pass over the whole image."""
MAX_ICC_BYTES: Final = 4 * 1024 * 1024
MAX_NAME_CHARS: Final = 100
PDF_EOF_WINDOW: Final = 1024


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 50_000_000  # width*height of ONE frame
    max_frames: int = 300  # animation frames
    allow_mp4: bool = False
    thumb_px: int = 320  # longest side of a thumbnail
    max_total_pixels: int = 100_000_000  # width*height*frames: an animation is held decoded while re-encoded


@dataclass(frozen=True)
class Sanitized:
    mime: str  # the sanitized type (never the declared one)
    data: bytes  # what gets stored
    width: int | None  # as displayed (after EXIF orientation), images only
    height: int | None
    thumbnail: bytes | None  # images: a JPEG (or PNG when the image has alpha) of <= thumb_px
    thumbnail_mime: str | None
    frames: int  # output frames of an image (1 for stills); 0 for PDF and text


RefusalCode = Literal["too_large", "unsupported_media_type", "invalid"]


class Refused(Exception):
    """The upload is not stored. ``status`` is the HTTP status to answer, ``code`` a stable token."""

    def __init__(self, status: int, code: RefusalCode, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code: RefusalCode = code
        self.message = message

    def __repr__(self) -> str:
        return f"Refused({self.status}, {self.code!r}, {self.message!r})"


def _too_large(message: str) -> Refused:
    return Refused(413, "too_large", message)


def _unsupported(message: str) -> Refused:
    return Refused(415, "unsupported_media_type", message)


def _invalid(message: str) -> Refused:
    return Refused(422, "invalid", message)


class _Malformed(ValueError):
    """A header that cannot be parsed (internal; becomes 422)."""


# --------------------------------------------------------------------------------------------
# Detection


_PNG_SIG: Final = b"\x89PNG\r\n\x1a\n"
# ISO-BMFF brands of still-image containers (HEIF/AVIF): not video, and not supported.
_IMAGE_BRANDS: Final = frozenset(
    {b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
)
# C0 controls other than TAB, LF, CR. In UTF-8 these bytes only ever encode themselves.
_BAD_CONTROL: Final = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# Leading blanks a browser or editor may skip: ASCII whitespace, BOM, and the UTF-8 forms of the
# Unicode spaces (NBSP, NEL, U+1680, U+2000-U+200A, U+2028/2029, U+202F, U+205F, U+3000).
_LEADING_BLANK: Final = re.compile(
    rb"(?:[ \t\r\n\x0b\x0c]|\xef\xbb\xbf|\xc2[\xa0\x85]|\xe1\x9a\x80|\xe2\x80[\x80-\x8a\xa8\xa9\xaf]"
    rb"|\xe2\x81\x9f|\xe3\x80\x80)*"
)
_MARKUP_START: Final = re.compile(rb"<[A-Za-z!?/]")
_TEXT_CHUNK: Final = 1 << 20


def detect(head: bytes) -> str | None:
    """The type of ``head`` (the first bytes of an upload, or all of it) by magic bytes only.

    For text, an incomplete UTF-8 sequence at the very end of ``head`` is tolerated (it may be a
    prefix); :func:`sanitize` validates the whole input. Returns ``None`` when unsupported.
    """
    return _detect(head, final=False)


def _detect(data: bytes, *, final: bool) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(_PNG_SIG):
        return PNG
    if data.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return WEBP
    if data.startswith(b"%PDF-"):
        return PDF
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return None if data[8:12] in _IMAGE_BRANDS else MP4
    if data and _is_plain_text(data, final=final):
        return TEXT
    return None


def _is_plain_text(data: bytes, *, final: bool) -> bool:
    if _BAD_CONTROL.search(data):
        return False
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    view = memoryview(data)
    try:
        for start in range(0, len(data), _TEXT_CHUNK):
            chunk = view[start : start + _TEXT_CHUNK]
            decoder.decode(chunk, final=final and start + _TEXT_CHUNK >= len(data))
    except UnicodeDecodeError:
        return False
    blank = _LEADING_BLANK.match(data)
    start = blank.end() if blank else 0
    return _MARKUP_START.match(data, start) is None


def _refusal_for_unknown(data: bytes) -> Refused:
    blank = _LEADING_BLANK.match(data)
    if _MARKUP_START.match(data, blank.end() if blank else 0):
        return _unsupported("markup (HTML, SVG, XML) is not accepted")
    if data.startswith(b"\x1f\x8b"):
        return _unsupported("compressed archives are not accepted")
    return _unsupported("unsupported media type (types are recognised by content, not by name)")


# --------------------------------------------------------------------------------------------
# Image headers, parsed without Pillow and without decompressing anything


@dataclass(frozen=True)
class _Header:
    width: int
    height: int
    frames: int  # capped: a walk stops one past the frame cap
    scans: int = 0  # JPEG: start-of-scan markers
    lossless: bool = False  # WebP: first bitstream is VP8L


def _u16be(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 2], "big")


def _u16le(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 2], "little")


def _u24le(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 3], "little")


def _u32be(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 4], "big")


def _u32le(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 4], "little")


class _Steps:
    """A budget of walk steps (segments, chunks, blocks): a flood of tiny blocks is refused
    instead of keeping a Python loop busy."""

    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left

    def take(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise _Malformed("too many blocks")


def _walk_budget(data: bytes) -> _Steps:
    # Real files: JPEG tens of segments, PNG chunks of kilobytes, GIF sub-blocks of 255 bytes.
    return _Steps(100_000 + len(data) // 128)


# Start-of-frame markers: C0-CF except DHT (C4), JPG (C8), DAC (CC).
_JPEG_SOF: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# The next marker: 0xFF (fill bytes allowed) then neither stuffing (00), RSTn nor 0xFF. Searching
# for it skips entropy-coded data (where 0xFF is always stuffed) and junk between segments.
_JPEG_MARKER: Final = re.compile(rb"\xff+([^\x00\xd0-\xd7\xff])")


def _probe_jpeg(data: bytes, steps: _Steps, scan_cap: int) -> _Header:
    """Walk the marker segments up to EOI: the frame size, and the scans (counted up to one past
    ``scan_cap``). Bytes after EOI (motion-photo videos, appended HTML) are never looked at."""
    n = len(data)
    pos = 2
    size: tuple[int, int] | None = None
    scans = 0
    while (match := _JPEG_MARKER.search(data, pos)) is not None:
        steps.take()
        marker = match.group(1)[0]
        pos = match.end()
        if marker in (0x01, 0xD8):  # TEM, SOI: no length
            continue
        if marker == 0xD9:  # EOI
            break
        if size is None and marker == 0xDA:
            raise _Malformed("JPEG scan before the frame header")
        if pos + 2 > n:
            break
        length = _u16be(data, pos)
        if length < 2:
            raise _Malformed("bad JPEG segment length")
        if marker in _JPEG_SOF and size is None:
            if pos + 7 > n:
                raise _Malformed("truncated JPEG frame header")
            size = (_u16be(data, pos + 5), _u16be(data, pos + 3))
            if scan_cap < 1:
                break
        elif marker == 0xDA:
            scans += 1
            if scans > scan_cap:
                break
        pos += length
    if size is None:
        raise _Malformed("JPEG without a frame header")
    if not size[0] or not size[1]:
        raise _Malformed("JPEG with a zero dimension")
    return _Header(size[0], size[1], 1, scans=scans)


def _probe_png(data: bytes, steps: _Steps) -> _Header:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise _Malformed("PNG without IHDR")
    width, height = _u32be(data, 16), _u32be(data, 20)
    if not width or not height:
        raise _Malformed("PNG with a zero dimension")
    # acTL and the first frame's fcTL must precede IDAT: stop there.
    n = len(data)
    pos = 8
    declared: int | None = None
    fctl_first = False
    while pos + 8 <= n:
        steps.take()
        length = _u32be(data, pos)
        ctype = data[pos + 4 : pos + 8]
        if ctype == b"IDAT":
            break
        if ctype == b"acTL" and length >= 8 and pos + 12 <= n:
            declared = _u32be(data, pos + 8)
        elif ctype == b"fcTL":
            fctl_first = True
        pos += 12 + length
    frames = 1
    if declared:  # as Pillow counts: plus a default image when IDAT is not the first frame
        frames = declared + (0 if fctl_first else 1)
    return _Header(width, height, frames)


_GIF_BLOCK: Final = re.compile(rb"[!,;]")


def _skip_gif_sub_blocks(data: bytes, pos: int, steps: _Steps) -> int:
    n = len(data)
    while pos < n:
        steps.take()
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos
    return n


def _probe_gif(data: bytes, steps: _Steps, frame_cap: int) -> _Header:
    n = len(data)
    if n < 13:
        raise _Malformed("truncated GIF header")
    width, height = _u16le(data, 6), _u16le(data, 8)
    flags = data[10]
    pos = 13 + ((3 << ((flags & 7) + 1)) if flags & 0x80 else 0)
    frames = 0
    while pos < n:
        steps.take()
        block = data[pos]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: label, then sub-blocks
            pos = _skip_gif_sub_blocks(data, pos + 2, steps)
        elif block == 0x2C:  # image descriptor
            if pos + 10 > n:
                break
            x, y, w, h = struct.unpack_from("<4H", data, pos + 1)
            local = data[pos + 9]
            # Pillow grows the canvas when a frame reaches past the logical screen.
            width, height = max(width, x + w), max(height, y + h)
            frames += 1
            if frames > frame_cap:
                break
            pos += 10 + ((3 << ((local & 7) + 1)) if local & 0x80 else 0)
            pos = _skip_gif_sub_blocks(data, pos + 1, steps)  # +1: LZW minimum code size
        else:  # Pillow skips stray bytes; so does this walk
            match = _GIF_BLOCK.search(data, pos + 1)
            if match is None:
                break
            pos = match.start()
    if not frames:
        raise _Malformed("GIF without an image")
    if not width or not height:
        raise _Malformed("GIF with a zero dimension")
    return _Header(width, height, frames)


def _probe_webp(data: bytes, steps: _Steps, frame_cap: int) -> _Header:
    n = len(data)
    if n < 30:
        raise _Malformed("truncated WebP header")
    end = min(n, 8 + _u32le(data, 4))
    fourcc = data[12:16]
    payload = 20
    if fourcc == b"VP8 ":
        if data[payload + 3 : payload + 6] != b"\x9d\x01\x2a":
            raise _Malformed("bad VP8 frame header")
        width, height = _u16le(data, payload + 6) & 0x3FFF, _u16le(data, payload + 8) & 0x3FFF
        header = _Header(width, height, 1)
    elif fourcc == b"VP8L":
        if data[payload] != 0x2F:
            raise _Malformed("bad VP8L signature")
        bits = _u32le(data, payload + 1)
        header = _Header((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, 1, lossless=True)
    elif fourcc == b"VP8X":
        width, height = _u24le(data, payload + 4) + 1, _u24le(data, payload + 7) + 1
        animated = bool(data[payload] & 0x02)
        frames = 0
        lossless: bool | None = None
        pos = 12
        while pos + 8 <= end and frames <= frame_cap:
            steps.take()
            cid, size = data[pos : pos + 4], _u32le(data, pos + 4)
            if cid == b"ANMF":
                frames += 1
                sub = pos + 8 + 16
                if data[sub : sub + 4] == b"ALPH":
                    sub += 8 + _u32le(data, sub + 4)
                    sub += sub & 1
                if lossless is None:
                    lossless = data[sub : sub + 4] == b"VP8L"
            elif cid in (b"VP8 ", b"VP8L") and lossless is None:
                lossless = cid == b"VP8L"
            if not animated and lossless is not None:
                break
            pos += 8 + size + (size & 1)
        if animated and not frames:
            raise _Malformed("animated WebP without frames")
        header = _Header(width, height, frames if animated else 1, lossless=bool(lossless))
    else:
        raise _Malformed("unknown WebP bitstream")
    if not header.width or not header.height:
        raise _Malformed("WebP with a zero dimension")
    return header


def _probe(data: bytes, mime: str, *, steps: _Steps, frame_cap: int, scan_cap: int) -> _Header:
    """The header of an image: raises ``_Malformed`` (or ``IndexError``/``struct.error``)."""
    if mime == JPEG:
        return _probe_jpeg(data, steps, scan_cap)
    if mime == PNG:
        return _probe_png(data, steps)
    if mime == GIF:
        return _probe_gif(data, steps, frame_cap)
    if mime == WEBP:
        return _probe_webp(data, steps, frame_cap)
    raise _Malformed(f"not an image: {mime}")


_HEADER_STEPS: Final = 10_000


def pixels_of(data: bytes) -> int | None:
    """``width*height`` of one frame, from the header only: nothing is decoded or decompressed,
    and the walk is bounded (at most ``_HEADER_STEPS`` segments/blocks), so it may run on an
    event loop.

    For GIF this is the logical screen grown by the first frame (as Pillow opens it); a later
    frame may grow the canvas further, which :func:`sanitize` checks (``max_pixels``). ``None`` for
    non-images and headers that do not parse.
    """
    mime = _detect(data[:16], final=False)
    if mime not in IMAGE_TYPES:
        return None
    try:
        header = _probe(data, mime, steps=_Steps(_HEADER_STEPS), frame_cap=0, scan_cap=0)
    except (_Malformed, IndexError, struct.error):
        return None
    return header.width * header.height


# --------------------------------------------------------------------------------------------
# Image re-encoding


_FORMAT: Final = {JPEG: "JPEG", PNG: "PNG", GIF: "GIF", WEBP: "WEBP"}
# The transposition ImageOps.exif_transpose applies for each EXIF orientation.
_TRANSPOSE: Final = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ORIENTATION_TAG: Final = 0x0112
_ALPHA_MODES: Final = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_WIDE_GREY_MODES: Final = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})


def _check_budget(width: int, height: int, frames: int, limits: Limits) -> None:
    pixels = width * height
    if pixels > limits.max_pixels:
        raise _too_large(f"image is {width}x{height} = {pixels} pixels; the limit is {limits.max_pixels} pixels")
    if frames > limits.max_frames:
        raise _too_large(f"animation has more than {limits.max_frames} frames")
    if pixels * frames > limits.max_total_pixels:
        raise _too_large(
            f"animation is {frames} frames of {pixels} pixels; the limit is {limits.max_total_pixels} pixels in all"
        )


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(_ORIENTATION_TAG)
    except Exception:  # hostile EXIF: it is dropped anyway, so is its orientation
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _valid_icc(value: object) -> bytes | None:
    if not isinstance(value, bytes) or not 132 <= len(value) <= MAX_ICC_BYTES or value[36:40] != b"acsp":
        return None
    return value


def _clean(frame: Image.Image) -> Image.Image:
    """Replace ``info`` by the one key the encoders need (they fall back to ``info`` for comments)."""
    transparency = frame.info.get("transparency")
    frame.info = {} if transparency is None else {"transparency": transparency}
    return frame


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in _ALPHA_MODES or "transparency" in im.info


def _uniform(frames: list[Image.Image]) -> list[Image.Image]:
    """GIF frames decoded before the canvas grew are smaller: put them on the final canvas."""
    size = (max(f.width for f in frames), max(f.height for f in frames))
    out: list[Image.Image] = []
    for frame in frames:
        if frame.size != size:
            fill: Any = frame.info.get("transparency", 0) if frame.mode == "P" else 0
            canvas = Image.new(frame.mode, size, fill)
            if frame.mode == "P" and frame.palette is not None:
                canvas.palette = frame.palette.copy()
            canvas.paste(frame, (0, 0))
            canvas.info = dict(frame.info)
            frame = canvas
        out.append(frame)
    return out


def _thumbnail(frame: Image.Image, px: int) -> tuple[bytes, str]:
    alpha = _has_alpha(frame) and frame.mode not in _WIDE_GREY_MODES  # 16-bit grey: tRNS is ignored
    target = "RGBA" if alpha else "RGB"
    im = frame
    if im.mode in _WIDE_GREY_MODES:
        im = im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    elif im.mode not in ("RGB", "RGBA", "L", "LA") or "transparency" in im.info:
        im = im.convert(target)  # palette/bilevel images do not resample; transparency needs alpha
    scale = min(1.0, px / max(im.size))
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    if size != im.size:
        im = im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if im.mode != target:
        im = im.convert(target)
    im.info = {}
    buf = BytesIO()
    if alpha:
        im.save(buf, "PNG")
        return buf.getvalue(), PNG
    im.save(buf, "JPEG", quality=THUMB_JPEG_QUALITY)
    return buf.getvalue(), JPEG


def _encode(
    frames: list[Image.Image],
    fmt: str,
    *,
    icc: bytes | None,
    durations: list[int],
    loop: int | None,
    lossless: bool,
    default_image: bool,
) -> bytes:
    first = frames[0]
    params: dict[str, Any] = {}
    if icc is not None and fmt != "GIF":
        params["icc_profile"] = icc
    if fmt == "JPEG":
        params.update(quality=JPEG_QUALITY, optimize=False)
    elif fmt == "PNG":
        params["optimize"] = False
        if "transparency" in first.info:
            params["transparency"] = first.info["transparency"]
    elif fmt == "WEBP":
        params.update(quality=WEBP_QUALITY, lossless=lossless, exif=b"", xmp=b"")
    if len(frames) > 1:
        params.update(save_all=True, append_images=frames[1:], duration=durations)
        if loop is not None:
            params["loop"] = loop
        if fmt == "PNG" and default_image:
            params["default_image"] = True
    buf = BytesIO()
    first.save(buf, fmt, **params)
    return buf.getvalue()


def _sanitize_image(data: bytes, mime: str, limits: Limits) -> Sanitized:
    try:
        header = _probe(data, mime, steps=_walk_budget(data), frame_cap=limits.max_frames, scan_cap=MAX_JPEG_SCANS)
    except (_Malformed, IndexError, struct.error) as e:
        raise _invalid(f"malformed {mime} header: {e}") from None
    _check_budget(header.width, header.height, header.frames, limits)
    if header.scans > MAX_JPEG_SCANS:
        raise _too_large(f"JPEG has {header.scans} scans; the limit is {MAX_JPEG_SCANS}")
    try:
        return _reencode(data, mime, header, limits)
    except Refused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise _too_large(f"image is too large to decode: {e}") from None
    except MemoryError:
        raise _too_large("image is too large to decode") from None
    except Exception as e:  # hostile input: whatever a decoder raises means "not a valid image"
        raise _invalid(f"cannot decode {mime}: {type(e).__name__}: {e}") from None


def _reencode(data: bytes, mime: str, header: _Header, limits: Limits) -> Sanitized:
    fmt = _FORMAT[mime]
    with Image.open(BytesIO(data), formats=[fmt]) as im:
        if mime == JPEG:
            count = 1  # a still; further MPO pictures are dropped
        elif mime == GIF:
            count = header.frames  # Pillow's n_frames walks the whole file; this walk stopped at the cap
        else:
            count = int(getattr(im, "n_frames", 1))
        _check_budget(im.width, im.height, count, limits)
        icc = _valid_icc(im.info.get("icc_profile"))
        loop = im.info.get("loop")
        default_image = bool(im.info.get("default_image"))
        method = _TRANSPOSE.get(_orientation(im))

        frames: list[Image.Image] = []
        durations: list[int] = []
        for index in range(count):
            if index:
                try:
                    im.seek(index)
                except EOFError:  # fewer frames than the header walk found
                    break
            im.load()
            _check_budget(im.width, im.height, count, limits)
            durations.append(round(float(im.info.get("duration") or 0)))
            if method is not None:
                frame = im.transpose(method)
                if count == 1:
                    im.close()  # release the untransposed pixels now: a rotated photo is held once
            elif count > 1:
                frame = im.copy()  # the next seek reuses im
            else:
                frame = im
            frames.append(_clean(frame))

        if mime == GIF and len(frames) > 1:
            frames = _uniform(frames)
        out = _encode(
            frames,
            fmt,
            icc=icc,
            durations=durations,
            loop=loop if isinstance(loop, int) else None,
            lossless=header.lossless,
            default_image=default_image,
        )
        first = frames[0]
        thumb, thumb_mime = _thumbnail(first, limits.thumb_px)
        width, height = first.size

    if len(out) > limits.max_bytes:
        raise _too_large(f"the re-encoded image is {len(out)} bytes; the limit is {limits.max_bytes} bytes")
    try:
        out_frames = _probe(out, mime, steps=_walk_budget(out), frame_cap=limits.max_frames, scan_cap=0).frames
    except (_Malformed, IndexError, struct.error):
        out_frames = len(frames)
    return Sanitized(
        mime=mime,
        data=out,
        width=width,
        height=height,
        thumbnail=thumb,
        thumbnail_mime=thumb_mime,
        frames=out_frames,
    )


# --------------------------------------------------------------------------------------------
# Entry point


_PDF_HEADER: Final = re.compile(rb"%PDF-\d\.\d")


def sanitize(data: bytes, limits: Limits) -> Sanitized:
    """Type ``data`` by content and return what may be stored; raises :class:`Refused`."""
    if not data:
        raise _invalid("empty upload")
    if len(data) > limits.max_bytes:
        raise _too_large(f"upload is {len(data)} bytes; the limit is {limits.max_bytes} bytes")
    data = bytes(data)
    mime = _detect(data, final=True)
    if mime is None:
        raise _refusal_for_unknown(data)
    if mime in IMAGE_TYPES:
        return _sanitize_image(data, mime, limits)
    if mime == PDF:
        if not _PDF_HEADER.match(data):
            raise _invalid("PDF without a version header")
        if b"%%EOF" not in data[-PDF_EOF_WINDOW:]:
            raise _invalid("PDF without %%EOF at the end (truncated?)")
        return Sanitized(PDF, data, None, None, None, None, 0)
    if mime == TEXT:
        return Sanitized(TEXT, data, None, None, None, None, 0)
    if mime == MP4:
        if limits.allow_mp4:
            raise _unsupported("video/mp4 is not accepted: its metadata cannot be stripped by this service")
        raise _unsupported("video/mp4 uploads are not accepted")
    raise _unsupported(f"{mime} is not accepted")  # pragma: no cover - every detected type is handled above


# --------------------------------------------------------------------------------------------
# Names


_EXTENSIONS: Final = {
    JPEG: (".jpg", ".jpeg"),
    PNG: (".png",),
    GIF: (".gif",),
    WEBP: (".webp",),
    PDF: (".pdf",),
    MP4: (".mp4",),
    "text/plain": (".txt",),
}
_FORBIDDEN_CHARS: Final = re.compile(r'[<>:"/\\|?*\uff0f\uff3c\u2215\u2044\u29f8\u29f9]')
_EXTENSION_LIKE: Final = re.compile(r"[A-Za-z0-9]{1,10}")
_WINDOWS_RESERVED: Final = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(1, 10)}
)


def safe_name(name: str | None, mime: str) -> str:
    """A display name for an upload of sanitized type ``mime``; never empty, never a path.

    ``x.jpg.php`` stored as JPEG becomes ``x.jpg.jpg``: an extension-like suffix that does not
    belong to ``mime`` is replaced, otherwise the type's extension is appended.
    """
    base = mime.split(";", 1)[0].strip().lower()
    allowed = _EXTENSIONS.get(base, (".bin",))
    text = unicodedata.normalize("NFC", name or "")
    # Control, format (bidi overrides, zero-width), surrogate, private-use and unassigned
    # characters go; line/paragraph separators and tabs become blanks.
    text = "".join(
        " " if ch.isspace() else ch for ch in text if ch.isspace() or not unicodedata.category(ch).startswith("C")
    )
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = _FORBIDDEN_CHARS.sub("_", " ".join(text.split())).strip(" .")
    stem, dot, suffix = text.rpartition(".")
    if dot and stem and _EXTENSION_LIKE.fullmatch(suffix):
        ext = "." + suffix.lower()
        if ext not in allowed:
            ext = allowed[0]
    else:
        stem, ext = text, allowed[0]
    stem = stem.rstrip(" .")
    if stem.split(".", 1)[0].strip().upper() in _WINDOWS_RESERVED:
        stem = "_" + stem
    stem = stem[: MAX_NAME_CHARS - len(ext)].rstrip(" .") or "file"
    return stem + ext
