"""Translate a TFJS graph model (model.json + shards) into ONNX, one ONNX node (or a few) per TF op.

Why not tf2onnx / tensorflowjs_converter: both need TensorFlow, which is far too heavy for CI. The graphs we
need (MobileNet-style face models) use a handful of ops, and writing those nodes with `onnx.helper` is short
and checkable.

Layout: TFJS graphs are NHWC. Every 4-D activation is kept in NCHW inside the ONNX graph (ONNX Conv is NCHW),
so the graph input is transposed once (or declared NCHW outright) and constants that broadcast against a
4-D activation are permuted when they are written. An op that needs TF's own layout (Reshape, Squeeze, ...)
gets its input transposed back to NHWC first, so unusual graphs stay correct, only slower.

An op this module does not know raises `UnsupportedOpError` naming the op and the node.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17

NHWC_TO_NCHW = (0, 3, 1, 2)
NCHW_TO_NHWC = (0, 2, 3, 1)
# Where NHWC axis a lives in NCHW.
_NHWC_AXIS_IN_NCHW = {0: 0, 1: 2, 2: 3, 3: 1}

_DTYPES = {
    "float32": np.float32,
    "int32": np.int32,
    "bool": np.bool_,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "float16": np.float16,
}
_TF_DTYPES = {"DT_FLOAT": np.float32, "DT_INT32": np.int32, "DT_BOOL": np.bool_, "DT_INT64": np.int64}


class TfjsConversionError(ValueError):
    """The TFJS model cannot be read or translated."""


class UnsupportedOpError(TfjsConversionError):
    def __init__(self, op: str, node: str):
        super().__init__(f"unsupported TFJS op {op!r} (node {node!r}); add a translation in tfjs_to_onnx.py")
        self.op = op
        self.node = node


# ---------------------------------------------------------------------------------------------------------
# Reading the TFJS files


@dataclass
class TfjsGraph:
    nodes: dict[str, dict[str, Any]]           # by node name, in file order
    weights: dict[str, np.ndarray]             # dequantized, float32 for float weights
    inputs: dict[str, list[int]]               # placeholder name -> TF shape (-1 = dynamic)
    outputs: list[str] = field(default_factory=list)   # signature outputs, if any


def _decode_weights(manifest: Sequence[Mapping[str, Any]], base: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for group in manifest:
        data = b"".join((base / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            name, shape, dtype = spec["name"], [int(d) for d in spec["shape"]], spec["dtype"]
            count = int(np.prod(shape)) if shape else 1
            quant = spec.get("quantization")
            if dtype not in _DTYPES or dtype == "float16":
                raise TfjsConversionError(f"weight {name!r}: unsupported dtype {dtype!r}")
            if quant:
                qdtype = np.dtype(_DTYPES.get(quant["dtype"], np.void))
                if quant["dtype"] not in ("float16", "uint8", "uint16"):
                    raise TfjsConversionError(f"weight {name!r}: unsupported quantization {quant['dtype']!r}")
                nbytes = count * qdtype.itemsize
                raw = np.frombuffer(data, dtype=qdtype, count=count, offset=offset)
                if quant["dtype"] == "float16":
                    value = raw.astype(np.float32)
                else:
                    # Affine quantization: q * scale + min (tfjs-core io/io_utils.ts).
                    value = raw.astype(np.float32) * float(quant["scale"]) + float(quant["min"])
                value = value.astype(_DTYPES[dtype])
            else:
                nbytes = count * np.dtype(_DTYPES[dtype]).itemsize
                value = np.frombuffer(data, dtype=_DTYPES[dtype], count=count, offset=offset).copy()
            offset += nbytes
            out[name] = value.reshape(shape)
        if offset != len(data):
            raise TfjsConversionError(f"weight group {group['paths']}: read {offset} bytes of {len(data)}")
    return out


def _inline_const(node: Mapping[str, Any]) -> np.ndarray | None:
    """A Const whose value sits in the JSON (small scalars in some exports) rather than in the shards."""
    tensor = node.get("attr", {}).get("value", {}).get("tensor")
    if not tensor:
        return None
    dtype = _TF_DTYPES.get(tensor.get("dtype", ""))
    shape = [int(d.get("size", 0)) for d in tensor.get("tensorShape", {}).get("dim", [])]
    for key in ("floatVal", "intVal", "boolVal", "int64Val"):
        if key in tensor and dtype is not None:
            vals = np.array(tensor[key], dtype=dtype)
            return np.broadcast_to(vals, shape).copy() if vals.size == 1 else vals.reshape(shape)
    return None


def load_tfjs_graph(model_json: str | Path) -> TfjsGraph:
    model_json = Path(model_json)
    try:
        spec = json.loads(model_json.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise TfjsConversionError(f"{model_json}: cannot read TFJS model JSON: {err}") from err
    if spec.get("format") not in (None, "graph-model"):
        raise TfjsConversionError(f"{model_json}: format {spec.get('format')!r} is not a graph model")
    topology = spec.get("modelTopology", {})
    nodes = {n["name"]: n for n in topology.get("node", [])}
    if not nodes:
        raise TfjsConversionError(f"{model_json}: no graph nodes")
    if topology.get("library", {}).get("function"):
        raise TfjsConversionError(f"{model_json}: control-flow functions are not supported")
    weights = _decode_weights(spec.get("weightsManifest", []), model_json.parent)
    for name, node in nodes.items():
        if node["op"] == "Const" and name not in weights:
            inline = _inline_const(node)
            if inline is None:
                raise TfjsConversionError(f"{model_json}: Const {name!r} has no value in the weights")
            weights[name] = inline
    inputs = {}
    for name, node in nodes.items():
        if node["op"] == "Placeholder":
            dims = node.get("attr", {}).get("shape", {}).get("shape", {}).get("dim", [])
            inputs[name] = [int(d.get("size", -1)) for d in dims]
    outputs = list(spec.get("signature", {}).get("outputs", {}).keys())
    return TfjsGraph(nodes=nodes, weights=weights, inputs=inputs, outputs=outputs)


# ---------------------------------------------------------------------------------------------------------
# Attribute helpers


def _attr(node: Mapping[str, Any], key: str, default: Any = None) -> Any:
    a = node.get("attr", {}).get(key)
    if a is None:
        return default
    if "s" in a:
        return base64.b64decode(a["s"]).decode()
    if "list" in a:
        lst = a["list"]
        if "i" in lst:
            return [int(v) for v in lst["i"]]
        if "f" in lst:
            return [float(v) for v in lst["f"]]
        if "s" in lst:
            return [base64.b64decode(v).decode() for v in lst["s"]]
        return []
    if "i" in a:
        return int(a["i"])
    if "f" in a:
        return float(a["f"])
    if "b" in a:
        return bool(a["b"])
    if "type" in a:
        return a["type"]
    return default


def _split_ref(ref: str) -> tuple[str, int]:
    name, _, idx = ref.partition(":")
    return name, int(idx) if idx else 0


# ---------------------------------------------------------------------------------------------------------
# Translation


@dataclass
class _Value:
    onnx_name: str
    nchw: bool        # True: a 4-D activation stored in NCHW (TF sees it as NHWC)


class _Builder:
    def __init__(self, graph: TfjsGraph):
        self.g = graph
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, onnx.TensorProto] = {}
        self.values: dict[str, _Value] = {}
        self._uid = 0

    # -- naming and constants
    def fresh(self, base: str) -> str:
        self._uid += 1
        return f"{base}__{self._uid}"

    def init(self, name: str, array: np.ndarray) -> str:
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        if name not in self.inits:
            self.inits[name] = numpy_helper.from_array(np.ascontiguousarray(array), name)
        return name

    def add(self, op: str, inputs: Sequence[str], outputs: Sequence[str] | None = None, name: str | None = None,
            **attrs: Any) -> str:
        outs = list(outputs) if outputs else [self.fresh(name or op)]
        self.nodes.append(helper.make_node(op, list(inputs), outs, name=name or outs[0], **attrs))
        return outs[0]

    def is_const(self, ref: str) -> bool:
        name, _ = _split_ref(ref)
        node = self.g.nodes.get(name)
        return node is not None and node["op"] == "Const"

    def const(self, ref: str) -> np.ndarray:
        return self.g.weights[_split_ref(ref)[0]]

    # -- layout conversions
    def as_tf(self, ref: str) -> str:
        """The ONNX tensor for `ref` in TF's own layout."""
        if self.is_const(ref):
            return self.init(ref, self.const(ref))
        v = self.values[ref]
        if not v.nchw:
            return v.onnx_name
        key = f"{ref}__nhwc"
        if key not in self.values:
            self.values[key] = _Value(self.add("Transpose", [v.onnx_name], perm=list(NCHW_TO_NHWC),
                                               name=self.fresh(f"{ref}/to_nhwc")), False)
        return self.values[key].onnx_name

    def operand(self, ref: str, nchw: bool) -> str:
        """`ref` ready to broadcast against a tensor that is NCHW (`nchw`) or in TF layout."""
        if self.is_const(ref):
            arr = self.const(ref)
            if not nchw or arr.ndim == 0:
                return self.init(ref, arr)
            if arr.ndim > 4:
                raise TfjsConversionError(f"constant {ref!r} of rank {arr.ndim} against a 4-D activation")
            arr4 = arr.reshape((1,) * (4 - arr.ndim) + arr.shape)
            return self.init(f"{ref}__nchw", arr4.transpose(NHWC_TO_NCHW))
        v = self.values[ref]
        if v.nchw == nchw:
            return v.onnx_name
        if v.nchw and not nchw:
            return self.as_tf(ref)
        raise TfjsConversionError(f"cannot broadcast TF-layout {ref!r} against an NCHW activation")

    def is_nchw(self, ref: str) -> bool:
        return not self.is_const(ref) and self.values[ref].nchw


