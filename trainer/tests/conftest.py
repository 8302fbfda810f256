"""Shared fixtures: a tiny encoder ONNX (+ manifest) and tiny generated FERPlus-layout datasets."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from cafe_models.manifest import image_input, write_manifest

TINY_DIM = 14  # 7 groups of 2 channels
TINY_SIZE = 32


def shared_dir() -> Path:
    return Path(os.environ.get("CAFE_SHARED", Path(__file__).resolve().parents[2] / ".." / "shared")).resolve()


class TinyEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, TINY_DIM, 5, stride=4)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(image)).mean(dim=(2, 3))


def make_tiny_encoder(folder: Path) -> Path:
    torch.manual_seed(0)
    model = TinyEncoder().eval()
    path = folder / "encoder-tiny.onnx"
    folder.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, (torch.rand(2, 3, TINY_SIZE, TINY_SIZE),), str(path), input_names=["image"],
                      output_names=["features"], dynamic_axes={"image": {0: "N"}, "features": {0: "N"}},
                      opset_version=17, dynamo=False)
    write_manifest(path, "encoder", "tiny", "random tiny test encoder",
                   {"image": image_input(size=TINY_SIZE, color="rgb", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))},
                   {"name": "features", "dim": TINY_DIM})
    return path


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> Path:
    return make_tiny_encoder(tmp_path_factory.mktemp("models"))


# FERPlus vote column that wins for each canonical class (inverse of LABEL_MAPS["ferplus"])
FERPLUS_COL = {0: 2, 1: 6, 2: 5, 3: 1, 4: 3, 5: 4, 6: 0}


def class_image(cls: int, rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """A grey image whose class is visible: a bright bar at a class-specific row, plus noise."""
    img = rng.normal(90, 20, (size, size)).clip(0, 255)
    row = 3 + cls * 6
    img[row:row + 5, 4:44] = 230
    return img.astype(np.uint8)


def make_ferplus(folder: Path, per_class: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(per_class * 7):
        cls = i % 7
        name = f"fer{i:07d}.png"
        Image.fromarray(class_image(cls, rng)).save(folder / name)
        votes = [0] * 10
        votes[FERPLUS_COL[cls]] = 8
        votes[(FERPLUS_COL[cls] + 1) % 7] = 2
        rows.append([name, "(0, 0, 48, 48)", *votes])
    with open(folder / "label.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return folder
