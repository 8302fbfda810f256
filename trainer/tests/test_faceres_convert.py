"""tfjs_to_onnx on small synthetic TFJS graphs (checked against numpy), and on the real faceres model."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from cafe_models.faceres import import_faceres
from cafe_models.tfjs_to_onnx import TfjsConversionError, UnsupportedOpError, convert_file

REPO_ROOT = Path(__file__).resolve().parents[2]
HUMAN_MODELS = REPO_ROOT / "node_modules" / "@vladmandic" / "human-models" / "models"
RNG = np.random.default_rng(0)


# -- building a TFJS graph model on disk ---------------------------------------------------------------------

def _s(text: str) -> dict:
    return {"s": base64.b64encode(text.encode()).decode()}


def _ints(*v: int) -> dict:
    return {"list": {"i": [str(x) for x in v]}}


class GraphWriter:
    """Writes model.json + weights.bin the way tfjs-converter does (float16/uint8 quantization included)."""

    def __init__(self) -> None:
        self.nodes: list[dict] = []
        self.weights: list[dict] = []
        self.blobs: list[bytes] = []
        self.values: dict[str, np.ndarray] = {}   # the values TF would see (after dequantization)

    def placeholder(self, name: str, shape: list[int]) -> str:
        self.nodes.append({"name": name, "op": "Placeholder", "attr": {
            "dtype": {"type": "DT_FLOAT"}, "shape": {"shape": {"dim": [{"size": str(d)} for d in shape]}}}})
        return name

    def const(self, name: str, value: np.ndarray, quant: str | None = "float16") -> str:
        value = np.asarray(value)
        spec = {"name": name, "shape": list(value.shape), "dtype": "int32" if value.dtype.kind == "i" else "float32"}
        if value.dtype.kind == "i":
            self.blobs.append(value.astype(np.int32).tobytes())
            seen = value.astype(np.int32)
        elif quant == "float16":
            spec["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            self.blobs.append(value.astype(np.float16).tobytes())
            seen = value.astype(np.float16).astype(np.float32)
        elif quant == "uint8":
            lo, hi = float(value.min()), float(value.max())
            scale = (hi - lo) / 255 or 1.0
            q = np.round((value - lo) / scale).astype(np.uint8)
            spec["quantization"] = {"dtype": "uint8", "scale": scale, "min": lo, "original_dtype": "float32"}
            self.blobs.append(q.tobytes())
            seen = q.astype(np.float32) * np.float32(scale) + np.float32(lo)
        else:
            self.blobs.append(value.astype(np.float32).tobytes())
            seen = value.astype(np.float32)
        self.weights.append(spec)
        # tfjs-converter writes the TF dtype on every Const node (DT_INT32 for shapes, sizes, axes).
        tf_dtype = "DT_INT32" if value.dtype.kind == "i" else "DT_FLOAT"
        tf_shape = {"dim": [{"size": str(d)} for d in value.shape]} if value.ndim else {}
        self.nodes.append({"name": name, "op": "Const", "attr": {
            "dtype": {"type": tf_dtype}, "value": {"tensor": {"dtype": tf_dtype, "tensorShape": tf_shape}}}})
        self.values[name] = seen
        return name

    def op(self, name: str, op: str, inputs: list[str], **attr: dict) -> str:
        self.nodes.append({"name": name, "op": op, "input": inputs, "attr": attr})
        return name

    def write(self, folder: Path, outputs: list[str]) -> Path:
        (folder / "weights.bin").write_bytes(b"".join(self.blobs))
        spec = {
            "format": "graph-model",
            "signature": {"outputs": {o: {"name": o} for o in outputs}},
            "modelTopology": {"node": self.nodes, "library": {}, "versions": {}},
            "weightsManifest": [{"paths": ["weights.bin"], "weights": self.weights}],
        }
        path = folder / "model.json"
        path.write_text(json.dumps(spec))
        return path


# -- numpy reference ------------------------------------------------------------------------------------------

def _same_pads(size: int, k: int, stride: int, dil: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dil + 1 - size, 0)
    return total // 2, total - total // 2


def ref_conv(x: np.ndarray, w: np.ndarray, stride: int, padding: str, dil: int = 1, depthwise: bool = False):
    """NHWC conv as TF defines it; w is HWIO, or [H, W, C, multiplier] when depthwise."""
    n, h, wd, c = x.shape
    kh, kw = w.shape[:2]
    if padding == "SAME":
        (pt, pb), (pl, pr) = _same_pads(h, kh, stride, dil), _same_pads(wd, kw, stride, dil)
    else:
        pt = pb = pl = pr = 0
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    oh = (xp.shape[1] - (kh - 1) * dil - 1) // stride + 1
    ow = (xp.shape[2] - (kw - 1) * dil - 1) // stride + 1
    cout = c * w.shape[3] if depthwise else w.shape[3]
    out = np.zeros((n, oh, ow, cout), np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i * dil: i * dil + (oh - 1) * stride + 1: stride,
                       j * dil: j * dil + (ow - 1) * stride + 1: stride, :]
            if depthwise:
                out += (patch[..., :, None] * w[i, j][None, None, None]).reshape(n, oh, ow, cout)
            else:
                out += patch @ w[i, j]
    return out


def _run(onnx_path: Path, x_nhwc: np.ndarray, layout: str = "NCHW") -> list[np.ndarray]:
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feed = x_nhwc.transpose(0, 3, 1, 2) if layout == "NCHW" else x_nhwc
    return sess.run(None, {"image": np.ascontiguousarray(feed, dtype=np.float32)})


# -- the tests ------------------------------------------------------------------------------------------------

@pytest.fixture
def mobilenet_like(tmp_path: Path):
    """Conv (SAME, stride 2) + BN as Mul/Add + ReLU6 as Relu/Minimum/Maximum, depthwise (multiplier 2,
    dilation 2), _FusedConv2D (VALID, BiasAdd+Relu), spatial Mean, _FusedMatMul and Softmax."""
    g = GraphWriter()
    x = g.placeholder("input_1", [-1, 9, 9, 3])
    c1 = g.op("conv1", "Conv2D", [x, g.const("conv1/kernel", RNG.normal(size=(3, 3, 3, 4)))],
              strides=_ints(1, 2, 2, 1), padding=_s("SAME"), data_format=_s("NHWC"), dilations=_ints(1, 1, 1, 1))
    m1 = g.op("bn1/mul", "Mul", [c1, g.const("bn1/scale", RNG.uniform(0.5, 1.5, size=4))])
    a1 = g.op("bn1/add", "Add", [m1, g.const("bn1/shift", RNG.normal(size=4), quant="uint8")])
    r1 = g.op("relu1", "Relu", [a1])
    mn = g.op("relu1/min", "Minimum", [r1, g.const("relu1/six", np.array(6.0), quant=None)])
    mx = g.op("relu1/max", "Maximum", [mn, g.const("relu1/zero", np.array(0.0), quant=None)])
    dw = g.op("dw", "DepthwiseConv2dNative", [mx, g.const("dw/kernel", RNG.normal(size=(3, 3, 4, 2)))],
              strides=_ints(1, 1, 1, 1), padding=_s("SAME"), data_format=_s("NHWC"), dilations=_ints(1, 2, 2, 1))
    fc = g.op("pw", "_FusedConv2D", [dw, g.const("pw/kernel", RNG.normal(size=(2, 2, 8, 6))),
                                     g.const("pw/bias", RNG.normal(size=6))],
              strides=_ints(1, 1, 1, 1), padding=_s("VALID"), data_format=_s("NHWC"), dilations=_ints(1, 1, 1, 1),
              fused_ops={"list": {"s": [_s("BiasAdd")["s"], _s("Relu")["s"]]}}, num_args={"i": "1"},
              epsilon={"f": 0})
    mean = g.op("pool/Mean", "Mean", [fc, g.const("pool/axes", np.array([1, 2], np.int32))],
                keep_dims={"b": False})
    dense = g.op("dense", "_FusedMatMul", [mean, g.const("dense/kernel", RNG.normal(size=(6, 5))),
                                           g.const("dense/bias", RNG.normal(size=5))],
                 fused_ops={"list": {"s": [_s("BiasAdd")["s"]]}}, transpose_a={"b": False},
                 transpose_b={"b": False})
    soft = g.op("softmax", "Softmax", [dense])
    path = g.write(tmp_path, [mean, soft])
    v = g.values

    def reference(inp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = ref_conv(inp, v["conv1/kernel"], 2, "SAME") * v["bn1/scale"] + v["bn1/shift"]
        y = np.clip(y, 0, 6)
        y = ref_conv(y, v["dw/kernel"], 1, "SAME", dil=2, depthwise=True)
        y = np.maximum(ref_conv(y, v["pw/kernel"], 1, "VALID") + v["pw/bias"], 0)
        pooled = y.mean(axis=(1, 2))
        logits = pooled @ v["dense/kernel"] + v["dense/bias"]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return pooled, e / e.sum(axis=1, keepdims=True)

    return path, reference


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_mobilenet_like_graph_matches_numpy(tmp_path: Path, mobilenet_like, layout: str) -> None:
    model_json, reference = mobilenet_like
    out = convert_file(model_json, tmp_path / "m.onnx", outputs={"pool/Mean": "features", "softmax": "probs"},
                       input_layout=layout)
    x = RNG.uniform(0, 4, size=(3, 9, 9, 3)).astype(np.float32)
    features, probs = _run(out, x, layout)
    want_features, want_probs = reference(x.astype(np.float64))
    assert features.shape == (3, 6) and probs.shape == (3, 5)
    np.testing.assert_allclose(features, want_features, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(probs, want_probs, rtol=1e-4, atol=1e-5)

    model = onnx.load(str(out))
    ops = [n.op_type for n in model.graph.node]
    # Relu -> Minimum -> Maximum collapses into one Clip, so onnxruntime can fuse it into the Conv.
    assert ops.count("Clip") == 1 and "Min" not in ops and "Max" not in ops
    assert ops.count("Transpose") == (1 if layout == "NHWC" else 0)
    dim0 = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param == "N"


def test_unknown_op_is_named(tmp_path: Path) -> None:
    g = GraphWriter()
    x = g.placeholder("input_1", [-1, 4, 4, 3])
    r = g.op("odd/Erf", "Erf", [x])
    mean = g.op("pool", "Mean", [r, g.const("axes", np.array([1, 2], np.int32))], keep_dims={"b": False})
    path = g.write(tmp_path, [mean])
    with pytest.raises(UnsupportedOpError, match=r"'Erf'.*'odd/Erf'") as info:
        convert_file(path, tmp_path / "m.onnx", outputs={"pool": "features"})
    assert info.value.op == "Erf" and info.value.node == "odd/Erf"


def test_unused_branches_are_not_translated(tmp_path: Path) -> None:
    # faceres' age/gender heads are dropped when only the features are asked for; an unknown op there
    # must not block the conversion.
    g = GraphWriter()
    x = g.placeholder("input_1", [-1, 4, 4, 3])
    mean = g.op("pool", "Mean", [x, g.const("axes", np.array([1, 2], np.int32))], keep_dims={"b": False})
    g.op("head/Erf", "Erf", [mean])
    out = convert_file(g.write(tmp_path, [mean]), tmp_path / "m.onnx", outputs={"pool": "features"})
    x_in = RNG.uniform(size=(2, 4, 4, 3)).astype(np.float32)
    (features,) = _run(out, x_in)
    np.testing.assert_allclose(features, x_in.mean(axis=(1, 2)), rtol=1e-6)


def test_truncated_weights_are_rejected(tmp_path: Path) -> None:
    g = GraphWriter()
    x = g.placeholder("input_1", [-1, 4, 4, 3])
    g.op("pool", "Mean", [x, g.const("axes", np.array([1, 2], np.int32))], keep_dims={"b": False})
    path = g.write(tmp_path, ["pool"])
    (tmp_path / "weights.bin").write_bytes(b"\0" * 4)
    with pytest.raises((TfjsConversionError, ValueError)):
        convert_file(path, tmp_path / "m.onnx", outputs={"pool": "features"})


def test_real_faceres_import(tmp_path: Path) -> None:
    onnx_path, manifest_path = import_faceres(HUMAN_MODELS, tmp_path)
    manifest = json.loads(manifest_path.read_text())
    assert manifest["role"] == "encoder" and manifest["output"] == {"name": "features", "dim": 1024}
    image = manifest["inputs"]["image"]
    assert (image["layout"], image["height"], image["width"], image["color"]) == ("NCHW", 224, 224, "rgb")
    assert image["std"] == pytest.approx([1 / 255] * 3)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = RNG.uniform(0, 255, size=(2, 3, 224, 224)).astype(np.float32)
    (features,) = sess.run(None, {"image": x})
    assert features.shape == (2, 1024)
    (single,) = sess.run(None, {"image": x[1:]})
    np.testing.assert_allclose(single[0], features[1], rtol=1e-4, atol=1e-5)
    assert np.all(features >= 0) and np.all(features <= 6)   # mean of ReLU6 maps


@pytest.fixture
def facemesh_like(tmp_path: Path):
    """Facemesh's residual block: MaxPool, a channel-padding Pad on the shortcut (TF paddings in NHWC order),
    AddV2, then a standalone Prelu whose alpha is a (1, 1, C) const; plus a spatial Pad and a Reshape out."""
    g = GraphWriter()
    x = g.placeholder("input_1", [-1, 6, 6, 3])
    conv = g.op("conv", "_FusedConv2D", [x, g.const("conv/kernel", RNG.normal(size=(3, 3, 3, 5))),
                                         g.const("conv/bias", RNG.normal(size=5))],
                strides=_ints(1, 2, 2, 1), padding=_s("SAME"), data_format=_s("NHWC"), dilations=_ints(1, 1, 1, 1),
                fused_ops={"list": {"s": [_s("BiasAdd")["s"]]}}, num_args={"i": "1"}, epsilon={"f": 0})
    pool = g.op("pool", "MaxPool", [x], ksize=_ints(1, 2, 2, 1), strides=_ints(1, 2, 2, 1), padding=_s("VALID"),
                data_format=_s("NHWC"))
    chpad = g.op("channel_padding/Pad", "Pad",
                 [pool, g.const("channel_padding/paddings", np.array([[0, 0], [0, 0], [0, 0], [0, 2]], np.int32))])
    add = g.op("add", "AddV2", [conv, chpad])
    alpha = RNG.uniform(0.05, 0.5, size=(1, 1, 5))
    prelu = g.op("p_re_lu/Relu", "Prelu", [add, g.const("p_re_lu/Neg", alpha)])
    sppad = g.op("spatial/Pad", "Pad",
                 [prelu, g.const("spatial/paddings", np.array([[0, 0], [1, 0], [0, 2], [0, 0]], np.int32))])
    flat = g.op("flat", "Reshape", [sppad, g.const("flat/shape", np.array([-1, 4 * 5 * 5], np.int32))])
    path = g.write(tmp_path, [flat])
    v = g.values

    def reference(inp: np.ndarray) -> np.ndarray:
        y = ref_conv(inp, v["conv/kernel"], 2, "SAME") + v["conv/bias"]
        n, h, w, c = inp.shape
        pooled = inp.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
        y = y + np.pad(pooled, [(0, 0), (0, 0), (0, 0), (0, 2)])
        y = np.where(y > 0, y, y * v["p_re_lu/Neg"])
        y = np.pad(y, [(0, 0), (1, 0), (0, 2), (0, 0)])
        return y.reshape(n, -1)

    return path, reference


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_pad_and_prelu_match_numpy(tmp_path: Path, facemesh_like, layout: str) -> None:
    model_json, reference = facemesh_like
    out = convert_file(model_json, tmp_path / "m.onnx", outputs={"flat": "mesh"}, input_layout=layout)
    x = RNG.normal(size=(2, 6, 6, 3)).astype(np.float32)
    (mesh,) = _run(out, x, layout)
    assert mesh.shape == (2, 100)
    np.testing.assert_allclose(mesh, reference(x.astype(np.float64)), rtol=1e-4, atol=1e-4)
    ops = [n.op_type for n in onnx.load(str(out)).graph.node]
    # both pads stay in NCHW: no transposes besides the NHWC input's and the one before the Reshape
    assert ops.count("Pad") == 2 and ops.count("PRelu") == 1
    assert ops.count("Transpose") == (2 if layout == "NHWC" else 1)


def test_pad_with_computed_paddings_is_rejected(tmp_path: Path) -> None:
    g = GraphWriter()
    x = g.placeholder("input_1", [-1, 4, 4, 3])
    g.op("pad", "Pad", [x, x])
    with pytest.raises(TfjsConversionError, match="non-constant paddings"):
        convert_file(g.write(tmp_path, ["pad"]), tmp_path / "m.onnx", outputs={"pad": "y"})


# -- shape arithmetic, resizing and DepthToSpace (MediaPipe's BlazeFace detectors) ------------------------------

def _keras_reshape(g: GraphWriter, prefix: str, x: str, dims: tuple[int, ...]) -> str:
    """Keras' Reshape layer as tfjs-converter exports it: Reshape(x, Pack([Shape(x)[0], *dims]))."""
    shape = g.op(f"{prefix}/Shape", "Shape", [x], T={"type": "DT_FLOAT"}, out_type={"type": "DT_INT32"})
    batch = g.op(f"{prefix}/strided_slice", "StridedSlice",
                 [shape, g.const(f"{prefix}/stack", np.array([0], np.int32)),
                  g.const(f"{prefix}/stack_1", np.array([1], np.int32)),
                  g.const(f"{prefix}/stack_2", np.array([1], np.int32))],
                 T={"type": "DT_INT32"}, Index={"type": "DT_INT32"}, begin_mask={"i": "0"}, end_mask={"i": "0"},
                 ellipsis_mask={"i": "0"}, new_axis_mask={"i": "0"}, shrink_axis_mask={"i": "1"})
    consts = [g.const(f"{prefix}/Reshape/shape/{i + 1}", np.array(d, np.int32)) for i, d in enumerate(dims)]
    packed = g.op(f"{prefix}/Reshape/shape", "Pack", [batch, *consts], T={"type": "DT_INT32"},
                  N={"i": str(1 + len(dims))}, axis={"i": "0"})
    return g.op(f"{prefix}/Reshape", "Reshape", [x, packed], T={"type": "DT_FLOAT"}, Tshape={"type": "DT_INT32"})


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("with_conv", [False, True])
def test_dynamic_batch_reshape_matches_numpy(tmp_path: Path, layout: str, with_conv: bool) -> None:
    g = GraphWriter()
    x = g.placeholder("input_1", [-1, 4, 4, 6])
    src = x
    if with_conv:   # the reshape then reads a 4-D activation the converter holds in NCHW
        src = g.op("conv", "Conv2D", [x, g.const("conv/kernel", RNG.normal(size=(3, 3, 6, 6)))],
                   strides=_ints(1, 1, 1, 1), padding=_s("SAME"), data_format=_s("NHWC"),
                   dilations=_ints(1, 1, 1, 1))
    out = _keras_reshape(g, "reshape", src, (16, 6))
    onnx_path = convert_file(g.write(tmp_path, [out]), tmp_path / "m.onnx", outputs={out: "flat"},
                             input_layout=layout)
    for batch in (1, 3):
        x_in = RNG.normal(size=(batch, 4, 4, 6)).astype(np.float32)
        want = ref_conv(x_in.astype(np.float64), g.values["conv/kernel"], 1, "SAME") if with_conv else x_in
        (flat,) = _run(onnx_path, x_in, layout)
        assert flat.shape == (batch, 16, 6)
        np.testing.assert_allclose(flat, want.reshape(batch, 16, 6), rtol=1e-5, atol=1e-5)