_Handler = Callable[[_Builder, str, dict[str, Any], list[str]], _Value]
_HANDLERS: dict[str, _Handler] = {}


def _handles(*ops: str) -> Callable[[_Handler], _Handler]:
    def deco(fn: _Handler) -> _Handler:
        for op in ops:
            _HANDLERS[op] = fn
        return fn
    return deco


def _activation(b: _Builder, x: str, kind: str, node: dict[str, Any], extra: list[str], base: str) -> str:
    name = f"{base}/{kind}"
    if kind == "Relu":
        return b.add("Relu", [x], name=name)
    if kind == "Relu6":
        return b.add("Clip", [x, b.init("__zero", np.array(0, np.float32)), b.init("__six", np.array(6, np.float32))],
                     name=name)
    if kind == "Elu":
        return b.add("Elu", [x], name=name)
    if kind == "Sigmoid":
        return b.add("Sigmoid", [x], name=name)
    if kind == "Tanh":
        return b.add("Tanh", [x], name=name)
    if kind == "LeakyRelu":
        return b.add("LeakyRelu", [x], name=name, alpha=float(_attr(node, "leakyrelu_alpha", 0.2)))
    if kind == "Prelu":
        if not extra:
            raise TfjsConversionError(f"{base}: fused Prelu without an alpha argument")
        return b.add("PRelu", [x, extra[0]], name=name)
    raise UnsupportedOpError(f"fused activation {kind}", base)


