"""Face crops framed exactly as the pipeline frames them, and seeded augmented views of them.

The pipeline (src/pipeline/crop.ts) takes the detector's box, makes a square of side round(max(w, h) * 1.3)
centred on it, replicates edge pixels where the square leaves the frame, and resizes the square to the
encoder's input. `crop_square` and `render_crop` do the same here, so a model trained on these crops sees
the framing it will see deployed (the crops CSV written by `cafe-stream evaluate --save-crops` holds the
detector boxes).

`Jitter` adds what the encoder never saw when only clean images were cached: scale and shift of the
square, in-plane rotation, blur, JPEG, gamma, contrast and sensor noise. A view is a pure function of
(image, seed), so a feature cache of augmented views is reproducible.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

CROP_SCALE = 1.3  # src/pipeline/options.ts crop.scale default


def _js_round(x: float) -> int:
    """JavaScript's Math.round (halves go up), which crop.ts uses; Python's round() goes to even."""
    return math.floor(x + 0.5)


def crop_square(box: tuple[float, float, float, float], scale: float = CROP_SCALE) -> tuple[int, int, int]:
    """(x, y, side) of the pipeline's square crop region for detector box (x, y, w, h), frame pixels."""
    x, y, w, h = box
    side = max(1, _js_round(max(w, h) * scale))
    return _js_round(x + w / 2 - side / 2), _js_round(y + h / 2 - side / 2), side


def whole_image_box(width: int, height: int, scale: float = CROP_SCALE) -> tuple[float, float, float, float]:
    """The detector box whose crop region is the whole (square) image: for sets that are already crops."""
    side = max(width, height) / scale
    return (width - side) / 2, (height - side) / 2, side, side


@dataclass(frozen=True)
class Jitter:
    """Ranges of the geometric and photometric augmentations (all drawn uniformly unless noted)."""
    scale: tuple[float, float] = (0.9, 1.15)  # × the crop side
    shift: float = 0.06  # × the crop side, each axis
    rotate_deg: float = 12.0
    gamma: tuple[float, float] = (0.6, 1.6)
    contrast: tuple[float, float] = (0.6, 1.3)
    brightness: float = 0.1  # ± share of full scale
    blur_p: float = 0.35
    blur_sigma: tuple[float, float] = (0.6, 2.2)  # pixels at the output size
    jpeg_p: float = 0.35
    jpeg_quality: tuple[int, int] = (25, 85)
    noise_p: float = 0.3
    noise_std: tuple[float, float] = (2.0, 8.0)  # grey levels
    flip_p: float = 0.5


def _sample_region(img: torch.Tensor, cx: float, cy: float, side: float, angle: float, size: int) -> torch.Tensor:
    """Bilinear samples of a square (centre cx, cy; side; rotated by `angle` radians) of img (3, H, W) float,
    edge pixels replicated outside the image, as a (3, size, size) tensor."""
    _, h, w = img.shape
    # Output pixel centres in the square's own frame, in units of its half side: [-1, 1].
    t = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    gy, gx = torch.meshgrid(t, t, indexing="ij")
    c, s = math.cos(angle), math.sin(angle)
    px = cx + (gx * c - gy * s) * side / 2  # source pixel coordinates (continuous, pixel centres at +0.5)
    py = cy + (gx * s + gy * c) * side / 2
    grid = torch.stack([px / w * 2 - 1, py / h * 2 - 1], dim=-1).unsqueeze(0)
    return F.grid_sample(img.unsqueeze(0), grid, mode="bilinear", padding_mode="border", align_corners=False)[0]


def render_crop(image: np.ndarray, box: tuple[float, float, float, float], size: int,
                scale: float = CROP_SCALE) -> np.ndarray:
    """The pipeline's crop of `image` (RGB uint8 H×W×3) for detector `box`, resized to size×size (uint8).
    Shrinking goes through PIL's antialiased bicubic (sharp's cubic), growing the same."""
    x, y, side = crop_square(box, scale)
    h, w = image.shape[:2]
    rows = np.clip(np.arange(y, y + side), 0, h - 1)
    cols = np.clip(np.arange(x, x + side), 0, w - 1)
    square = image[rows][:, cols]
    if side == size:
        return np.ascontiguousarray(square)
    return np.asarray(Image.fromarray(square).resize((size, size), Image.BICUBIC))


def render_view(image: np.ndarray, box: tuple[float, float, float, float], size: int, seed: int,
                jitter: Jitter = Jitter(), scale: float = CROP_SCALE) -> tuple[np.ndarray, bool]:
    """One augmented view (uint8 size×size×3) of the pipeline's crop, and whether it was mirrored.
    Deterministic in `seed`."""
    rng = np.random.default_rng(seed)
    x, y, base = crop_square(box, scale)
    side = base * rng.uniform(*jitter.scale)
    cx = x + base / 2 + rng.uniform(-jitter.shift, jitter.shift) * side
    cy = y + base / 2 + rng.uniform(-jitter.shift, jitter.shift) * side
    angle = math.radians(rng.uniform(-jitter.rotate_deg, jitter.rotate_deg))
    src = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1).float()
    # Shrinking a large region by bilinear sampling aliases: pre-shrink the whole image with PIL first.
    factor = side / size
    if factor > 1.5:
        k = factor / 1.25
        small = Image.fromarray(image).resize((max(1, round(image.shape[1] / k)), max(1, round(image.shape[0] / k))),
                                              Image.BICUBIC)
        src = torch.from_numpy(np.asarray(small)).permute(2, 0, 1).float()
        sx, sy = small.width / image.shape[1], small.height / image.shape[0]
        cx, cy, side = cx * sx, cy * sy, side * sx
    v = _sample_region(src, cx, cy, side, angle, size) / 255.0  # (3, size, size) in [0, 1]
    # photometric, on luma-preserving RGB: contrast about the mean, brightness, gamma
    v = (v - v.mean()) * rng.uniform(*jitter.contrast) + v.mean() + rng.uniform(-jitter.brightness, jitter.brightness)
    v = v.clamp(0, 1) ** rng.uniform(*jitter.gamma)
    if rng.random() < jitter.blur_p:
        sigma = rng.uniform(*jitter.blur_sigma)
        r = max(1, int(math.ceil(3 * sigma)))
        k = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float32) ** 2) / (2 * sigma ** 2))
        k = (k / k.sum()).view(1, 1, 1, -1).expand(3, 1, 1, -1)
        v = F.conv2d(F.pad(v.unsqueeze(0), (r, r, 0, 0), mode="replicate"), k, groups=3)
        v = F.conv2d(F.pad(v, (0, 0, r, r), mode="replicate"), k.transpose(-1, -2), groups=3)[0]
    if rng.random() < jitter.noise_p:
        g = torch.Generator().manual_seed(int(rng.integers(2**62)))
        v = v + torch.randn(v.shape, generator=g) * rng.uniform(*jitter.noise_std) / 255.0
    out = (v.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    if rng.random() < jitter.jpeg_p:
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG", quality=int(rng.integers(*jitter.jpeg_quality)))
        out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    flipped = bool(rng.random() < jitter.flip_p)
    if flipped:
        out = out[:, ::-1]
    return np.ascontiguousarray(out), flipped
