"""Tiny train -> export -> evaluate through the CLI, on generated images and a tiny encoder."""

import json

import numpy as np
from PIL import Image

from cafe_train.main import main
from conftest import class_image, make_ferplus, make_tiny_encoder


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_train_export_evaluate(tmp_path, capsys):
    models = tmp_path / "models"
    encoder = make_tiny_encoder(models)
    train_dir = make_ferplus(tmp_path / "FER2013Train", per_class=6, seed=1)
    valid_dir = make_ferplus(tmp_path / "FER2013Valid", per_class=3, seed=2)
    run = tmp_path / "runs" / "cafe"
    common = ["train", "--train", f"ferplus:{train_dir}", "--valid", f"ferplus:{valid_dir}", "--encoder",
              str(encoder), "--out", str(run), "--image-size", "32", "--batch-size", "16", "--no-progress"]

    assert main([*common, "--epochs", "2"]) == 0
    log = _lines(run / "log.jsonl")
    assert [r["epoch"] for r in log] == [1, 2]
    assert (run / "best.pt").is_file() and (run / "last.pt").is_file()
    assert sorted(p.name.split(".")[1] for p in (tmp_path / "runs" / "cache").glob("*.npy")) == \
        ["flipped", "plain", "plain"]  # train: plain + mirrored, valid: plain only

    # a finished run is not silently overwritten; --resume continues it
    assert main([*common, "--epochs", "3"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main([*common, "--epochs", "3", "--resume"]) == 0
    assert [r["epoch"] for r in _lines(run / "log.jsonl")] == [1, 2, 3]
    best = max(_lines(run / "log.jsonl"), key=lambda r: r["valid_acc"])

    head = models / "cafe-head.onnx"
    assert main(["export-head", str(run / "best.pt"), "--out", str(head), "--valid", f"ferplus:{valid_dir}"]) == 0
    manifest = json.loads((models / "cafe-head.onnx.json").read_text())
    assert manifest["role"] == "head"
    assert manifest["inputs"]["image"]["height"] == 32 and manifest["inputs"]["image"]["color"] == "gray"
    assert manifest["inputs"]["features"] == {"name": "features", "dim": 14}
    assert manifest["output"]["classes"] == ["surprise", "fear", "disgust", "happiness", "sadness", "anger",
                                             "neutral"]
    enc_manifest = json.loads((models / "encoder-tiny.onnx.json").read_text())
    assert manifest["encoder"] == {"file": "encoder-tiny.onnx", "sha256": enc_manifest["sha256"], "color": "gray"}
    # the ONNX accuracy on Valid equals the PyTorch accuracy of the selected epoch
    assert abs(manifest["metrics"]["ferplus_valid_accuracy"] - best["valid_acc"]) < 1e-3

    # a class-named folder of PNGs next to the FERPlus set
    rng = np.random.default_rng(3)
    for cls, name in enumerate(["surprised", "fearful", "disgusted", "happy", "sad", "angry", "neutral"]):
        (tmp_path / "photos" / name).mkdir(parents=True)
        Image.fromarray(class_image(cls, rng)).convert("RGB").save(tmp_path / "photos" / name / "a.png")
    capsys.readouterr()
    assert main(["evaluate", "--models", str(models), f"ferplus:{valid_dir}", f"folder:{tmp_path / 'photos'}",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    fer = report["sets"][f"ferplus:{valid_dir}"]
    assert fer["n"] == 21 and sum(map(sum, fer["confusion"])) == 21
    assert abs(fer["accuracy"] - manifest["metrics"]["ferplus_valid_accuracy"]) < 1e-4
    assert report["sets"][f"folder:{tmp_path / 'photos'}"]["n"] == 7

    assert main(["evaluate", "--models", str(models), "ferplus:" + str(tmp_path / "missing")]) == 2
    assert str(tmp_path / "missing") in capsys.readouterr().err


def test_encoder_fc_variant_trains_and_exports(tmp_path):
    models = tmp_path / "models"
    encoder = make_tiny_encoder(models)
    train_dir = make_ferplus(tmp_path / "T", per_class=4, seed=1)
    run = tmp_path / "run"
    assert main(["train", "--train", f"ferplus:{train_dir}", "--valid", f"ferplus:{train_dir}", "--encoder",
                 str(encoder), "--out", str(run), "--variant", "encoder-fc", "--epochs", "1", "--no-progress",
                 "--no-mirror-features", "--batch-size", "8", "--eval-every", "2"]) == 0
    log = _lines(run / "log.jsonl")
    assert [r["epoch"] for r in log] == [0.5, 1] and log[0]["partial"]  # 4 steps: a selection point at step 2
    assert main(["export-head", str(run / "best.pt"), "--out", str(models / "h.onnx")]) == 0
    assert json.loads((models / "h.onnx.json").read_text())["variant"] == "encoder-fc"
    # a CAFE run started from it (the shipped recipe), stopped by its time budget inside the first epoch
    cafe = tmp_path / "cafe"
    assert main(["train", "--train", f"ferplus:{train_dir}", "--valid", f"ferplus:{train_dir}", "--encoder",
                 str(encoder), "--out", str(cafe), "--init-fc", str(run / "best.pt"), "--image-size", "32",
                 "--batch-size", "8", "--no-mirror-features", "--no-progress", "--time-budget-min", "0"]) == 0
    log = _lines(cafe / "log.jsonl")
    assert len(log) == 1 and log[0]["partial"] and log[0]["epoch"] == 0.25


def test_two_stage_feature_mask_recipe(tmp_path, capsys):
    """The shipped recipe: a features-only mask run, then the image branch added with --init-from."""
    models = tmp_path / "models"
    encoder = make_tiny_encoder(models)
    train_dir = make_ferplus(tmp_path / "T", per_class=4, seed=1)
    common = ["train", "--train", f"ferplus:{train_dir}", "--valid", f"ferplus:{train_dir}", "--encoder",
              str(encoder), "--image-size", "32", "--batch-size", "8", "--no-mirror-features", "--no-progress"]
    fmask, both = tmp_path / "fmask", tmp_path / "both"
    assert main([*common, "--out", str(fmask), "--mask-source", "features", "--epochs", "2"]) == 0
    assert main(["export-head", str(fmask / "best.pt"), "--out", str(models / "f.onnx")]) == 0
    manifest = json.loads((models / "f.onnx.json").read_text())
    assert (manifest["mask_source"], manifest["standardised_features"]) == ("features", True)

    capsys.readouterr()
    assert main([*common, "--out", str(both), "--mask-source", "both", "--epochs", "1",
                 "--init-from", str(fmask / "best.pt")]) == 0
    assert "new mask branches at zero: ['proj']" in capsys.readouterr().out
    assert main(["export-head", str(both / "best.pt"), "--out", str(models / "b.onnx")]) == 0
    assert json.loads((models / "b.onnx.json").read_text())["mask_source"] == "both"

    # a warm start from a run of another variant, or a mask source the variant has no use for, is refused
    assert main([*common, "--out", str(tmp_path / "x"), "--variant", "cafe-nosep", "--mask-source", "both",
                 "--init-from", str(fmask / "best.pt")]) == 2
    assert "--init-from needs a cafe-nosep run" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "y"), "--variant", "resnet", "--mask-source", "features"]) == 2
    assert "applies to the cafe variants" in capsys.readouterr().err
