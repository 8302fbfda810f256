"""fold-grey-input on a small encoder built here with each way the real one reads its image (a convolution with
float16 weights behind a Cast, pooling then a per-channel mean, a resize whose size comes from Shape then a
1x1 convolution): the folded graph on one channel computes what the original computes on three equal ones; a
graph that reads the channels otherwise is refused."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from cafe_models.grey_input import FoldError, fold_grey_input
from cafe_models.transforms import ImageSpec, preprocess


def _encoder(extra_reader: str | None = None) -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    w_conv = rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float16)
    w_fa = rng.normal(0, 0.3, (2, 3, 3, 3)).astype(np.float32)
    w_luma = np.array([0.299, 0.587, 0.114], np.float32).reshape(1, 3, 1, 1) / 255
    inits = [
        numpy_helper.from_array(w_conv, "a/w16"),
        numpy_helper.from_array(rng.normal(0, 0.1, 4).astype(np.float32), "a/b"),
        numpy_helper.from_array(w_fa, "b/w"),
        numpy_helper.from_array(np.array([122.8, 117.0, 104.3], np.float32).reshape(1, 3, 1, 1) / 255, "b/mean"),
        numpy_helper.from_array(np.array([3.9], np.float32), "b/scale"),
        numpy_helper.from_array(w_luma, "c/luma"),
        numpy_helper.from_array(np.zeros(0, np.float32), "c/roi"),
        numpy_helper.from_array(np.zeros(0, np.float32), "c/scales"),
        numpy_helper.from_array(np.array([0], np.int64), "c/s0"),
        numpy_helper.from_array(np.array([2], np.int64), "c/s2"),
        numpy_helper.from_array(np.array([8, 8], np.int64), "c/hw"),
    ]
    nodes = [
        helper.make_node("Cast", ["a/w16"], ["a/w"], name="a/cast", to=TensorProto.FLOAT),
        helper.make_node("Conv", ["image", "a/w", "a/b"], ["a/out"], name="a/conv", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("AveragePool", ["image"], ["b/half"], name="b/half", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Sub", ["b/half", "b/mean"], ["b/centred"], name="b/centred"),
        helper.make_node("Mul", ["b/centred", "b/scale"], ["b/in"], name="b/in"),
        helper.make_node("Conv", ["b/in", "b/w"], ["b/out"], name="b/conv", pads=[1, 1, 1, 1]),
        helper.make_node("Shape", ["image"], ["c/shape"], name="c/shape"),
        helper.make_node("Slice", ["c/shape", "c/s0", "c/s2"], ["c/nc"], name="c/nc"),
        helper.make_node("Concat", ["c/nc", "c/hw"], ["c/sizes"], name="c/sizes", axis=0),
        helper.make_node("Resize", ["image", "c/roi", "c/scales", "c/sizes"], ["c/small"], name="c/resize", mode="linear"),
        helper.make_node("Conv", ["c/small", "c/luma"], ["c/out"], name="c/luma"),
    ]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, c, 8, 8]) for n, c in (("a/out", 4), ("b/out", 2), ("c/out", 1))]
    if extra_reader == "gap":  # a per-channel statistic of the image: one channel would give one value, not three
        nodes += [helper.make_node("GlobalAveragePool", ["image"], ["d/gap"], name="d/gap"),
                  helper.make_node("Flatten", ["d/gap"], ["d/out"], name="d/flatten")]
        outputs.append(helper.make_tensor_value_info("d/out", TensorProto.FLOAT, [None, 3]))
    graph = helper.make_graph(nodes, "enc", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 3, 16, 16])],
                              outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"image": x})


def test_folded_graph_on_one_channel_computes_what_the_original_does_on_three():
    model = _encoder()
    folded, report = fold_grey_input(model)
    assert sorted(report.folded) == ["a/conv", "c/luma"]  # b/conv reads the broadcast three channels
    assert report.broadcast == ["b/centred"]
    dims = folded.graph.input[0].type.tensor_type.shape.dim
    assert [dims[1].dim_value, dims[2].dim_value] == [1, 16]
    # the float16 weights' Cast is gone with them
    assert not any(n.op_type == "Cast" for n in folded.graph.node)

    rgb = np.random.default_rng(2).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    spec3 = ImageSpec(16, 16, "gray", "NCHW", (0.0, 0.0, 0.0), (1 / 255,) * 3)
    spec1 = ImageSpec(16, 16, "gray", "NCHW", (0.0, 0.0, 0.0), (1 / 255,) * 3, channels=1)
    x3, x1 = preprocess(list(rgb), spec3), preprocess(list(rgb), spec1)
    assert x1.shape == (5, 1, 16, 16) and np.array_equal(x1[:, 0], x3[:, 1])
    for want, got in zip(_run(model, x3), _run(folded, x1)):
        assert want.shape == got.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * max(1.0, float(np.abs(want).max())))
    # and it is not the identity: on three different channels the original computes something else
    assert not np.allclose(_run(model, preprocess(list(rgb), ImageSpec(16, 16, "rgb", "NCHW", (0.0,) * 3, (1 / 255,) * 3)))[0],
                           _run(model, x3)[0])


def test_a_graph_that_reads_the_channels_otherwise_is_refused():
    with pytest.raises(FoldError, match="Flatten"):
        fold_grey_input(_encoder("gap"))
    with pytest.raises(FoldError, match="no graph input"):
        fold_grey_input(_encoder(), "pixels")


def test_one_channel_spec_must_be_grey():
    with pytest.raises(ValueError, match="grey"):
        preprocess([np.zeros((16, 16, 3), np.uint8)], ImageSpec(16, 16, "rgb", "NCHW", (0.0,) * 3, (1.0,) * 3, channels=1))
