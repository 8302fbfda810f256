"""The fixed encoder, run from its exported ONNX, and the per-dataset feature cache.

The encoder is frozen, so its features for a dataset are computed once: for every image, both as given and
mirrored, so the training-time flip stays consistent between the encoder feature and the mask-network input.
What caching gives up: the Gaussian noise and RandomErasing augmentations reach only the mask network, not
the encoder (the reference feeds CLIP the augmented tensor). What it buys: the encoder forward is most of the
cost of a training step on CPU, and it is paid twice per image instead of once per image per epoch.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tqdm import tqdm

from cafe_models.datasets import FaceSet, read_image
from cafe_models.manifest import sha256_file
from cafe_models.transforms import ImageSpec, preprocess

CACHE_VERSION = 1


@dataclass
class OnnxModel:
    path: Path
    manifest: dict
    session: ort.InferenceSession
    spec: ImageSpec
    sha256: str


def open_session(path: Path, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # No busy-waiting: on shared cores spinning threads burn CPU the other thread needs (measured ~25% more
    # CPU time per image with spinning on a loaded 2-core machine).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def read_manifest(onnx_path: Path) -> dict:
    mpath = Path(str(onnx_path) + ".json")
    if not mpath.is_file():
        raise FileNotFoundError(f"{mpath}: model manifest not found (expected beside {onnx_path})")
    return json.loads(mpath.read_text())


def open_encoder(onnx_path: str | Path, color: str | None = None, threads: int = 2) -> OnnxModel:
    """The encoder ONNX + its manifest; `color` overrides the manifest's colour (grey FER training)."""
    path = Path(onnx_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: encoder ONNX not found")
    manifest = read_manifest(path)
    sha = sha256_file(path)
    if manifest.get("sha256") not in (None, sha):
        raise ValueError(f"{path}: sha256 {sha} does not match its manifest ({manifest['sha256']})")
    spec = ImageSpec.from_manifest(manifest["inputs"]["image"], color)
    return OnnxModel(path, manifest, open_session(path, threads), spec, sha)


def encode(enc: OnnxModel, images: list[np.ndarray]) -> np.ndarray:
    x = preprocess(images, enc.spec)
    name = enc.manifest["inputs"]["image"]["name"]
    out = enc.manifest["output"]["name"]
    return enc.session.run([out], {name: x})[0].astype(np.float32)


@dataclass
class FeatureCache:
    plain: np.ndarray  # (N, D)
    flipped: np.ndarray | None  # (N, D): features of the mirrored images (training sets only)

    @property
    def dim(self) -> int:
        return self.plain.shape[1]


def _key(faceset: FaceSet, enc: OnnxModel) -> str:
    h = hashlib.sha256()
    h.update(f"v{CACHE_VERSION}|{enc.sha256}|{enc.spec}".encode())
    for p, b in zip(faceset.paths, faceset.boxes):
        h.update(f"{p}|{b}\n".encode())
    return h.hexdigest()[:16]


CHUNK = 2048  # images per resumable part file


def _compute(faceset: FaceSet, enc: OnnxModel, stem: Path, mirrored: bool, batch_size: int,
             progress: bool) -> np.ndarray:
    """Features of all images (mirrored or not), written in parts so an interrupted run resumes."""
    final = stem.with_name(stem.name + (".flipped.npy" if mirrored else ".plain.npy"))
    if final.is_file():
        return np.load(final)
    n, parts = len(faceset), []
    what = "mirrored" if mirrored else "plain"
    bar = tqdm(total=n, desc=f"features {faceset.name} {what}", unit="img", disable=not progress, mininterval=5)
    t0, done_now = time.perf_counter(), 0
    for c, start in enumerate(range(0, n, CHUNK)):
        part = final.with_name(f"{final.name}.part{c:04d}.npy")
        stop = min(start + CHUNK, n)
        if not part.is_file():
            feats = []
            for s in range(start, stop, batch_size):
                e = min(s + batch_size, stop)
                imgs = [read_image(p, b) for p, b in zip(faceset.paths[s:e], faceset.boxes[s:e])]
                if mirrored:
                    imgs = [np.ascontiguousarray(im[:, ::-1]) for im in imgs]
                feats.append(encode(enc, imgs))
                bar.update(e - s)
            tmp = part.with_name(part.name + ".tmp.npy")
            np.save(tmp, np.concatenate(feats))
            tmp.replace(part)
            done_now += stop - start
        else:
            bar.update(stop - start)
        parts.append(part)
    bar.close()
    out = np.concatenate([np.load(p) for p in parts])
    tmp = final.with_name(final.name + ".tmp.npy")
    np.save(tmp, out)
    tmp.replace(final)
    for p in parts:
        p.unlink()
    if progress and done_now:
        print(f"{faceset.name} {what}: {done_now} images at {done_now / (time.perf_counter() - t0):.1f} img/s "
              f"-> {final}", flush=True)
    return out


def cached_features(faceset: FaceSet, enc: OnnxModel, cache_dir: Path, *, mirrored: bool = True,
                    batch_size: int = 16, progress: bool = True) -> FeatureCache:
    """Features of `faceset` under `enc`, computed once and kept in cache_dir (keyed by the encoder's sha256,
    its preprocessing and the image list). `mirrored` also caches the features of the mirrored images."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    safe = faceset.name.replace(":", "-").replace("/", "_")
    stem = cache_dir / f"{safe}-{_key(faceset, enc)}"
    plain = _compute(faceset, enc, stem, False, batch_size, progress)
    flipped = _compute(faceset, enc, stem, True, batch_size, progress) if mirrored else None
    return FeatureCache(plain, flipped)


def load_gray_images(faceset: FaceSet, size: int, progress: bool = True) -> np.ndarray:
    """All images as grey uint8 (N, H, W): native size when they all share one, else resized to `size`
    (the mask-network input), so the training batch is one array."""
    imgs = [read_image(p, b) for p, b in tqdm(zip(faceset.paths, faceset.boxes), total=len(faceset),
                                              desc=f"images {faceset.name}", unit="img", disable=not progress,
                                              mininterval=5)]
    if len({im.shape for im in imgs}) == 1:
        rgb = np.stack(imgs).astype(np.float32)
        gray = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    spec = ImageSpec(size, size, "gray", "NCHW", (0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255))
    return np.clip(np.rint(np.concatenate([preprocess([im], spec)[:, 0] for im in imgs])), 0, 255).astype(np.uint8)
