"""quantize-encoder's parts on a small two-branch encoder built here: which nodes stay float, the correction, the
fp16 round trip, and a quantised file that computes nearly what the float one does."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from cafe_models.onnx_fp16 import load_fp32, store_fp16
from cafe_models.quantize import QuantizeError, fit_affine, plan_nodes, quantize_encoder


def _encoder(seed: int = 0, kernels: tuple[int, ...] = (3, 3, 3, 3)) -> onnx.ModelProto:
    """image (N,3,32,32) -> features (N, 16 + 3): a 4-conv 'faceres' branch with ReLU6 and a mean, and an
    'other' branch (a mean of the input), concatenated as the real encoder's branches are."""
    rng = np.random.default_rng(seed)
    nodes, inits, prev, cin = [], [], "image", 3
    for i, (cout, k) in enumerate(zip((8, 16, 16, 16), kernels)):
        w = rng.normal(0, (2.0 / (cin * k * k)) ** 0.5, (cout, cin, k, k)).astype(np.float32)
        b = rng.normal(0, 0.1, cout).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"faceres/w{i}"), numpy_helper.from_array(b, f"faceres/b{i}")]
        nodes.append(helper.make_node("Conv", [prev, f"faceres/w{i}", f"faceres/b{i}"], [f"faceres/c{i}"],
                                      name=f"faceres/conv{i}", pads=[k // 2] * 4))
        nodes.append(helper.make_node("Clip", [f"faceres/c{i}", "lo", "hi"], [f"faceres/r{i}"], name=f"faceres/relu{i}"))
        prev, cin = f"faceres/r{i}", cout
    inits += [numpy_helper.from_array(np.array(0, np.float32), "lo"), numpy_helper.from_array(np.array(6, np.float32), "hi")]
    nodes += [
        helper.make_node("GlobalAveragePool", [prev], ["faceres/gap"], name="faceres/gap"),
        helper.make_node("Flatten", ["faceres/gap"], ["faceres/out"], name="faceres/flatten"),
        helper.make_node("GlobalAveragePool", ["image"], ["other/gap"], name="other/gap"),
        helper.make_node("Flatten", ["other/gap"], ["other/out"], name="other/flatten"),
        helper.make_node("Concat", ["faceres/out", "other/out"], ["features"], name="post/concat", axis=1),
    ]
    graph = helper.make_graph(nodes, "enc", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 3, 32, 32])],
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 19])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _run(model_or_path, x: np.ndarray) -> np.ndarray:
    src = model_or_path.SerializeToString() if isinstance(model_or_path, onnx.ModelProto) else str(model_or_path)
    return ort.InferenceSession(src, providers=["CPUExecutionProvider"]).run(["features"], {"image": x})[0]


def _images(n: int, seed: int) -> np.ndarray:
    # smooth images with structure, not white noise: a face crop's activations are not uniform
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32] / 32.0
    base = np.stack([np.sin(6 * xx + p) * np.cos(4 * yy - p) for p in rng.uniform(0, 6, (n * 3))]).reshape(n, 3, 32, 32)
    return (127 + 100 * base + rng.normal(0, 5, base.shape)).clip(0, 255).astype(np.float32) / 255.0


def test_load_fp32_undoes_store_fp16():
    model = _encoder()
    half = store_fp16(onnx.load_from_string(model.SerializeToString()))
    assert any(i.data_type == TensorProto.FLOAT16 for i in half.graph.initializer)
    wide = load_fp32(onnx.load_from_string(half.SerializeToString()))
    assert not any(n.op_type == "Cast" for n in wide.graph.node)
    assert all(i.data_type == TensorProto.FLOAT for i in wide.graph.initializer)
    x = _images(4, 1)
    np.testing.assert_array_equal(_run(half, x), _run(wide, x))


def test_store_fp16_keeps_named_initializers_float32():
    model = store_fp16(_encoder(), keep={"faceres/w1"})
    kinds = {i.name: i.data_type for i in model.graph.initializer}
    assert kinds["faceres/w1"] == TensorProto.FLOAT and kinds["faceres/w2/fp16"] == TensorProto.FLOAT16


def test_plan_keeps_the_first_convolutions_and_their_activations_float():
    plan = plan_nodes(_encoder(), ("faceres",), float_convs=2)
    assert plan.kept_float == ["faceres/conv0", "faceres/relu0", "faceres/conv1", "faceres/relu1"]
    assert "faceres/conv2" in plan.quantize and "faceres/relu3" in plan.quantize
    assert not any(n.startswith("other/") for n in plan.quantize)
    with pytest.raises(QuantizeError, match="no node of branch 'missing'"):
        plan_nodes(_encoder(), ("missing",))


def test_plan_can_quantise_the_pointwise_convolutions_among_the_first_ones():
    model = _encoder(kernels=(3, 1, 3, 1))
    plan = plan_nodes(model, ("faceres",), float_convs=3, float_pointwise=False)
    assert plan.kept_float == ["faceres/conv0", "faceres/relu0", "faceres/conv2", "faceres/relu2"]
    assert {"faceres/conv1", "faceres/relu1", "faceres/conv3"} <= set(plan.quantize)
    # the default keeps all of the first three, 1x1 or not
    assert "faceres/conv1" in plan_nodes(model, ("faceres",), float_convs=3).kept_float


def test_fit_affine_recovers_a_known_map_and_keeps_flat_features():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(500, 3)).astype(np.float32)
    q[:, 2] = 0.5  # a feature that never varies
    f = q * np.array([2.0, -1.0, 1.0], np.float32) + np.array([0.5, 0.0, 0.25], np.float32)
    a, b = fit_affine(f, q)
    np.testing.assert_allclose(a, [2.0, -1.0, 1.0], atol=1e-5)
    np.testing.assert_allclose(b, [0.5, 0.0, 0.25], atol=1e-5)
    with pytest.raises(QuantizeError):
        fit_affine(f[:1], q[:1])