def _resize_axis(in_size: int, out_size: int, align_corners: bool, half_pixel: bool):
    """TF's (lower, upper, lerp) per output index (image_resizer_state.h, resize_bilinear_op.cc)."""
    if align_corners and out_size > 1:
        scale = (in_size - 1) / (out_size - 1)
    else:
        scale = in_size / out_size
    lower, upper, lerp = [], [], []
    for i in range(out_size):
        src = (i + 0.5) * scale - 0.5 if half_pixel else i * scale
        floor = np.floor(src)
        lower.append(max(int(floor), 0))
        upper.append(min(int(np.ceil(src)), in_size - 1))
        lerp.append(src - floor)
    return np.array(lower), np.array(upper), np.array(lerp)


def ref_resize_bilinear(x: np.ndarray, size: tuple[int, int], align_corners: bool, half_pixel: bool) -> np.ndarray:
    y0, y1, ly = _resize_axis(x.shape[1], size[0], align_corners, half_pixel)
    x0, x1, lx = _resize_axis(x.shape[2], size[1], align_corners, half_pixel)
    ly, lx = ly[None, :, None, None], lx[None, None, :, None]
    top = x[:, y0][:, :, x0] + (x[:, y0][:, :, x1] - x[:, y0][:, :, x0]) * lx
    bottom = x[:, y1][:, :, x0] + (x[:, y1][:, :, x1] - x[:, y1][:, :, x0]) * lx
    return top + (bottom - top) * ly


