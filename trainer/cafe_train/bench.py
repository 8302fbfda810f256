"""`trainer bench`: training throughput (CAFE step: augment + forward + losses + backward + Adam) and
feature-cache throughput (encoder ONNX on 48x48 grey crops, as for FERPlus). Prints img/s; no assertions."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import torch

from cafe_models.cafe import CafeHead
from cafe_models.losses import cafe_loss, channel_drop_mask
from cafe_models.transforms import TrainAugment

from .features import encode, open_encoder


def bench(encoder: Path, image_size: int = 64, threads: int = 2, steps: int = 10, batch_size: int = 32,
          encoder_images: int = 64, mask_source: str = "image") -> dict:
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    enc = open_encoder(encoder, "gray", threads)
    crops = [np.repeat(rng.integers(0, 256, (48, 48, 1), dtype=np.uint8), 3, axis=2) for _ in range(encoder_images)]
    encode(enc, crops[:4])  # warm-up
    t = time.perf_counter()
    for s in range(0, len(crops), 16):
        feats = encode(enc, crops[s:s + 16])
    cache_rate = len(crops) / (time.perf_counter() - t)

    dim = feats.shape[1]
    model = CafeHead(dim, "cafe", mask_source=mask_source, standardised=True).train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-4, weight_decay=1e-4)
    augment = TrainAugment(image_size)
    images = torch.from_numpy(rng.integers(0, 256, (batch_size, 48, 48), dtype=np.uint8))
    f = torch.rand(batch_size, dim)
    y = torch.randint(0, 7, (batch_size,))
    warmup, timed = 2, max(1, steps)
    for i in range(warmup + timed):
        if i == warmup:
            t = time.perf_counter()
        g = torch.Generator().manual_seed(i)
        x, _ = augment(images, g)
        logits, masked = model(x, f)
        loss, _ = cafe_loss(logits, masked, y, channel_drop_mask(dim, random.Random(i)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    train_rate = timed * batch_size / (time.perf_counter() - t)
    return {"threads": threads, "image_size": image_size, "batch_size": batch_size, "mask_source": mask_source,
            "train_img_per_s": round(train_rate, 1), "feature_cache_img_per_s": round(cache_rate, 1),
            "encoder": str(encoder)}
