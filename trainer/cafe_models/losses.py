"""CAFE's training-only losses on the masked feature f (B, D): channel separation with channel dropping, and
the channel-diverse loss, as `supervisor` / `Mask` in the reference code (cafe-method.md §1.4).

Generalised from D = 512, cnum = 73 to any D: cnum = floor(D / 7); group g is channels [g*cnum, (g+1)*cnum)
and its max is the logit of class g; the last D - 7*cnum channels never reach the pooled logits (channel 511
in the reference). The drop mask drops round(cnum * 10/73) channels in each of the 7 drop groups (10 of 73 in
the reference; 20 of 146 for D = 1024); the last drop group also holds the leftover channels, as the
reference's 74-channel neutral group.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from .classes import NUM_CLASSES

REFERENCE_CNUM, REFERENCE_DROPPED = 73, 10


def group_size(dim: int, groups: int = NUM_CLASSES) -> int:
    cnum = dim // groups
    if cnum < 1:
        raise ValueError(f"feature dim {dim} is smaller than the {groups} groups")
    return cnum


def dropped_per_group(cnum: int) -> int:
    return int(round(cnum * REFERENCE_DROPPED / REFERENCE_CNUM))


def channel_drop_mask(dim: int, rng: random.Random, groups: int = NUM_CLASSES) -> torch.Tensor:
    """One 0/1 mask (D,) for the whole batch: per group, `dropped_per_group` zeros at shuffled positions.
    No rescaling follows (it is not dropout)."""
    cnum = group_size(dim, groups)
    n_drop = dropped_per_group(cnum)
    parts: list[int] = []
    for g in range(groups):
        width = cnum if g < groups - 1 else dim - cnum * (groups - 1)
        part = [1] * (width - n_drop) + [0] * n_drop
        rng.shuffle(part)
        parts += part
    return torch.tensor(parts, dtype=torch.float32)


def group_max(f: torch.Tensor, groups: int = NUM_CLASSES) -> torch.Tensor:
    """(B, D) -> (B, groups): the max over each group of cnum channels (the reference's my_MaxPool2d)."""
    cnum = group_size(f.shape[1], groups)
    return f[:, : cnum * groups].reshape(f.shape[0], groups, cnum).amax(-1)


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean CE; `target` is class indices (B,) or a distribution over classes (B, C) for soft labels."""
    return F.cross_entropy(logits, target)


def separation_loss(f: torch.Tensor, target: torch.Tensor, drop_mask: torch.Tensor) -> torch.Tensor:
    """CE on the group maxima of the channel-dropped feature (`loss_1`)."""
    return cross_entropy(group_max(f * drop_mask), target)


def diversity_loss(f: torch.Tensor, groups: int = NUM_CLASSES) -> torch.Tensor:
    """1 - mean over batch and groups of the group max / cnum (`loss_2`: MC-Loss without its softmax),
    on the undropped feature."""
    cnum = group_size(f.shape[1], groups)
    return 1.0 - group_max(f, groups).mean() / cnum


def cafe_loss(logits: torch.Tensor, f: torch.Tensor, target: torch.Tensor, drop_mask: torch.Tensor,
              w_sep: float = 1.5, w_div: float = 5.0) -> tuple[torch.Tensor, dict[str, float]]:
    """L = CE(fc) + w_sep * L_sep + w_div * L_div (weights 1 / 1.5 / 5 in the reference)."""
    ce = cross_entropy(logits, target)
    sep = separation_loss(f, target, drop_mask)
    div = diversity_loss(f)
    total = ce + w_sep * sep + w_div * div
    return total, {"ce": ce.item(), "sep": sep.item(), "div": div.item()}