def _resized(tmp_path: Path, op: str, size: tuple[int, int], align_corners: bool, half_pixel: bool
             ) -> tuple[np.ndarray, np.ndarray]:
    """A [1, 4, 4, 3] input through one TF resize op, translated and run: (input, output)."""
    g = GraphWriter()
    x = g.placeholder("input_1", [-1, 4, 4, 3])
    up = g.op(f"up/{op}", op, [x, g.const("up/size", np.array(size, np.int32))],
              T={"type": "DT_FLOAT"}, align_corners={"b": align_corners}, half_pixel_centers={"b": half_pixel})
    out = convert_file(g.write(tmp_path, [up]), tmp_path / "m.onnx", outputs={up: "y"}, input_layout="NHWC")
    x_in = RNG.normal(size=(1, 4, 4, 3)).astype(np.float32)
    (y,) = _run(out, x_in, "NHWC")
    assert y.shape == (1, *size, 3)
    return x_in, y


@pytest.mark.parametrize("size", [(8, 8), (6, 3)])
@pytest.mark.parametrize("align_corners,half_pixel", [(False, True), (True, False), (False, False)])
def test_resize_bilinear_matches_numpy(tmp_path: Path, size: tuple[int, int], align_corners: bool,
                                       half_pixel: bool) -> None:
    x_in, y = _resized(tmp_path, "ResizeBilinear", size, align_corners, half_pixel)
    np.testing.assert_allclose(y, ref_resize_bilinear(x_in.astype(np.float64), size, align_corners, half_pixel),
                               rtol=1e-5, atol=1e-5)