def _conv_geometry(node: dict[str, Any], name: str, kernel: Sequence[int]) -> dict[str, Any]:
    fmt = _attr(node, "data_format", "NHWC")
    if fmt != "NHWC":
        raise TfjsConversionError(f"{name}: data_format {fmt!r} (only NHWC TFJS graphs are supported)")
    strides = _attr(node, "strides", [1, 1, 1, 1])
    dilations = _attr(node, "dilations", [1, 1, 1, 1]) or [1, 1, 1, 1]
    padding = _attr(node, "padding", "VALID")
    geo: dict[str, Any] = {"strides": strides[1:3], "dilations": dilations[1:3]}
    if padding == "SAME" and geo["strides"] == [1, 1]:
        # At stride 1 the padding does not depend on the input size; explicit pads also work with
        # dilations, which onnxruntime refuses together with auto_pad.
        total = [(k - 1) * d for k, d in zip(kernel, geo["dilations"])]
        geo["pads"] = [total[0] // 2, total[1] // 2, total[0] - total[0] // 2, total[1] - total[1] // 2]
    elif padding == "SAME":
        if geo["dilations"] != [1, 1]:
            raise TfjsConversionError(f"{name}: SAME padding with both strides and dilations")
        # TF puts the odd padding pixel at the end, which is ONNX's SAME_UPPER.
        geo["auto_pad"] = "SAME_UPPER"
    elif padding == "VALID":
        geo["pads"] = [0, 0, 0, 0]
    elif padding == "EXPLICIT":
        p = _attr(node, "explicit_paddings", [])
        if len(p) != 8:
            raise TfjsConversionError(f"{name}: explicit_paddings {p!r}")
        geo["pads"] = [p[2], p[4], p[3], p[5]]   # NHWC pairs (top,bottom),(left,right) -> begins, ends
    else:
        raise TfjsConversionError(f"{name}: padding {padding!r}")
    return geo


def _fused_tail(b: _Builder, y: str, name: str, node: dict[str, Any], args: list[str], nchw: bool) -> str:
    """Apply `fused_ops` (BiasAdd / FusedBatchNorm, then an activation) of a _Fused* node."""
    ops = list(_attr(node, "fused_ops", []) or [])
    rest = list(args)
    if ops and ops[0] == "BiasAdd":
        y = b.add("Add", [y, b.operand(rest.pop(0), nchw)], name=f"{name}/BiasAdd")
        ops.pop(0)
    elif ops and ops[0] == "FusedBatchNorm":
        scale, offset, mean, var = (b.const(r).astype(np.float32) for r in rest[:4])
        rest = rest[4:]
        eps = float(_attr(node, "epsilon", 0.0) or 0.0)
        mul = scale / np.sqrt(var + eps)
        add = offset - mean * mul
        shape = (-1, 1, 1) if nchw else (-1,)
        y = b.add("Mul", [y, b.init(f"{name}/bn_mul", mul.reshape(shape))], name=f"{name}/bn_mul")
        y = b.add("Add", [y, b.init(f"{name}/bn_add", add.reshape(shape))], name=f"{name}/bn_add")
        ops.pop(0)
    for kind in ops:
        extra = [b.operand(r, nchw) for r in rest[:1]] if kind == "Prelu" else []
        y = _activation(b, y, kind, node, extra, name)
    return y


@_handles("Conv2D", "_FusedConv2D")
def _conv2d(b: _Builder, name: str, node: dict[str, Any], ins: list[str]) -> _Value:
    x, w_ref, *args = ins
    if not b.is_const(w_ref):
        raise TfjsConversionError(f"{name}: Conv2D with a non-constant filter")
    w = b.const(w_ref).transpose(3, 2, 0, 1)   # HWIO -> OIHW
    y = b.add("Conv", [b.operand(x, True), b.init(f"{w_ref}__oihw", w)], name=name,
              **_conv_geometry(node, name, w.shape[2:]))
    if node["op"] == "_FusedConv2D":
        y = _fused_tail(b, y, name, node, args, True)
    return _Value(y, True)


@_handles("DepthwiseConv2dNative", "FusedDepthwiseConv2dNative")
def _depthwise(b: _Builder, name: str, node: dict[str, Any], ins: list[str]) -> _Value:
    x, w_ref, *args = ins
    if not b.is_const(w_ref):
        raise TfjsConversionError(f"{name}: depthwise conv with a non-constant filter")
    w = b.const(w_ref)                          # [H, W, Cin, multiplier]; TF output channel = c * mult + m
    h, wd, cin, mult = w.shape
    w = w.transpose(2, 3, 0, 1).reshape(cin * mult, 1, h, wd)
    y = b.add("Conv", [b.operand(x, True), b.init(f"{w_ref}__dw", w)], name=name, group=int(cin),
              **_conv_geometry(node, name, (h, wd)))
    if node["op"] == "FusedDepthwiseConv2dNative":
        y = _fused_tail(b, y, name, node, args, True)
    return _Value(y, True)


_BINARY = {"Add": "Add", "AddV2": "Add", "BiasAdd": "Add", "Sub": "Sub", "Mul": "Mul", "RealDiv": "Div",
           "Div": "Div", "Maximum": "Max", "Minimum": "Min", "Pow": "Pow", "SquaredDifference": None}


@_handles(*_BINARY)
def _binary(b: _Builder, name: str, node: dict[str, Any], ins: list[str]) -> _Value:
    if len(ins) != 2:
        raise TfjsConversionError(f"{name}: {node['op']} with {len(ins)} inputs")
    nchw = any(b.is_nchw(r) for r in ins)
    if nchw and not all(b.is_const(r) or b.is_nchw(r) for r in ins):
        nchw = False                             # mixed with a TF-layout activation: work in TF layout
    op = node["op"]
    # max(x, c) / min(x, c) with a scalar c is a one-sided Clip; `_merge_clips` then folds Keras' ReLU6
    # (Relu -> Minimum 6 -> Maximum 0) into one Clip that onnxruntime fuses into the preceding Conv.
    if op in ("Maximum", "Minimum"):
        scalar = [r for r in ins if b.is_const(r) and b.const(r).size == 1]
        if len(scalar) == 1:
            x = next(r for r in ins if r != scalar[0])
            bound = b.init(f"{scalar[0]}__scalar", b.const(scalar[0]).reshape(()).astype(np.float32))
            bounds = [bound, ""] if op == "Maximum" else ["", bound]
            return _Value(b.add("Clip", [b.operand(x, nchw), *bounds], name=name), nchw)
    a, c = (b.operand(r, nchw) for r in ins)
    if op == "SquaredDifference":
        d = b.add("Sub", [a, c], name=f"{name}/sub")
        return _Value(b.add("Mul", [d, d], name=name), nchw)
    return _Value(b.add(_BINARY[node["op"]], [a, c], name=name), nchw)


_UNARY = {"Relu": "Relu", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "Elu": "Elu", "Exp": "Exp", "Log": "Log",
          "Sqrt": "Sqrt", "Neg": "Neg", "Abs": "Abs", "Identity": "Identity", "Floor": "Floor"}


@_handles(*_UNARY)
def _unary(b: _Builder, name: str, node: dict[str, Any], ins: list[str]) -> _Value:
    nchw = b.is_nchw(ins[0])
    return _Value(b.add(_UNARY[node["op"]], [b.operand(ins[0], nchw)], name=name), nchw)


@_handles("Relu6", "LeakyRelu")
def _relu_like(b: _Builder, name: str, node: dict[str, Any], ins: list[str]) -> _Value:
    nchw = b.is_nchw(ins[0])
    return _Value(_activation(b, b.operand(ins[0], nchw), node["op"], node, [], name), nchw)


@_handles("Prelu")
def _prelu(b: _Builder, name: str, node: dict[str, Any], ins: list[str]) -> _Value:
    # Keras' PReLU layer, exported unfused (after an AddV2 rather than a conv); alpha is a per-channel const
    # that `operand` permutes to broadcast against the NCHW activation.
    x, alpha = ins
    if not b.is_const(alpha):
        raise TfjsConversionError(f"{name}: Prelu with a non-constant alpha")
    nchw = b.is_nchw(x)
    return _Value(_activation(b, b.operand(x, nchw), "Prelu", node, [b.operand(alpha, nchw)], name), nchw)


@_handles("Pad")
def _pad(b: _Builder, name: str, node: dict[str, Any], ins: list[str]) -> _Value:
    # TF's paddings are [[begin, end]] per NHWC axis; ONNX wants all begins then all ends, in the tensor's own
    # axis order (NCHW here). Facemesh uses this to zero-pad channels before a residual add.
    x, pads_ref = ins
    if not b.is_const(pads_ref):
        raise TfjsConversionError(f"{name}: Pad with non-constant paddings")
    pads = np.asarray(b.const(pads_ref), dtype=np.int64).reshape(-1, 2)
    nchw = b.is_nchw(x)
    if nchw:
        if len(pads) != 4:
            raise TfjsConversionError(f"{name}: paddings of rank {len(pads)} for a 4-D activation")
        pads = pads[list(NHWC_TO_NCHW)]
    src = b.operand(x, True) if nchw else b.as_tf(x)
    onnx_pads = b.init(f"{name}/pads", np.concatenate([pads[:, 0], pads[:, 1]]).astype(np.int64))
    return _Value(b.add("Pad", [src, onnx_pads], name=name, mode="constant"), nchw)


@_handles("Softmax")
def _softmax(b: _Builder, name: str, node: dict[str, Any], ins: list[str]) -> _Value:
    nchw = b.is_nchw(ins[0])
    # TF normalises over the last axis, which is channels (axis 1) in an NCHW tensor.
    return _Value(b.add("Softmax", [b.operand(ins[0], nchw)], name=name, axis=1 if nchw else -1), nchw)


@_handles("Mean", "Max", "Sum", "Min")
def _reduce(b: _Builder, name: str, node: dict[str, Any], ins: list[str]) -> _Value:
    x, axes_ref = ins
    if not b.is_const(axes_ref):
        raise TfjsConversionError(f"{name}: {node['op']} with non-constant axes")
    tf_axes = sorted({int(a) % 4 if b.is_nchw(x) else int(a) for a in np.atleast_1d(b.const(axes_ref))})
    keep = bool(_attr(node, "keep_dims", False))
    nchw = b.is_nchw(x)
    axes = tf_axes
    if nchw:
        axes = sorted(_NHWC_AXIS_IN_NCHW[a] for a in tf_axes)
        kept_tf = [_NHWC_AXIS_IN_NCHW[a] for a in range(4) if a not in tf_axes]
        # Without keep_dims the result leaves the 4-D layout; that is only right when the surviving axes keep
        # TF's order (N, C after pooling H and W). Otherwise reduce in TF layout.
        if not keep and kept_tf != sorted(kept_tf):
            nchw, axes = False, tf_axes
    src = b.operand(x, True) if nchw else b.as_tf(x)
    op = {"Mean": "ReduceMean", "Max": "ReduceMax", "Sum": "ReduceSum", "Min": "ReduceMin"}[node["op"]]
    if op == "ReduceSum":   # axes became an input in opset 13 for ReduceSum, in 18 for the others
        y = b.add(op, [src, b.init(f"{name}/axes", np.array(axes, np.int64))], name=name, keepdims=int(keep))
    else:
        y = b.add(op, [src], name=name, axes=axes, keepdims=int(keep))
    return _Value(y, nchw and keep)


@_handles("MatMul", "_FusedMatMul")
def _matmul(b: _Builder, name: str, node: dict[str, Any], ins: list[str]) -> _Value:
    a, c, *args = ins
    attrs = {"transA": int(bool(_attr(node, "transpose_a", False))),
             "transB": int(bool(_attr(node, "transpose_b", False)))}
    y = b.add("Gemm", [b.as_tf(a), b.as_tf(c)], name=name, **attrs)
    if node["op"] == "_FusedMatMul":
        y = _fused_tail(b, y, name, node, args, False)
    return _Value(y, False)


@_handles("FusedBatchNorm", "FusedBatchNormV3")
def _batchnorm(b: _Builder, name: str, node: dict[str, Any], ins: list[str]) -> _Value:
    x, *args = ins
    nchw = b.is_nchw(x)
    fake = dict(node, attr=dict(node.get("attr", {}), fused_ops={"list": {"s": [
        base64.b64encode(b"FusedBatchNorm").decode()]}}))
    return _Value(_fused_tail(b, b.operand(x, nchw), name, fake, args, nchw), nchw)


@_handles("AvgPool", "MaxPool")
def _pool(b: _Builder, name: str, node: dict[str, Any], ins: list[str]) -> _Value:
    ksize = _attr(node, "ksize", [1, 1, 1, 1])
    geo = _conv_geometry(node, name, ksize[1:3])
    geo.pop("dilations")
    op = "AveragePool" if node["op"] == "AvgPool" else "MaxPool"
    extra = {"count_include_pad": 0} if op == "AveragePool" else {}
    return _Value(b.add(op, [b.operand(ins[0], True)], name=name, kernel_shape=ksize[1:3], **geo, **extra), True)


@_handles("Reshape")
def _reshape(b: _Builder, name: str, node: dict[str, Any], ins: list[str]) -> _Value:
    x, shape_ref = ins
    if b.is_const(shape_ref):
        shape = b.init(f"{shape_ref}__i64", b.const(shape_ref).astype(np.int64))
    else:
        shape = b.values[shape_ref].onnx_name   # computed at run time (Shape → StridedSlice → Pack): int64
    return _Value(b.add("Reshape", [b.as_tf(x), shape], name=name), False)


# Shape arithmetic. Keras writes `Reshape(x, Pack([Shape(x)[0], a, b]))` to keep the batch dimension dynamic;
# these three ops compute such a shape at run time. Shape tensors are int64 in ONNX (TF's are int32), and every
# constant that meets them is written as int64.

@_handles("Shape")
def _shape(b: _Builder, name: str, node: dict[str, Any], ins: list[str]) -> _Value:
    return _Value(b.add("Shape", [b.as_tf(ins[0])], name=name), False)   # TF's axis order, as TF sees it


@_handles("StridedSlice")
def _strided_slice(b: _Builder, name: str, node: dict[str, Any], ins: list[str]) -> _Value:
    x, *refs = ins
    if not all(b.is_const(r) for r in refs):
        raise TfjsConversionError(f"{name}: StridedSlice with non-constant bounds")
    begin, end, strides = (np.atleast_1d(b.const(r)).astype(np.int64) for r in refs)
    if b.is_nchw(x) or len(begin) != 1:
        raise TfjsConversionError(f"{name}: StridedSlice is supported on 1-D tensors (shapes) only")
    for mask in ("ellipsis_mask", "new_axis_mask"):
        if int(_attr(node, mask, 0) or 0):
            raise TfjsConversionError(f"{name}: StridedSlice with {mask}")
    big = np.iinfo(np.int64).max
    if int(_attr(node, "begin_mask", 0) or 0) & 1:
        begin = np.array([0 if strides[0] > 0 else big], np.int64)
    if int(_attr(node, "end_mask", 0) or 0) & 1:
        end = np.array([big if strides[0] > 0 else -big], np.int64)
    shrink = int(_attr(node, "shrink_axis_mask", 0) or 0) & 1
    if shrink:   # one element, whatever `end` says
        end = begin + 1 if begin[0] != -1 else np.array([big], np.int64)
    y = b.add("Slice", [b.as_tf(x), b.init(f"{name}/begin", begin), b.init(f"{name}/end", end),
                        b.init(f"{name}/axes", np.array([0], np.int64)), b.init(f"{name}/steps", strides)], name=name)
    if shrink:
        y = b.add("Squeeze", [y, b.init(f"{name}/squeeze_axes", np.array([0], np.int64))], name=f"{name}/shrink")
    return _Value(y, False)


@_handles("Pack")
def _pack(b: _Builder, name: str, node: dict[str, Any], ins: list[str]) -> _Value:
    if int(_attr(node, "axis", 0) or 0) != 0:
        raise TfjsConversionError(f"{name}: Pack is supported along axis 0 of scalars (shapes) only")
    parts = []
    for r in ins:
        if b.is_const(r):
            v = np.asarray(b.const(r))
            if v.ndim != 0:
                raise TfjsConversionError(f"{name}: Pack of a non-scalar constant {r!r}")
            parts.append(b.init(f"{r}__i64_1d", v.astype(np.int64).reshape(1)))
        else:
            parts.append(b.add("Unsqueeze", [b.as_tf(r), b.init(f"{name}/axes", np.array([0], np.int64))],
                               name=b.fresh(f"{name}/unsqueeze")))
    return _Value(b.add("Concat", parts, name=name, axis=0), False)


@_handles("ResizeBilinear", "ResizeNearestNeighbor")
def _resize(b: _Builder, name: str, node: dict[str, Any], ins: list[str]) -> _Value:
    x, size_ref = ins
    if not b.is_const(size_ref):
        raise TfjsConversionError(f"{name}: {node['op']} with a non-constant size")
    align = bool(_attr(node, "align_corners", False))
    half = bool(_attr(node, "half_pixel_centers", False))
    if align and half:
        raise TfjsConversionError(f"{name}: align_corners and half_pixel_centers together")
    linear = node["op"] == "ResizeBilinear"
    # TF's coordinate conventions by name in ONNX. Nearest: with half-pixel centres TF takes floor((x + 0.5) ·
    # scale), with aligned corners it rounds x · (in - 1) / (out - 1), otherwise floor(x · scale).
    mode = "align_corners" if align else ("half_pixel" if half else "asymmetric")
    if not linear and half:
        mode = "tf_half_pixel_for_nn"
    src = b.operand(x, True)
    # sizes = [N, C] of the input (N is dynamic) followed by TF's [H, W]
    nc = b.add("Slice", [b.add("Shape", [src], name=f"{name}/shape"), b.init(f"{name}/nc_begin", np.array([0], np.int64)),
                         b.init(f"{name}/nc_end", np.array([2], np.int64))], name=f"{name}/nc")
    hw = b.init(f"{name}/hw", np.asarray(b.const(size_ref)).astype(np.int64).reshape(2))
    sizes = b.add("Concat", [nc, hw], name=f"{name}/sizes", axis=0)
    extra = {} if linear else {"nearest_mode": "round_prefer_ceil" if align else "floor"}
    y = b.add("Resize", [src, "", "", sizes], name=name, mode="linear" if linear else "nearest",
              coordinate_transformation_mode=mode, **extra)
    return _Value(y, True)


@_handles("DepthToSpace")
def _depth_to_space(b: _Builder, name: str, node: dict[str, Any], ins: list[str]) -> _Value:
    fmt = _attr(node, "data_format", "NHWC")
    if fmt != "NHWC":
        raise TfjsConversionError(f"{name}: data_format {fmt!r} (only NHWC TFJS graphs are supported)")
    # TF splits depth as (block row, block column, channel): ONNX's DCR order on the NCHW tensor.
    return _Value(b.add("DepthToSpace", [b.operand(ins[0], True)], name=name,
                        blocksize=int(_attr(node, "block_size")), mode="DCR"), True)


@_handles("Squeeze")
def _squeeze(b: _Builder, name: str, node: dict[str, Any], ins: list[str]) -> _Value:
    dims = _attr(node, "squeeze_dims", []) or []
    inputs = [b.as_tf(ins[0])]
    if dims:
        inputs.append(b.init(f"{name}/axes", np.array(dims, np.int64)))
    return _Value(b.add("Squeeze", inputs, name=name), False)


@_handles("ConcatV2")
def _concat(b: _Builder, name: str, node: dict[str, Any], ins: list[str]) -> _Value:
    *parts, axis_ref = ins
    axis = int(b.const(axis_ref))
    nchw = all(b.is_nchw(p) or b.is_const(p) for p in parts) and any(b.is_nchw(p) for p in parts)
    if nchw:
        srcs = [b.operand(p, True) for p in parts]
        axis = _NHWC_AXIS_IN_NCHW[axis % 4]
    else:
        srcs = [b.as_tf(p) for p in parts]
    return _Value(b.add("Concat", srcs, name=name, axis=axis), nchw)


def _merge_clips(nodes: list[onnx.NodeProto], inits: dict[str, onnx.TensorProto],
                 keep: set[str]) -> list[onnx.NodeProto]:
    """Fold chains of Relu/Clip whose intermediate results feed nothing else into single Clips."""
    consumers: dict[str, int] = {}
    for n in nodes:
        for i in n.input:
            consumers[i] = consumers.get(i, 0) + 1

    def scalar(name: str, default: float) -> float | None:
        if not name:
            return default
        t = inits.get(name)
        if t is None:
            return None
        a = numpy_helper.to_array(t)
        return float(a.reshape(())) if a.size == 1 else None

    bounds: dict[str, tuple[float, float]] = {}     # output name -> (lo, hi) of a clip-like node
    for n in nodes:
        if n.op_type == "Relu":
            bounds[n.output[0]] = (0.0, float("inf"))
        elif n.op_type == "Clip" and n.domain in ("", "ai.onnx"):
            lo = scalar(n.input[1] if len(n.input) > 1 else "", float("-inf"))
            hi = scalar(n.input[2] if len(n.input) > 2 else "", float("inf"))
            if lo is not None and hi is not None:
                bounds[n.output[0]] = (lo, hi)

    producer = {n.output[0]: n for n in nodes}
    dead: set[int] = set()
    source: dict[str, str] = {}                      # merged clip output -> its ultimate input
    for n in nodes:
        out = n.output[0]
        if out not in bounds:
            continue
        src = n.input[0]
        prev = producer.get(src)
        if prev is None or src not in bounds or consumers.get(src, 0) != 1 or src in keep:
            source[out] = src
            continue
        (plo, phi), (lo, hi) = bounds[src], bounds[out]
        mlo, mhi = max(plo, lo), min(phi, hi)
        if mlo > mhi:                                # disjoint ranges: the result is a constant; leave it
            source[out] = src
            continue
        bounds[out] = (mlo, mhi)
        source[out] = source.get(src, prev.input[0])
        dead.add(id(prev))

    result = []
    for n in nodes:
        if id(n) in dead:
            continue
        out = n.output[0]
        if out in bounds and (source.get(out, n.input[0]) != n.input[0] or n.op_type == "Clip"):
            lo, hi = bounds[out]
            if (lo, hi) == (0.0, float("inf")):
                n = helper.make_node("Relu", [source[out]], [out], name=n.name)
            else:
                ins = [source[out]]
                for tag, v, inf in (("lo", lo, float("-inf")), ("hi", hi, float("inf"))):
                    key = f"__clip_{tag}_{v!r}"
                    if v != inf and key not in inits:
                        inits[key] = numpy_helper.from_array(np.array(v, np.float32), key)
                    ins.append(key if v != inf else "")
                while ins[-1] == "":
                    ins.pop()
                n = helper.make_node("Clip", ins, [out], name=n.name)
        result.append(n)
    # Initializers only the removed nodes used would fail nothing, but would bloat the file.
    used = {i for n in result for i in n.input}
    for name in [k for k in inits if k not in used]:
        del inits[name]
    return result


def _needed(graph: TfjsGraph, outputs: Sequence[str]) -> list[str]:
    """Node names the outputs depend on, inputs before users (graph files are usually ordered, but need not be)."""
    order: list[str] = []
    seen: set[str] = set()
    stack = [(_split_ref(o)[0], False) for o in outputs]
    while stack:
        name, expanded = stack.pop()
        if name not in graph.nodes:
            raise TfjsConversionError(f"node {name!r} is referenced but not in the graph")
        if expanded:
            if name not in seen:
                seen.add(name)
                order.append(name)
            continue
        if name in seen:
            continue
        stack.append((name, True))
        for ref in graph.nodes[name].get("input", []):
            if not ref.startswith("^"):
                dep = _split_ref(ref)[0]
                if dep not in seen:
                    stack.append((dep, False))
    return order


def convert(
    graph: TfjsGraph,
    *,
    outputs: Mapping[str, str],
    input_name: str = "image",
    input_layout: str = "NCHW",
    batch_dim: str = "N",
    doc: str = "",
) -> onnx.ModelProto:
    """Build an ONNX model computing `outputs` (TF tensor name -> ONNX output name) from the one Placeholder.

    `input_layout` is the layout of the ONNX input: "NCHW" (no transpose at run time) or "NHWC" (TF's own,
    transposed once inside the graph).
    """
    if len(graph.inputs) != 1:
        raise TfjsConversionError(f"expected one Placeholder, found {sorted(graph.inputs)}")
    if input_layout not in ("NCHW", "NHWC"):
        raise TfjsConversionError(f"input_layout must be NCHW or NHWC, got {input_layout!r}")
    (tf_input, tf_shape), = graph.inputs.items()
    b = _Builder(graph)

    dims: list[int | str] = [batch_dim if d < 0 and i == 0 else (f"d{i}" if d < 0 else d)
                             for i, d in enumerate(tf_shape)]
    if len(dims) == 4:
        if input_layout == "NCHW":
            onnx_dims = [dims[i] for i in NHWC_TO_NCHW]
            b.values[tf_input] = _Value(input_name, True)
        else:
            onnx_dims = dims
            b.values[tf_input] = _Value(b.add("Transpose", [input_name], perm=list(NHWC_TO_NCHW),
                                              name=f"{input_name}/to_nchw"), True)
    else:
        onnx_dims = dims
        b.values[tf_input] = _Value(input_name, False)
    graph_input = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, onnx_dims)

    for name in _needed(graph, list(outputs)):
        node = graph.nodes[name]
        op = node["op"]
        if op in ("Const", "Placeholder"):
            continue
        handler = _HANDLERS.get(op)
        if handler is None:
            raise UnsupportedOpError(op, name)
        ins = [r for r in node.get("input", []) if not r.startswith("^")]
        for r in ins:
            if _split_ref(r)[1] != 0:
                raise TfjsConversionError(f"{name}: input {r!r} uses a secondary output, which is not supported")
        b.values[name] = handler(b, name, node, [_split_ref(r)[0] for r in ins])

    graph_outputs = []
    for tf_name, out_name in outputs.items():
        ref = _split_ref(tf_name)[0]
        src = b.as_tf(ref)              # outputs keep TF's layout, as the TFJS model returns them
        b.add("Identity", [src], outputs=[out_name], name=f"{out_name}/output")
        graph_outputs.append(helper.make_tensor_value_info(out_name, TensorProto.FLOAT, None))

    b.nodes = _merge_clips(b.nodes, b.inits, set(outputs.values()))
    onnx_graph = helper.make_graph(b.nodes, "tfjs_graph", [graph_input], graph_outputs,
                                   initializer=list(b.inits.values()))
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="cafe-stream tfjs_to_onnx", doc_string=doc)
    model.ir_version = 8    # opset 17 era; readable by onnxruntime >= 1.13
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    # Copy the inferred output shapes into the declared outputs, so consumers see [N, D].
    inferred = {vi.name: vi for vi in model.graph.value_info}
    for out in model.graph.output:
        vi = inferred.get(out.name)
        if vi is not None:
            out.type.CopyFrom(vi.type)
    onnx.checker.check_model(model, full_check=True)
    return model


def convert_file(
    model_json: str | Path,
    onnx_path: str | Path,
    *,
    outputs: Mapping[str, str],
    input_name: str = "image",
    input_layout: str = "NCHW",
    doc: str = "",
) -> Path:
    model = convert(load_tfjs_graph(model_json), outputs=outputs, input_name=input_name,
                    input_layout=input_layout, doc=doc)
    onnx_path = Path(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(onnx_path))
    return onnx_path
