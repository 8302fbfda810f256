"""Image preprocessing shared by training, feature caching and ONNX evaluation.

`preprocess` is what the TypeScript model stage does with a manifest's `inputs.image` block (colour, straight
bilinear resize of the whole crop, x = (pixel/255 - mean)/std, layout), so the trainer and the deployed
pipeline feed the models the same numbers. `TrainAugment` is the reference's train transform, batched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GRAY_WEIGHTS = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class ImageSpec:
    height: int
    width: int
    color: str = "rgb"  # "rgb" | "gray"
    layout: str = "NCHW"  # "NCHW" | "NHWC"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channels: int = 3  # 1: a grey input folded to one channel (`trainer fold-grey-input`)

    @classmethod
    def from_manifest(cls, image: Mapping[str, Any], color: str | None = None) -> "ImageSpec":
        """From a manifest's `inputs.image`; `color` overrides it (a head's `encoder.color`)."""
        return cls(int(image["height"]), int(image["width"]), color or image["color"], image["layout"],
                   tuple(image["mean"]), tuple(image["std"]), int(image.get("channels", 3)))


def to_gray(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float -> luma repeated on 3 channels, as the pipeline's `color: gray`."""
    w = torch.tensor(GRAY_WEIGHTS, dtype=rgb.dtype).view(1, 3, 1, 1)
    return (rgb * w).sum(1, keepdim=True).expand(-1, 3, -1, -1)


def _normalize(x01: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    m = torch.tensor(mean, dtype=x01.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x01.dtype).view(1, 3, 1, 1)
    return (x01 - m) / s


def resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Straight bilinear resize (no crop); antialiased when shrinking, like libvips/sharp."""
    if x.shape[-2:] == (height, width):
        return x
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)


def preprocess(images: Sequence[np.ndarray], spec: ImageSpec) -> np.ndarray:
    """RGB uint8 (H, W, 3) crops of any sizes -> the model input batch described by `spec` (float32)."""
    out = []
    same = len({im.shape for im in images}) == 1
    groups = [np.stack(images)] if same else [im[None] for im in images]
    for g in groups:
        x = torch.from_numpy(np.ascontiguousarray(g)).permute(0, 3, 1, 2).float()
        if spec.color == "gray":
            x = to_gray(x)
        x = resize(x, spec.height, spec.width) / 255.0
        x = _normalize(x, spec.mean, spec.std)
        if spec.channels == 1:
            if spec.color != "gray":
                raise ValueError("a one-channel input must be fed grey")
            x = x[:, :1]
        out.append(x.permute(0, 2, 3, 1) if spec.layout == "NHWC" else x)
    return torch.cat(out).contiguous().numpy()


class TrainAugment:
    """The reference's train transform on a batch of grey uint8 images, in its order:
    Gaussian noise (p, var) on uint8 -> resize -> /255 -> normalise -> horizontal flip -> RandomErasing
    (p, scale, ratio, value 0, after normalisation). Returns the batch and which samples were flipped, so the
    caller can pick the cached encoder feature of the flipped image.
    """

    def __init__(self, size: int, *, noise_p: float = 0.5, noise_var: float = 30.0, flip_p: float = 0.5,
                 erase_p: float = 0.5, erase_scale: tuple[float, float] = (0.02, 0.25),
                 erase_ratio: tuple[float, float] = (0.3, 3.3)) -> None:
        self.size, self.noise_p, self.noise_std = size, noise_p, math.sqrt(noise_var)
        self.flip_p, self.erase_p, self.erase_scale = flip_p, erase_p, erase_scale
        self.log_ratio = (math.log(erase_ratio[0]), math.log(erase_ratio[1]))

    def __call__(self, gray_u8: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        b = gray_u8.shape[0]
        x = gray_u8.float()
        noisy = torch.rand(b, generator=g) < self.noise_p
        noise = torch.randn(x.shape, generator=g) * self.noise_std
        x = torch.where(noisy.view(-1, 1, 1), (x + noise).clamp(0, 255).floor(), x)
        x = resize(x.unsqueeze(1), self.size, self.size).expand(-1, 3, -1, -1) / 255.0
        x = _normalize(x, IMAGENET_MEAN, IMAGENET_STD)
        flipped = torch.rand(b, generator=g) < self.flip_p
        x = torch.where(flipped.view(-1, 1, 1, 1), x.flip(-1), x).clone()
        for i in torch.nonzero(torch.rand(b, generator=g) < self.erase_p).flatten().tolist():
            self._erase(x[i], g)
        return x, flipped

    def _erase(self, img: torch.Tensor, g: torch.Generator) -> None:
        # torchvision.transforms.RandomErasing.get_params, driven by our generator
        h_img, w_img = img.shape[-2:]
        area = h_img * w_img
        for _ in range(10):
            u = torch.rand(2, generator=g).tolist()
            erase_area = area * (self.erase_scale[0] + u[0] * (self.erase_scale[1] - self.erase_scale[0]))
            ratio = math.exp(self.log_ratio[0] + u[1] * (self.log_ratio[1] - self.log_ratio[0]))
            h = int(round(math.sqrt(erase_area * ratio)))
            w = int(round(math.sqrt(erase_area / ratio)))
            if h < h_img and w < w_img:
                i = int(torch.randint(0, h_img - h + 1, (1,), generator=g))
                j = int(torch.randint(0, w_img - w + 1, (1,), generator=g))
                img[:, i:i + h, j:j + w] = 0.0
                return


def eval_transform(gray_u8: torch.Tensor, size: int) -> torch.Tensor:
    """Grey uint8 (B, H, W) -> the mask network's eval input, identical to `preprocess` with a gray spec."""
    x = resize(gray_u8.float().unsqueeze(1), size, size).expand(-1, 3, -1, -1) / 255.0
    return _normalize(x, IMAGENET_MEAN, IMAGENET_STD).contiguous()