def ref_depth_to_space(x: np.ndarray, block: int) -> np.ndarray:
    n, h, w, c = x.shape
    c_out = c // (block * block)
    out = np.zeros((n, h * block, w * block, c_out), x.dtype)
    for i in range(block):
        for j in range(block):
            for ch in range(c_out):
                out[:, i::block, j::block, ch] = x[:, :, :, (i * block + j) * c_out + ch]
    return out


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_depth_to_space_matches_numpy(tmp_path: Path, layout: str) -> None:
    g = GraphWriter()
    x = g.placeholder("input_1", [-1, 3, 3, 8])
    d2s = g.op("d2s", "DepthToSpace", [x], T={"type": "DT_FLOAT"}, data_format=_s("NHWC"), block_size={"i": "2"})
    out = convert_file(g.write(tmp_path, [d2s]), tmp_path / "m.onnx", outputs={d2s: "y"}, input_layout=layout)
    x_in = RNG.normal(size=(1, 3, 3, 8)).astype(np.float32)
    (y,) = _run(out, x_in, layout)
    assert y.shape == (1, 6, 6, 2)
    np.testing.assert_array_equal(y, ref_depth_to_space(x_in, 2))


def test_strided_slice_with_ellipsis_is_rejected(tmp_path: Path) -> None:
    g = GraphWriter()
    x = g.placeholder("input_1", [-1, 4, 4, 3])
    shape = g.op("odd/Shape", "Shape", [x], out_type={"type": "DT_INT32"})
    sliced = g.op("odd/strided_slice", "StridedSlice",
                  [shape, g.const("b", np.array([0], np.int32)), g.const("e", np.array([1], np.int32)),
                   g.const("s", np.array([1], np.int32))], ellipsis_mask={"i": "1"}, shrink_axis_mask={"i": "0"})
    with pytest.raises(TfjsConversionError, match=r"odd/strided_slice.*ellipsis_mask"):
        convert_file(g.write(tmp_path, [sliced]), tmp_path / "m.onnx", outputs={sliced: "y"})


