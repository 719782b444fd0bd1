"""Images to PNG for review in the browser: numpy and the standard library only (Pillow is
not a dependency; a PNG of 8-bit grey or RGB is a few lines of zlib and struct).

Pure functions except `render_instance`, which reads the archived file and caches the PNG
under RV_DATA_DIR/cache/png/<sha256>-<wc>-<ww>.png. PS3.3 C.11.1 (Modality LUT: Rescale
Slope / Intercept), C.11.2.1.2.1 (VOI LUT function LINEAR: Window Center / Width),
C.7.6.3.1.2 (Photometric Interpretation: MONOCHROME1 shows low values bright).
"""

from __future__ import annotations

import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
from django.conf import settings
from pydicom import dcmread
from pydicom.dataset import Dataset

import archive.models
from archive import storage


class CannotRender(Exception):
    """The image cannot be shown (compressed without a decoder, no pixel data ...)."""


def png_encode(pixels: np.ndarray) -> bytes:
    """An 8-bit PNG (PNG spec, ISO/IEC 15948) of a 2-D grey or H x W x 3 RGB uint8 array,
    every row with filter type 0 (none)."""
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or (
            pixels.ndim == 3 and pixels.shape[2] != 3):
        raise ValueError("png_encode wants uint8 H x W or H x W x 3")
    height, width = pixels.shape[:2]
    colour = 0 if pixels.ndim == 2 else 2
    rows = np.ascontiguousarray(pixels).reshape(height, -1)
    raw = np.hstack([np.zeros((height, 1), np.uint8), rows]).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def window(values: np.ndarray, *, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 LINEAR VOI LUT to 0..255."""
    if width <= 1:  # a threshold
        return np.where(values > center - 0.5, 255, 0).astype(np.uint8)
    low = center - 0.5 - (width - 1) / 2
    scaled = (values - low) / (width - 1) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _first(value: object) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, list | tuple) or hasattr(value, "__getitem__") and not isinstance(
            value, str | bytes):
        try:
            value = value[0]  # type: ignore[index]
        except (IndexError, TypeError):
            return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def modality_values(ds: Dataset) -> np.ndarray:
    """The pixel data (first frame) with Rescale Slope / Intercept applied."""
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - any decoder failure: say so, do not 500
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(ts, "name", ts) or "unknown"
        raise CannotRender(f"Cannot render this image (transfer syntax {name}): {exc}") from exc
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        pixels = pixels[0]
    if ds.get("SamplesPerPixel", 1) != 1:
        return pixels
    slope = _first(ds.get("RescaleSlope")) or 1.0
    intercept = _first(ds.get("RescaleIntercept")) or 0.0
    return pixels.astype(np.float64) * slope + intercept


def auto_window(ds: Dataset, values: np.ndarray) -> tuple[float, float]:
    """Window Center / Width from the image, else its full range."""
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is not None and width is not None and width >= 1:
        return center, width
    low, high = float(values.min()), float(values.max())
    return (low + high) / 2, max(high - low, 1.0)


def render(ds: Dataset, *, center: float | None = None, width: float | None = None) -> bytes:
    """PNG of the image's first frame, windowed by the given or the image's own values."""
    if "PixelData" not in ds:
        raise CannotRender("This object has no pixel data.")
    values = modality_values(ds)
    if values.ndim == 3:  # colour: shown as is
        if values.dtype != np.uint8:
            raise CannotRender("Only 8-bit colour images can be shown.")
        return png_encode(values)
    if values.ndim != 2:
        raise CannotRender("Only single-frame 2-D images can be shown.")
    auto_c, auto_w = auto_window(ds, values)
    grey = window(values, center=auto_c if center is None else center,
                  width=auto_w if width is None else width)
    if str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        grey = 255 - grey
    return png_encode(grey)


def _key(value: float | None) -> str:
    return "auto" if value is None else f"{value:g}"


def render_instance(instance: archive.models.Instance, *, center: float | None = None,
                    width: float | None = None) -> bytes:
    """The archived instance as PNG, from the cache when rendered before."""
    base = Path(settings.RV_DATA_DIR) / "cache" / "png"
    name = f"{instance.sha256}-{_key(center)}-{_key(width)}.png"
    path = base / name
    if path.is_file():
        return path.read_bytes()
    try:
        ds = dcmread(storage.absolute_path(instance.path))
    except Exception as exc:  # noqa: BLE001 - unreadable file: a message, not a 500
        raise CannotRender(f"Cannot read the stored object: {exc}") from exc
    data = render(ds, center=center, width=width)
    base.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=base, prefix=".png-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)  # a reader sees the old file or the whole new one
    return data

