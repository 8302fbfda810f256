"""A one-channel input for an encoder that is fed grey: the three identical channels folded into its first layers.

The shipped head asks for grey crops (`encoder.color: gray`), so the pipeline wrote the same plane three times and
every branch's first layer read it three times. Folding is exact arithmetic, not an approximation:
- a convolution (group 1) whose input is the image: conv(W, [g, g, g]) = conv(sum over c of W[:, c], g). Zero
  padding commutes with it too (a padded zero is zero in every channel);
- channel-wise layers on the way (pooling, resizing, Shape) work on one channel as on three;
- an element-wise layer with a per-channel constant ([1, 3, 1, 1], e.g. face-api's mean subtraction) broadcasts
  the one channel back to three, which is the same tensor as before; folding stops there.
Anything else that reads the image (a Slice of channels, a Transpose, a Concat) cannot be folded: FoldError.

The only difference is float rounding of the summed weights (the sum is formed in float64 and stored in float32);
an int8 graph after the folded layers may round a few activations the other way (measured in the manifest).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

CHANNEL_WISE = ("AveragePool", "MaxPool", "Resize", "GlobalAveragePool")
BROADCAST = ("Sub", "Add", "Mul", "Div")


class FoldError(ValueError):
    """The encoder reads its image in a way a one-channel input cannot give."""


@dataclass(frozen=True)
class FoldReport:
    folded: list[str]  # convolutions whose weights were summed over the input channels
    broadcast: list[str]  # element-wise layers that bring back three channels


def _constant(model: onnx.ModelProto, name: str) -> tuple[np.ndarray, onnx.NodeProto | None]:
    """An initializer's value, looking through one Cast (weights stored in float16 and cast at load)."""
    inits = {i.name: i for i in model.graph.initializer}
    if name in inits:
        return numpy_helper.to_array(inits[name]), None
    cast = next((n for n in model.graph.node if name in n.output), None)
    if cast is not None and cast.op_type == "Cast" and cast.input[0] in inits:
        return numpy_helper.to_array(inits[cast.input[0]]), cast
    raise FoldError(f"{name} is not a constant (initializer or cast initializer)")


def fold_grey_input(model: onnx.ModelProto, input_name: str = "image") -> tuple[onnx.ModelProto, FoldReport]:
    """Returns a copy of `model` whose `input_name` is [N, 1, H, W] (NCHW), computing what the original computes
    on three identical channels."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    inp = next((i for i in g.input if i.name == input_name), None)
    if inp is None:
        raise FoldError(f"no graph input named {input_name!r}")
    dims = inp.type.tensor_type.shape.dim
    if len(dims) != 4 or dims[1].dim_value != 3:
        raise FoldError(f"{input_name} must be [N, 3, H, W] (NCHW), got {[d.dim_param or d.dim_value for d in dims]}")
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    folded, broadcast, one_channel = [], [], [input_name]
    drop_casts: list[onnx.NodeProto] = []

    def visit(tensor: str) -> None:
        for n in readers.get(tensor, []):
            if n.op_type == "Shape":
                continue  # the channel count it reports is read only by layers that also see one channel
            if n.op_type in CHANNEL_WISE and n.input[0] == tensor:
                one_channel.append(n.output[0])
                visit(n.output[0])
            elif n.op_type == "Conv" and n.input[0] == tensor:
                group = next((a.i for a in n.attribute if a.name == "group"), 1)
                if group != 1:
                    raise FoldError(f"{n.name}: a grouped convolution reads the image (group {group})")
                w, cast = _constant(m, n.input[1])
                if w.shape[1] != 3:
                    raise FoldError(f"{n.name}: weights {list(w.shape)} do not read three channels")
                name = f"{n.input[1]}/grey_input"
                g.initializer.append(numpy_helper.from_array(
                    w.astype(np.float64).sum(axis=1, keepdims=True).astype(np.float32), name))
                n.input[1] = name
                if cast is not None:
                    drop_casts.append(cast)
                folded.append(n.name)
            elif n.op_type in BROADCAST:
                other = [i for i in n.input if i != tensor]
                value = _constant(m, other[0])[0] if len(other) == 1 else None
                if value is None or value.size != 3 or value.ndim < 3 or value.shape[-3] != 3:
                    raise FoldError(f"{n.name} ({n.op_type}) reads the image with something other than a per-channel constant")
                broadcast.append(n.name)
            else:
                raise FoldError(f"{n.name} ({n.op_type}) reads the image's channels: a one-channel input cannot fold it")

    visit(input_name)
    if not folded:
        raise FoldError("no convolution reads the image: nothing to fold")
    dims[1].dim_value = 1
    # stale shapes of the tensors that now have one channel: onnxruntime would warn and merge leniently
    keep = [v for v in g.value_info if v.name not in one_channel]
    del g.value_info[:]
    g.value_info.extend(keep)
    # weights that were cast from float16 and are read by nothing now
    for cast in drop_casts:
        if not any(cast.output[0] in n.input for n in g.node if n is not cast):
            g.node.remove(cast)
    used = {i for n in g.node for i in n.input}
    unused = [i for i in g.initializer if i.name not in used]
    for i in unused:
        g.initializer.remove(i)
    onnx.checker.check_model(m)
    return m, FoldReport(folded, broadcast)