def _nearest_axis(in_size: int, out_size: int, align_corners: bool, half_pixel: bool) -> np.ndarray:
    """TF's source index per output index (resize_nearest_neighbor_op.cc): floor of the scaled coordinate, or
    roundf with align_corners; half-pixel centres scale (x + 0.5) with no -0.5 shift."""
    scale = (in_size - 1) / (out_size - 1) if align_corners and out_size > 1 else in_size / out_size
    src = (np.arange(out_size) + 0.5) * scale if half_pixel else np.arange(out_size) * scale
    idx = np.floor(src + 0.5) if align_corners else np.floor(src)   # roundf: half away from zero (src >= 0)
    return np.clip(idx.astype(int), 0, in_size - 1)


@pytest.mark.parametrize("size", [(8, 8), (6, 3)])
@pytest.mark.parametrize("align_corners,half_pixel", [(False, False), (False, True), (True, False)])
def test_resize_nearest_matches_numpy(tmp_path: Path, size: tuple[int, int], align_corners: bool,
                                      half_pixel: bool) -> None:
    x_in, y = _resized(tmp_path, "ResizeNearestNeighbor", size, align_corners, half_pixel)
    rows = _nearest_axis(4, size[0], align_corners, half_pixel)
    cols = _nearest_axis(4, size[1], align_corners, half_pixel)
    np.testing.assert_array_equal(y, x_in[:, rows][:, :, cols])
