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

Two departures, both switchable, for the cafe variants (see models/MODEL_CARD.md):
  mask_source   where the mask logits M come from: "image" (the paper: P(GAP(resnet(x)))), "features"
                (Q(F): a Linear(D -> D) over the fixed encoder feature, no image) or "both" (the sum). The paper's
                mask network is a ResNet-18 pretrained on MS-Celeb faces; no such weights exist here, and Q lets
                the pretrained face encoder stand in for that pretraining while the ResNet learns from scratch.
  standardised  F is standardised with the training set's per-channel mean/std (fixed buffers, so the exported
                graph carries them) before anything else sees it. faceres features are ReLU means (>= 0, mostly
                small), which an FC at lr 2e-4 fits poorly.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from .classes import NUM_CLASSES

VARIANTS = ("cafe", "resnet", "encoder-fc", "cafe-nosigmoid", "cafe-nosep")
MASK_SOURCES = ("image", "features", "both")
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
    def __init__(self, feature_dim: int, variant: str = "cafe", num_classes: int = NUM_CLASSES,
                 mask_source: str = "image", standardised: bool = False) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; use one of {', '.join(VARIANTS)}")
        if mask_source not in MASK_SOURCES:
            raise ValueError(f"unknown mask source {mask_source!r}; use one of {', '.join(MASK_SOURCES)}")
        is_cafe = variant.startswith("cafe")
        if mask_source != "image" and not is_cafe:
            raise ValueError(f"mask source {mask_source!r} applies to the cafe variants, not {variant}")
        self.variant, self.feature_dim, self.mask_source = variant, feature_dim, mask_source
        self.standardised = standardised
        self.uses_image = variant == "resnet" or (is_cafe and mask_source != "features")
        self.uses_features = variant != "resnet"
        self.uses_cafe_losses = variant in ("cafe", "cafe-nosigmoid")
        if self.uses_image:
            self.mask = MaskNet()
            if is_cafe:
                self.proj = nn.Linear(MASK_DIM, feature_dim)
        if is_cafe and mask_source != "image":
            self.feature_mask = nn.Linear(feature_dim, feature_dim)
        if standardised:
            # Filled from the training set by set_feature_stats(); saved in the state dict and the ONNX graph.
            self.register_buffer("feature_mean", torch.zeros(feature_dim))
            self.register_buffer("feature_std", torch.ones(feature_dim))
        self.fc = nn.Linear(MASK_DIM if variant == "resnet" else feature_dim, num_classes)

    @torch.no_grad()
    def set_feature_stats(self, features: torch.Tensor) -> None:
        self.feature_mean.copy_(features.mean(0))
        self.feature_std.copy_(features.std(0).clamp_min(1e-6))

    def mask_logits(self, image: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        m = self.proj(self.mask(image)) if self.mask_source != "features" else 0.0
        if self.mask_source != "image":
            m = m + self.feature_mask(features)
        return m

    def forward(self, image: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (FC logits, the feature the FC sees); the second feeds the CAFE losses."""
        if self.standardised:
            features = (features - self.feature_mean) / self.feature_std
        if self.variant == "resnet":
            f = self.mask(image)
        elif self.variant == "encoder-fc":
            f = features
        else:
            m = self.mask_logits(image, features)
            f = features * (m if self.variant == "cafe-nosigmoid" else torch.sigmoid(m))
        return self.fc(f), f

    def describe(self) -> dict:
        return {"variant": self.variant, "mask_source": self.mask_source, "standardised": self.standardised}

    @classmethod
    def from_meta(cls, meta: dict) -> "CafeHead":
        """The model a checkpoint's meta describes (checkpoints from before mask_source/standardised included)."""
        return cls(meta["feature_dim"], meta["variant"], mask_source=meta.get("mask_source", "image"),
                   standardised=meta.get("standardised", False))


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
