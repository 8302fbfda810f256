"""The manifest writer: fields from docs/models.md, hash and opset read from the file, bad input refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from cafe_models.manifest import image_input, write_manifest


def _tiny_onnx(path: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["features"])], "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 4])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_writes_documented_fields(tmp_path: Path) -> None:
    model = _tiny_onnx(tmp_path / "encoder-x.onnx")
    out = write_manifest(model, "head", "x", "made in a test",
                         {"image": image_input(size=112, color="gray"), "features": {"name": "features", "dim": 4}},
                         {"name": "probabilities", "classes": ["a"]},
                         extra={"encoder": {"file": "e.onnx", "sha256": "0" * 64, "color": "gray"}})
    assert out == tmp_path / "encoder-x.onnx.json"
    m = json.loads(out.read_text())
    assert m["format"] == "cafe-stream-model/1" and m["role"] == "head" and m["file"] == "encoder-x.onnx"
    assert m["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert m["opset"] == 17
    assert m["inputs"]["image"] == {"name": "image", "layout": "NCHW", "height": 112, "width": 112, "color": "gray",
                                    "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "resize": "bilinear"}
    assert m["encoder"]["color"] == "gray"


def test_refuses_bad_input(tmp_path: Path) -> None:
    model = _tiny_onnx(tmp_path / "m.onnx")
    image = {"image": image_input()}
    with pytest.raises(ValueError, match="role"):
        write_manifest(model, "decoder", "x", "", image, {"name": "features"})
    with pytest.raises(FileNotFoundError):
        write_manifest(tmp_path / "missing.onnx", "encoder", "x", "", image, {"name": "features"})
    with pytest.raises(ValueError, match="overwrite"):
        write_manifest(model, "encoder", "x", "", image, {"name": "features"}, extra={"sha256": "x"})
    with pytest.raises(ValueError, match="lacks"):
        write_manifest(model, "encoder", "x", "", {"image": {"name": "image"}}, {"name": "features"})
    with pytest.raises(ValueError, match="std"):
        image_input(std=(1.0, 0.0, 1.0))
