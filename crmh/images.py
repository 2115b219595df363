"""Reading any image a user gives, as the user sees it.

- The EXIF orientation is applied (a phone's portrait photo is upright).
- Grayscale, palette and CMYK images become RGB.
- Transparent pixels are composited over white (as viewers show them).
- 16-bit images are scaled to 8 bits, not clipped.

An unreadable, truncated or non-image file raises :class:`BadImage` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

__all__ = ["BadImage", "load_image", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class BadImage(ValueError):  # noqa: N818 - names what is wrong with the input
    """A file that cannot be read as an image (the message names it and why)."""


def load_image(path: str | Path) -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB pixels of the file at ``path``, upright."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()  # a truncated file fails here
            upright = ImageOps.exif_transpose(image)
            return _rgb(upright)
    except FileNotFoundError as error:
        raise BadImage(f"{path}: no such file") from error
    except Exception as error:  # noqa: BLE001 - any decoding failure: not a usable image
        raise BadImage(f"{path}: not a readable image ({error})") from error


def _rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if pixels.max(initial=0) > 255 else 255.0
        gray = np.clip(pixels / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.array(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.array(image.convert("RGB"))