def _quantized(tmp_path, **options):
    """The test encoder stored as float16, quantised with its first convolution float: (float file, int8 file, report)."""
    float_path = tmp_path / "enc.onnx"
    onnx.save(store_fp16(_encoder()), str(float_path))
    out = tmp_path / "enc-int8.onnx"
    calib = [_images(16, s) for s in range(4)]
    corr = [_images(16, s) for s in range(10, 18)]
    report = quantize_encoder(float_path, out, "image", calib, corr, lambda x: _run(float_path, x),
                              lambda p: (lambda x: _run(p, x)), float_convs=1, **options)
    return float_path, out, report


def test_quantize_encoder_writes_a_qdq_graph_close_to_the_float_one(tmp_path):
    float_path, out, report = _quantized(tmp_path)
    q = onnx.load(str(out))
    ops = [n.op_type for n in q.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert report["nodes_kept_float"] == ["faceres/conv0", "faceres/relu0"]
    assert report["correction_mse"]["after"] <= report["correction_mse"]["before"]
    # the shipped recipe by default: full 8-bit weights, no per-layer bias correction
    assert report["reduce_range"] is False and "7 bits" not in report["method"]
    assert "bias_correction" not in report
    # Q/DQ scales stay float32 (onnxruntime fuses Q/DQ only around initializers)
    inits = {i.name: i for i in q.graph.initializer}
    for n in q.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[1] in inits:
            assert inits[n.input[1]].data_type == TensorProto.FLOAT
    x = _images(32, 99)  # images seen by neither the calibration nor the correction
    fo, qo = _run(float_path, x), _run(out, x)
    assert qo.shape == fo.shape
    np.testing.assert_allclose(qo[:, 16:], fo[:, 16:], atol=1e-6)  # the other branch is untouched (a = 1, b = 0)
    err = np.abs(qo[:, :16] - fo[:, :16]).max() / np.abs(fo[:, :16]).max()
    assert 0 < err < 0.05


def test_quantize_encoder_with_7_bit_weights_and_bias_correction_says_so(tmp_path):
    float_path, out, report = _quantized(tmp_path, bias_correction=True, reduce_range=True)
    assert report["reduce_range"] is True and "7 bits" in report["method"]
    assert report["bias_correction"]["layers"] == 3
    # 7-bit weights: every int8 weight of the written graph lies in [-64, 64] (full range would reach ±127)
    q = onnx.load(str(out))
    weights = {n.input[0] for n in q.graph.node if n.op_type == "DequantizeLinear"}
    int8 = [numpy_helper.to_array(i) for i in q.graph.initializer if i.name in weights and i.data_type == TensorProto.INT8]
    assert int8 and all(np.abs(w.astype(np.int32)).max() <= 64 for w in int8)
    x = _images(32, 99)
    err = np.abs(_run(out, x)[:, :16] - _run(float_path, x)[:, :16]).max() / np.abs(_run(float_path, x)[:, :16]).max()
    assert 0 < err < 0.05


def test_bias_correction_moves_each_int8_convolution_onto_the_float_channel_means(tmp_path):
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from cafe_models.quantize import _Batches, _channel_means, _with_outputs, activation_pairs, correct_biases, quantized_convs

    fp, qp = tmp_path / "f.onnx", tmp_path / "q.onnx"
    onnx.save(_encoder(), str(fp))
    calib = [_images(16, s) for s in range(4)]
    quantize_static(str(fp), str(qp), _Batches("image", calib), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    nodes_to_quantize=[f"faceres/conv{i}" for i in (1, 2, 3)] + [f"faceres/relu{i}" for i in (1, 2, 3)],
                    calibrate_method=CalibrationMethod.MinMax)
    q = onnx.load(str(qp))
    targets = quantized_convs(q)
    assert [n.name for n, _, _ in targets] == ["faceres/conv1", "faceres/conv2", "faceres/conv3"]  # conv0 is float
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    # what the next layer reads: the float ReLU6's output against the int8 graph's dequantised activation
    pairs = activation_pairs(onnx.load(str(fp)), q)
    assert [(c, f) for c, f, _ in pairs] == [(f"faceres/conv{i}", f"faceres/r{i}") for i in (1, 2, 3)]
    assert all(t.endswith("DequantizeLinear_Output") or "Dequantize" in t for _, _, t in pairs)

    def gap(model, batches):
        f_names, q_names = [f for _, f, _ in pairs], [t for _, _, t in pairs]
        f = _channel_means(ort.InferenceSession(_with_outputs(onnx.load(str(fp)), f_names), so), f_names, "image", batches)
        m = _channel_means(ort.InferenceSession(_with_outputs(model, q_names), so), q_names, "image", batches)
        return max(float(np.abs(f[a] - m[b]).max()) for a, b in zip(f_names, q_names))

    before = gap(q, calib)
    corrected, report = correct_biases(onnx.load(str(fp)), onnx.load(str(qp)), "image", calib)
    assert [r["conv"] for r in report] == ["faceres/conv1", "faceres/conv2", "faceres/conv3"]
    # on the images it was measured on, the activations' means move onto the float ones
    assert gap(corrected, calib) < before / 2
    # on images it never saw, the layers' means and the features are closer to the float ones than before
    held = [_images(16, s) for s in range(40, 44)]
    assert gap(corrected, held) < gap(q, held)
    x = np.concatenate(held)
    err = lambda m: float(np.abs(_run(m, x)[:, :16] - _run(fp, x)[:, :16]).mean())  # noqa: E731
    assert err(corrected) < err(q)
