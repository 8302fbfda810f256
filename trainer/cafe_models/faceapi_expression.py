"""face-api.js's FaceExpressionNet as an ONNX subgraph, rebuilt from its weights file.

face-api ships this network as a bare TFJS weights manifest (no graph): the architecture lives in its source
(`faceFeatureExtractor/denseBlock.ts`, `FaceFeatureExtractor.ts`, `faceProcessor/FaceProcessor.ts`). It is four
dense blocks of depthwise-separable 3×3 convolutions (32, 64, 128, 256 channels, each halving the resolution:
112 → 7), a 7×7 average pool and one fully connected layer to 7 classes. It was trained on a different mix of
faces than FER2013, and on BUAA-NIR it was the strongest packaged peer (models/MODEL_CARD.md), which is why the
default encoder carries its pooled 256-d feature and logits next to faceres and Human's expression net.

TF's 'same' padding is asymmetric for stride 2 on an even size (0 before, 1 after); ONNX Conv takes the pads
explicitly, so the subgraph reproduces TFJS exactly (checked by Vitest's encoder-parity test against face-api
itself).

Input here: NCHW, already face-api-normalised ((x - mean_rgb) / 255, x in 0..255) at 112×112. The caller
(`face_encoder.build`) makes that from the 224 crop with a 2×2 average.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from onnx import helper, numpy_helper

MANIFEST = "face_expression_model-weights_manifest.json"
SIZE = 112
MEAN_RGB = (122.782, 117.001, 104.298)
CLASSES = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
WIDTHS = (32, 64, 128, 256)
DIM = 256 + 7


class FaceApiWeightsError(ValueError):
    pass


def load_weights(model_dir: Path) -> dict[str, np.ndarray]:
    """The named float32 tensors of the manifest, dequantised as tfjs does (q * scale + min)."""
    manifest_path = Path(model_dir) / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path}: not found (is @vladmandic/face-api installed? npm ci)")
    groups = json.loads(manifest_path.read_text())
    out: dict[str, np.ndarray] = {}
    for group in groups:
        data = b"".join((manifest_path.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            n = int(np.prod(w["shape"])) if w["shape"] else 1
            q = w.get("quantization")
            if q:
                if q["dtype"] != "uint8":
                    raise FaceApiWeightsError(f"{manifest_path}: {w['name']}: unsupported quantization {q['dtype']}")
                raw = np.frombuffer(data, dtype=np.uint8, count=n, offset=offset).astype(np.float32)
                arr = raw * np.float32(q["scale"]) + np.float32(q["min"])
                offset += n
            elif w["dtype"] == "float32":
                arr = np.frombuffer(data, dtype="<f4", count=n, offset=offset).copy()
                offset += 4 * n
            else:
                raise FaceApiWeightsError(f"{manifest_path}: {w['name']}: unsupported dtype {w['dtype']}")
            out[w["name"]] = arr.reshape(w["shape"]).astype(np.float32)
        if offset != len(data):
            raise FaceApiWeightsError(f"{manifest_path}: weights use {offset} bytes, the shards hold {len(data)}")
    expected = {f"dense{b}/conv{c}/bias" for b in range(4) for c in range(4)} | {"fc/weights", "fc/bias"}
    if missing := sorted(expected - out.keys()):
        raise FaceApiWeightsError(f"{manifest_path}: not the FaceExpressionNet weights (missing {missing[0]})")
    return out


def subgraph(weights: dict[str, np.ndarray], x: str, pooled: str, logits: str, prefix: str = "faceapi/"):
    """(nodes, initializers): `x` (N, 3, 112, 112) normalised → `pooled` (N, 256) and `logits` (N, 7)."""
    nodes, inits = [], []

    def init(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), prefix + name))
        return prefix + name

    def node(op: str, inputs: list[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [prefix + out], name=prefix + out, **attrs))
        return prefix + out

    def pads(stride: int) -> list[int]:
        return [0, 0, 1, 1] if stride == 2 else [1, 1, 1, 1]  # TF 'same', 3×3 kernel, even input size

    def separable(inp: str, name: str, stride: int, channels: int) -> str:
        dw = weights[f"{name}/depthwise_filter"]  # [3, 3, C, 1] → [C, 1, 3, 3]
        pw = weights[f"{name}/pointwise_filter"]  # [1, 1, C, O] → [O, C, 1, 1]
        d = node("Conv", [inp, init(f"{name}/dw", dw.transpose(2, 3, 0, 1))], f"{name}/depthwise",
                 group=channels, kernel_shape=[3, 3], strides=[stride, stride], pads=pads(stride))
        return node("Conv", [d, init(f"{name}/pw", pw.transpose(3, 2, 0, 1)), init(f"{name}/b", weights[f"{name}/bias"])],
                    f"{name}/pointwise", kernel_shape=[1, 1])

    h, channels = x, 3
    for b, width in enumerate(WIDTHS):
        name = f"dense{b}"
        if b == 0:
            f = weights[f"{name}/conv0/filters"]  # [3, 3, I, O] → [O, I, 3, 3]
            c0 = node("Conv", [h, init(f"{name}/conv0/w", f.transpose(3, 2, 0, 1)),
                               init(f"{name}/conv0/b", weights[f"{name}/conv0/bias"])],
                      f"{name}/conv0", kernel_shape=[3, 3], strides=[2, 2], pads=pads(2))
        else:
            c0 = separable(h, f"{name}/conv0", 2, channels)
        out1 = node("Relu", [c0], f"{name}/out1")
        out2 = separable(out1, f"{name}/conv1", 1, width)
        s12 = node("Add", [out1, out2], f"{name}/s12")
        out3 = separable(node("Relu", [s12], f"{name}/in3"), f"{name}/conv2", 1, width)
        s123 = node("Add", [s12, out3], f"{name}/s123")
        out4 = separable(node("Relu", [s123], f"{name}/in4"), f"{name}/conv3", 1, width)
        h = node("Relu", [node("Add", [s123, out4], f"{name}/s1234")], f"{name}/out")
        channels = width
    # a 7×7 average pool over the 7×7 map is the global mean
    g = node("GlobalAveragePool", [h], "gap")
    nodes.append(helper.make_node("Flatten", [g], [pooled], axis=1, name=prefix + "flatten"))
    mm = node("MatMul", [pooled, init("fc/w", weights["fc/weights"])], "fc/matmul")
    nodes.append(helper.make_node("Add", [mm, init("fc/b", weights["fc/bias"])], [logits], name=prefix + "fc"))
    return nodes, inits
