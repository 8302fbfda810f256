"""int8 encoder for CPU: static QDQ quantisation of the costly branch, calibrated on FER+ Train crops.

What is quantised, and why (measured in models/MODEL_CARD.md, "int8 encoder"):
- Only the `faceres` branch (MobileNet v1 at 224 px, ~90 % of the encoder's arithmetic). Human's and
  face-api's expression networks are small; quantising them gave no speed and cost agreement.
- Weights int8 per output channel, activations uint8 per tensor (u8s8, what onnxruntime's VNNI/AVX2 kernels
  run), ranges from MinMax over the calibration crops. ReLU6 bounds every activation, so the calibration
  method barely matters (MinMax, entropy and percentile gave the same agreement).
- Optionally, weights in 7 bits (`reduce_range`): on an x86 CPU without VNNI (AVX2 only, as on the project's
  2-core machines) onnxruntime's u8s8 kernels multiply pairs with VPMADDUBSW, whose 16-bit sums saturate with
  full 8-bit weights, and the fused graph drifts from what the QDQ graph means. With the shipped six float
  convolutions this barely shows (feature MSE 3.5e-4 fused, 3.2e-4 unfused); quantising the 112-px layers
  too, it does (two float convolutions: 1.2e-2 fused against 9e-4 unfused; with 7-bit weights 2.7e-3 both).
  The shipped copy uses neither option (models/MODEL_CARD.md says what they gave).
- The first convolutions stay float: the 112-px layers are where the rounding of the input's fine texture
  costs most (feature error halves), and they are cheap next to the rest.
- A per-feature affine correction `a * f + b`, fitted by least squares between the float and the int8
  features on a second, disjoint sample of FER+ Train, removes the systematic part of the rounding error
  (bias correction, as in Nagel et al. 2019, applied once at the output instead of per layer).
- Optionally (`bias_correction`), the per-layer form too: layer by layer in graph order, each int8
  convolution's bias takes the mean per-channel difference between the float layer's output and its own
  (empirical bias correction, Nagel et al. 2019, sec. 4.2), so a layer's systematic error does not feed the next.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .onnx_fp16 import load_fp32, store_fp16

QUANTIZED_BRANCHES = ("faceres",)
FLOAT_CONVS = 6  # conv1, dw_1, pw_1, dw_2, pw_2, dw_3: the 112-px layers and the first 56-px one
ACTIVATIONS = ("Clip", "Relu", "PRelu", "LeakyRelu")


class QuantizeError(ValueError):
    """The encoder cannot be quantised as asked (no node of the branch, bad sample)."""


@dataclass(frozen=True)
class QuantizePlan:
    quantize: list[str]  # node names to quantise
    kept_float: list[str]  # nodes of the quantised branches left in float


def _pointwise(weights: dict[str, onnx.TensorProto], conv: onnx.NodeProto) -> bool:
    """A 1x1 convolution over all channels (group 1): the costly kind of the first layers."""
    w = weights.get(conv.input[1]) if len(conv.input) > 1 else None
    group = next((a.i for a in conv.attribute if a.name == "group"), 1)
    return w is not None and list(w.dims[2:]) == [1, 1] and group == 1


def plan_nodes(model: onnx.ModelProto, branches: Sequence[str] = QUANTIZED_BRANCHES,
               float_convs: int = FLOAT_CONVS, float_pointwise: bool = True) -> QuantizePlan:
    """Nodes named `<branch>/...` are quantised, except each branch's first `float_convs` convolutions and the
    activations that read them (a Conv and its ReLU are fused; splitting them would put a round trip between).
    `float_pointwise=False` quantises the 1x1 convolutions among those first ones too (only the spatial ones
    stay float)."""
    nodes = list(model.graph.node)
    quantize, kept = [], []
    for branch in branches:
        own = [n for n in nodes if n.name.split("/")[0] == branch]
        if not own:
            raise QuantizeError(f"no node of branch {branch!r} in the encoder (node names start with the branch)")
        convs = [n for n in own if n.op_type == "Conv"][:float_convs]
        if not float_pointwise:
            weights = {i.name: i for i in model.graph.initializer}
            convs = [n for n in convs if not _pointwise(weights, n)]
        outputs = {o for n in convs for o in n.output}
        float_set = {n.name for n in convs} | {n.name for n in own if n.op_type in ACTIVATIONS and n.input[0] in outputs}
        quantize += [n.name for n in own if n.name not in float_set]
        kept += [n.name for n in own if n.name in float_set]
    return QuantizePlan(quantize, kept)


def fit_affine(float_feats: np.ndarray, int8_feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per feature, the least-squares `a, b` with float ≈ a * int8 + b. A feature that does not vary in the
    sample keeps a = 1 and only its mean shift."""
    if float_feats.shape != int8_feats.shape or float_feats.ndim != 2 or len(float_feats) < 2:
        raise QuantizeError(f"correction needs two (N, D) feature arrays with N ≥ 2, got {float_feats.shape} and {int8_feats.shape}")
    mq, mf = int8_feats.mean(0), float_feats.mean(0)
    var = ((int8_feats - mq) ** 2).mean(0)
    cov = ((int8_feats - mq) * (float_feats - mf)).mean(0)
    flat = var < 1e-12
    a = np.where(flat, 1.0, cov / np.where(flat, 1.0, var))
    b = mf - a * mq
    return a.astype(np.float32), b.astype(np.float32)


