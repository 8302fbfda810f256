"""Encoder features of several views of every training image, cached: the encoder's share of augmentation.

With only the clean image cached, the fixed encoder never sees a face at another scale, angle, blur, JPEG
level or exposure, so the head learns a boundary that holds only for FER2013's look. Caching V views per
image keeps the encoder out of the training loop (it is most of the CPU cost) and still trains the head on
the spread of features that other cameras and photo sets produce.

View 0 is the clean crop, view 1 its mirror, views 2.. are `facecrop.render_view` draws seeded by
(seed, image index, view), so the cache is the same whoever builds it. Images listed with a detector box
(the `detections` layout) are framed as the pipeline frames them; other images are whole-image crops.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cafe_models.datasets import FaceSet, read_image
from cafe_models.facecrop import Jitter, render_crop, render_view, whole_image_box

from .features import OnnxModel, encode

VIEWS_VERSION = 1
CHUNK = 1024


def view_seed(seed: int, index: int, view: int) -> int:
    return (seed * 1_000_003 + index * 1_009 + view) % (2**63)


def source_and_box(faceset: FaceSet, i: int) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The image to crop from and the detector box whose pipeline crop is the sample."""
    det = faceset.detections[i]
    if det is not None:
        return read_image(faceset.paths[i]), det
    im = read_image(faceset.paths[i], faceset.boxes[i])
    return im, whole_image_box(im.shape[1], im.shape[0])


def render(faceset: FaceSet, i: int, view: int, size: int, seed: int, jitter: Jitter) -> np.ndarray:
    image, box = source_and_box(faceset, i)
    if view < 2:
        crop = render_crop(image, box, size)
        return np.ascontiguousarray(crop[:, ::-1]) if view == 1 else crop
    return render_view(image, box, size, view_seed(seed, i, view), jitter)[0]


def _key(faceset: FaceSet, enc: OnnxModel, views: int, seed: int, jitter: Jitter) -> str:
    h = hashlib.sha256(f"views{VIEWS_VERSION}|{enc.sha256}|{enc.spec}|{seed}|{jitter}".encode())
    for p, b, d in zip(faceset.paths, faceset.boxes, faceset.detections):
        h.update(f"{p}|{b}|{d}\n".encode())
    return h.hexdigest()[:16]


def view_features(faceset: FaceSet, enc: OnnxModel, cache_dir: Path, views: int, *, seed: int = 0,
                  jitter: Jitter = Jitter(), batch_size: int = 32, progress: bool = True) -> np.ndarray:
    """(N, views, D) float32 features; view v of every image is cached in its own file, in resumable chunks,
    so asking for more views later reuses the ones already computed."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    safe = faceset.name.replace(":", "-").replace("/", "_").replace("@", "-")
    stem = cache_dir / f"{safe}-{_key(faceset, enc, 0, seed, jitter)}"
    size = enc.spec.height
    out = []
    for v in range(views):
        final = stem.with_name(f"{stem.name}.view{v}.npy")
        if not final.is_file():
            parts = []
            bar = tqdm(total=len(faceset), desc=f"features {faceset.name} view {v}", unit="img",
                       disable=not progress, mininterval=10)
            for c, start in enumerate(range(0, len(faceset), CHUNK)):
                part = final.with_name(f"{final.name}.part{c:04d}.npy")
                stop = min(start + CHUNK, len(faceset))
                if not part.is_file():
                    feats = []
                    for s in range(start, stop, batch_size):
                        e = min(s + batch_size, stop)
                        feats.append(encode(enc, [render(faceset, i, v, size, seed, jitter) for i in range(s, e)]))
                        bar.update(e - s)
                    tmp = part.with_name(part.name + ".tmp.npy")
                    np.save(tmp, np.concatenate(feats))
                    tmp.replace(part)
                else:
                    bar.update(stop - start)
                parts.append(part)
            bar.close()
            tmp = final.with_name(final.name + ".tmp.npy")
            np.save(tmp, np.concatenate([np.load(p) for p in parts]))
            tmp.replace(final)
            for p in parts:
                p.unlink()
        out.append(np.load(final))
    return np.stack(out, axis=1)
