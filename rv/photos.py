"""A patient's photo as uploaded, checked and made safe to store and show (issue 15).

Only JPEG and PNG are taken, recognised by their bytes (not by the file's name or the
browser's content type), within a size cap (settings.RV_PHOTO_MAX_BYTES) and a pixel cap
checked before any pixel is decoded (a small file can declare a huge image). The picture
is then decoded and encoded again as a fresh JPEG at most STORED_SIDE pixels a side, with
a thumbnail: nothing of the uploaded file but its pixels is kept, so no script, metadata
(EXIF, GPS) or trailing data hidden in a "PNG" can reach the store or a browser.

Pure: bytes in, bytes out or PhotoInvalid with a message for the user. Uses Pillow.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
MAX_SIDE = 8000          # pixels, either side, as declared by the file
MAX_PIXELS = 40_000_000  # width x height, as declared
MIN_SIDE = 32
STORED_SIDE = 800
THUMB_SIDE = 96
JPEG_QUALITY = 85
CONTENT_TYPE = "image/jpeg"


class PhotoInvalid(ValueError):
    """The upload is not a photo rv stores; `message` says why, for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Photo:
    image: bytes       # JPEG
    thumbnail: bytes   # JPEG
    width: int
    height: int
    sha256: str
    uploaded_format: str  # "JPEG" or "PNG"
    uploaded_size: int
    content_type: str = CONTENT_TYPE


def sniff(data: bytes) -> str | None:
    """"PNG" or "JPEG" by the file's first bytes, else None."""
    if data.startswith(PNG_MAGIC):
        return "PNG"
    if data.startswith(JPEG_MAGIC):
        return "JPEG"
    return None


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f}".rstrip("0").rstrip(".") + " MB"


def photo_prepare(data: bytes, *, max_bytes: int) -> Photo:
    """Check the upload and re-encode it; raises PhotoInvalid (never anything else)."""
    if not data:
        raise PhotoInvalid("The file is empty: choose a JPEG or PNG photo.")
    if len(data) > max_bytes:
        raise PhotoInvalid(f"The photo is larger than {_megabytes(max_bytes)}, the largest "
                           "taken: send a smaller one.")
    kind = sniff(data)
    if kind is None:
        raise PhotoInvalid("This file is not a JPEG or PNG image.")
    try:
        return _reencode(data, kind)
    except PhotoInvalid:
        raise
    except Exception as exc:  # any decoder failure: a broken or disguised file
        raise PhotoInvalid(f"This file cannot be read as a {kind} image.") from exc


def _reencode(data: bytes, kind: str) -> Photo:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        im = Image.open(io.BytesIO(data), formats=[kind])
        width, height = im.size
        if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
            raise PhotoInvalid(f"The photo is {width} x {height} pixels; the largest taken "
                               f"is {MAX_SIDE} pixels a side and "
                               f"{MAX_PIXELS // 1_000_000} megapixels.")
        if width < MIN_SIDE or height < MIN_SIDE:
            raise PhotoInvalid(f"The photo is {width} x {height} pixels; it must be at least "
                               f"{MIN_SIDE} pixels a side to recognise a face.")
        im.load()
    rgb = _rgb(ImageOps.exif_transpose(im) or im)
    stored = rgb.copy()
    stored.thumbnail((STORED_SIDE, STORED_SIDE), Image.Resampling.LANCZOS)
    thumb = rgb.copy()
    thumb.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    image = _jpeg(stored)
    return Photo(image=image, thumbnail=_jpeg(thumb), width=stored.width,
                 height=stored.height, sha256=hashlib.sha256(image).hexdigest(),
                 uploaded_format=kind, uploaded_size=len(data))


def _rgb(im: Image.Image) -> Image.Image:
    """The picture as 8-bit RGB, transparency flattened onto white."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        im = im.point(lambda v: v / 256).convert("L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def _jpeg(im: Image.Image) -> bytes:
    out = io.BytesIO()
    im.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()