def append_affine(model: onnx.ModelProto, output: str, a: np.ndarray, b: np.ndarray) -> onnx.ModelProto:
    """`output` becomes `a * output + b` (broadcast over the batch), under the same name."""
    g = model.graph
    raw = output + "/int8"
    for node in g.node:
        node.output[:] = [raw if o == output else o for o in node.output]
        node.input[:] = [raw if i == output else i for i in node.input]
    g.initializer.extend([numpy_helper.from_array(a, "int8_correction/scale"),
                          numpy_helper.from_array(b, "int8_correction/shift")])
    g.node.extend([
        helper.make_node("Mul", [raw, "int8_correction/scale"], [output + "/scaled"], name="int8_correction/mul"),
        helper.make_node("Add", [output + "/scaled", "int8_correction/shift"], [output], name="int8_correction/add"),
    ])
    return model


def quantized_convs(model: onnx.ModelProto) -> list[tuple[onnx.NodeProto, str, str | None]]:
    """The int8 convolutions of a QDQ graph, in graph order: (node, its bias initializer, the bias's dequantise
    scale, or None for a float bias). A convolution whose weights are not dequantised is a float one."""
    inits = {i.name for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    out = []
    for n in model.graph.node:
        if n.op_type != "Conv" or len(n.input) < 3:
            continue
        w = producer.get(n.input[1])
        if w is None or w.op_type != "DequantizeLinear":
            continue
        b = producer.get(n.input[2])
        if b is not None and b.op_type == "DequantizeLinear" and b.input[0] in inits:
            out.append((n, b.input[0], b.input[1]))
        elif n.input[2] in inits:
            out.append((n, n.input[2], None))
    return out


def _with_outputs(model: onnx.ModelProto, names: Sequence[str]) -> bytes:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    m.graph.output.extend([onnx.ValueInfoProto(name=n) for n in names if n not in have])
    return m.SerializeToString()


def _channel_means(session, names: Sequence[str], input_name: str, batches: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per output, the mean over images and positions of each channel (axis 1)."""
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for x in batches:
        for n, o in zip(names, session.run(list(names), {input_name: x})):
            axes = tuple(i for i in range(o.ndim) if i != 1)
            sums[n] = sums.get(n, 0) + o.astype(np.float64).sum(axis=axes)
            counts[n] = counts.get(n, 0) + o.size // o.shape[1]
    return {n: sums[n] / counts[n] for n in names}


def activation_pairs(float_model: onnx.ModelProto, qdq: onnx.ModelProto) -> list[tuple[str, str, str]]:
    """Per int8 convolution of `qdq` (graph order): its name, and the tensors the next layer reads in the float
    graph (the convolution's activation, else its output) and in the int8 graph (the DequantizeLinear after its
    output's quantisation, else its output).

    Matched by node name, not tensor name: the quantiser drops a ReLU6 after a convolution (the output's
    quantisation range clips instead), and the int8 convolution then writes the tensor the ReLU6 wrote."""
    f_nodes = {n.name: n for n in float_model.graph.node}
    readers: dict[int, dict[str, list[onnx.NodeProto]]] = {}
    for key, model in ((0, float_model), (1, qdq)):
        readers[key] = {}
        for n in model.graph.node:
            for i in n.input:
                readers[key].setdefault(i, []).append(n)
    pairs = []
    for conv, _, _ in quantized_convs(qdq):
        if conv.name not in f_nodes:
            raise QuantizeError(f"bias correction: no float convolution named {conv.name!r}")
        f_out = f_nodes[conv.name].output[0]
        act = [r for r in readers[0].get(f_out, []) if r.op_type in ACTIVATIONS]
        q = [r for r in readers[1].get(conv.output[0], []) if r.op_type == "QuantizeLinear"]
        dq = [r for r in readers[1].get(q[0].output[0], []) if r.op_type == "DequantizeLinear"] if len(q) == 1 else []
        pairs.append((conv.name, act[0].output[0] if len(act) == 1 else f_out, dq[0].output[0] if dq else conv.output[0]))
    return pairs


def correct_biases(float_model: onnx.ModelProto, qdq: onnx.ModelProto, input_name: str,
                   batches: list[np.ndarray], threads: int = 2) -> tuple[onnx.ModelProto, list[dict]]:
    """Empirical bias correction, layer by layer: each int8 convolution's bias moves by the mean per-channel
    difference between what the next layer reads in the float graph and in the int8 graph (activation_pairs),
    measured with the earlier layers already corrected. Compared after the activation: a channel's values beyond
    ReLU6's bounds are cut off in both graphs, so a pre-activation mean that differs there would move the bias
    where nothing needs moving. Returns the corrected graph and, per layer, the largest shift."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    # unfused, the int8 graph computes each convolution in float from its dequantised input and weights: the
    # fused kernel's value before requantisation
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    targets = quantized_convs(qdq)
    if not targets:
        raise QuantizeError("bias correction: no int8 convolution with a bias in the graph")
    pairs = activation_pairs(float_model, qdq)
    names = [f for _, f, _ in pairs]
    fsess = ort.InferenceSession(_with_outputs(float_model, names), so, providers=["CPUExecutionProvider"])
    means = _channel_means(fsess, names, input_name, batches)
    want = {conv: means[f] for conv, f, _ in pairs}
    seen = {conv: q for conv, _, q in pairs}
    inits = {i.name: i for i in qdq.graph.initializer}
    report = []
    for node, bias_name, scale_name in targets:
        name = seen[node.name]
        qsess = ort.InferenceSession(_with_outputs(qdq, [name]), so, providers=["CPUExecutionProvider"])
        delta = want[node.name] - _channel_means(qsess, [name], input_name, batches)[name]
        bias = numpy_helper.to_array(inits[bias_name])
        if scale_name is None:
            new = (bias + delta).astype(bias.dtype)
        else:
            scale = numpy_helper.to_array(inits[scale_name]).astype(np.float64)
            new = np.clip(np.rint(bias.astype(np.float64) + delta / scale), -(2 ** 31), 2 ** 31 - 1).astype(bias.dtype)
        inits[bias_name].CopyFrom(numpy_helper.from_array(new, bias_name))
        report.append({"conv": node.name, "max_abs_shift": float(np.abs(delta).max())})
    return qdq, report


def quantization_params(model: onnx.ModelProto) -> set[str]:
    """Initializers read by Quantize/DequantizeLinear (scales, zero points): they stay float32, since
    onnxruntime fuses Q/DQ pairs only around constant initializers, not around a Cast."""
    return {i for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") for i in n.input}


class _Batches:
    """onnxruntime's CalibrationDataReader protocol over preprocessed batches."""

    def __init__(self, input_name: str, batches: list[np.ndarray]):
        self.input_name, self.batches, self.i = input_name, batches, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i >= len(self.batches):
            return None
        self.i += 1
        return {self.input_name: self.batches[self.i - 1]}

    def rewind(self) -> None:
        self.i = 0


def quantize_encoder(float_path: Path, out_path: Path, input_name: str, calibration: list[np.ndarray],
                     correction: list[np.ndarray], run_float, run_int8_factory, *,
                     branches: Sequence[str] = QUANTIZED_BRANCHES, float_convs: int = FLOAT_CONVS,
                     float_pointwise: bool = True, output_name: str = "features",
                     bias_correction: bool = False, reduce_range: bool = False) -> dict:
    """Writes the int8 encoder to `out_path` and returns what was done (for the manifest).

    `calibration` and `correction` are lists of preprocessed input batches (disjoint images); `run_float(x)`
    gives the float encoder's features, `run_int8_factory(path)` a function that runs an ONNX file.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration or not correction:
        raise QuantizeError("calibration and correction samples must not be empty")
    with tempfile.TemporaryDirectory() as tmp:
        wide, prepared, quantized = (Path(tmp) / n for n in ("fp32.onnx", "prep.onnx", "q.onnx"))
        onnx.save(load_fp32(onnx.load(str(float_path))), str(wide))
        # planned on the prepared graph: its optimiser folds each bias Add into its Conv, so a Conv's
        # activation reads the Conv directly there
        quant_pre_process(str(wide), str(prepared), skip_symbolic_shape=True)
        plan = plan_nodes(onnx.load(str(prepared)), branches, float_convs, float_pointwise)
        quantize_static(str(prepared), str(quantized), _Batches(input_name, calibration),
                        quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=reduce_range,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_quantize=plan.quantize, calibrate_method=CalibrationMethod.MinMax)
        layers = None
        if bias_correction:
            corrected, layers = correct_biases(onnx.load(str(prepared)), onnx.load(str(quantized)), input_name,
                                               calibration)
            onnx.save(corrected, str(quantized))
        run_int8 = run_int8_factory(quantized)
        f = np.concatenate([run_float(x) for x in correction])
        q = np.concatenate([run_int8(x) for x in correction])
        a, b = fit_affine(f, q)
        err_before = float(((f - q) ** 2).mean())
        err_after = float(((f - (a * q + b)) ** 2).mean())
        qmodel = append_affine(onnx.load(str(quantized)), output_name, a, b)
        keep = quantization_params(qmodel) | {"int8_correction/scale", "int8_correction/shift"}
        qmodel = store_fp16(qmodel, keep)
        onnx.checker.check_model(qmodel)
        onnx.save(qmodel, str(out_path))
    n_q = sum(1 for n in qmodel.graph.node if n.op_type == "QuantizeLinear")
    if n_q == 0:
        raise QuantizeError(f"{out_path}: no QuantizeLinear node was written (nothing quantised)")
    return {
        "method": "onnxruntime quantize_static, QDQ, weights int8 per channel"
                  + (" in 7 bits (reduce_range)" if reduce_range else "") + ", activations uint8 (MinMax)",
        "reduce_range": reduce_range,
        "branches": list(branches),
        "float_convs_per_branch": float_convs,
        "float_pointwise": float_pointwise,
        "nodes_quantized": len(plan.quantize),
        "nodes_kept_float": plan.kept_float,
        "correction": "per-feature a * f + b, least squares against the float encoder",
        "correction_mse": {"before": err_before, "after": err_after},
        **({"bias_correction": {"layers": len(layers), "max_abs_shift": max(x["max_abs_shift"] for x in layers)}}
           if layers else {}),
    }
