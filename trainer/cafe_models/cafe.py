"""The CAFE head: mask network (ResNet-18) -> sigmoid mask over the fixed encoder feature -> FC.

Variants (for the paper's ablations) share one module and one export interface (image, features):
  cafe            f = F * sigmoid(P(GAP(resnet(x))))       (the method)
  cafe-nosigmoid  f = F * P(GAP(resnet(x)))                 (mask without the sigmoid)
  cafe-nosep      as cafe; the trainer drops the separation and diverse losses
  resnet          logits = FC(GAP(resnet(x)))              (plain ResNet-18 classifier, features unused)
  encoder-fc      logits = FC(F)                           (fixed encoder + FC, image unused)
P is a Linear(512 -> D) on the GAP output, before the sigmoid: it maps the mask network's 512 channels onto the
encoder's D channels (the reference has D = 512 and no P, so its mask logits are >= 0 and sigmoid(M) lies in
[0.5, 1); with P they can take either sign, so a channel can be gated towards 0).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from .classes import NUM_CLASSES

VARIANTS = ("cafe", "resnet", "encoder-fc", "cafe-nosigmoid", "cafe-nosep")
MASK_DIM = 512


class MaskNet(nn.Module):
    """torchvision resnet18 (same parameter names as the reference's hand-written one), GAP of layer4."""

    def __init__(self) -> None:
        super().__init__()
        self.resnet = torchvision.models.resnet18(weights=None)
        self.resnet.fc = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resnet(x)  # conv1..layer4, avgpool, flatten: (B, 512)

    def load_msceleb(self, path: str | Path) -> None:
        """Load a user's MS-Celeb ResNet-18 (`{'state_dict': ...}` or a bare state dict, torchvision keys).
        Strict: every backbone key must be present and no foreign key may appear; only fc.* is ignored."""
        blob = torch.load(path, map_location="cpu", weights_only=True)
        state = blob.get("state_dict", blob) if isinstance(blob, dict) else None
        if not isinstance(state, dict):
            raise ValueError(f"{path}: not a state dict")
        state = {k.removeprefix("module."): v for k, v in state.items()}
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = self.resnet.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("fc.")]
        if missing or unexpected:
            raise ValueError(f"{path}: checkpoint does not match torchvision resnet18: "
                             f"missing {missing[:5]} ({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)})")


class CafeHead(nn.Module):
    def __init__(self, feature_dim: int, variant: str = "cafe", num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; use one of {', '.join(VARIANTS)}")
        self.variant, self.feature_dim = variant, feature_dim
        self.uses_image = variant != "encoder-fc"
        self.uses_features = variant != "resnet"
        self.uses_cafe_losses = variant in ("cafe", "cafe-nosigmoid")
        if self.uses_image:
            self.mask = MaskNet()
        if variant.startswith("cafe"):
            self.proj = nn.Linear(MASK_DIM, feature_dim)
        self.fc = nn.Linear(MASK_DIM if variant == "resnet" else feature_dim, num_classes)

    def forward(self, image: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (FC logits, the feature the FC sees); the second feeds the CAFE losses."""
        if self.variant == "resnet":
            f = self.mask(image)
        elif self.variant == "encoder-fc":
            f = features
        else:
            m = self.proj(self.mask(image))
            f = features * (m if self.variant == "cafe-nosigmoid" else torch.sigmoid(m))
        return self.fc(f), f


class ExportHead(nn.Module):
    """(image, features) -> softmax of the FC logits, the deployed interface for every variant. A variant
    that ignores an input still consumes it (times zero) so the ONNX graph keeps both inputs."""

    def __init__(self, head: CafeHead) -> None:
        super().__init__()
        self.head = head

    def forward(self, image: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        logits, _ = self.head(image, features)
        if not self.head.uses_image:
            logits = logits + 0.0 * image.mean(dim=(1, 2, 3)).unsqueeze(1)
        if not self.head.uses_features:
            logits = logits + 0.0 * features.mean(dim=1, keepdim=True)
        return F.softmax(logits, dim=1)
