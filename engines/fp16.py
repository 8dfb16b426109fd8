"""FP16 ONNX from the shipped FP32 graph: the portable way to get an FP16 TensorRT engine.

TensorRT 11 and TensorRT-RTX build *strongly typed* networks only (the FP16 builder flag is
gone), so precision has to be in the ONNX itself. :func:`to_fp16` converts every float
initializer and ``Constant`` to float16, makes every ``Cast(to=FLOAT)`` a cast to FLOAT16,
and keeps the graph's inputs and outputs float32 (a cast after each float input and before
each float output), so callers and the engine's IO bindings do not change. Shape inference
re-derives the intermediate types.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["to_fp16"]

FP16_MAX = 65504.0


def _half(tensor: TensorProto) -> TensorProto:
    array = numpy_helper.to_array(tensor)
    if array.dtype != np.float32:
        return tensor
    clipped = np.clip(array, -FP16_MAX, FP16_MAX).astype(np.float16)
    return numpy_helper.from_array(clipped, tensor.name)


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """A float16 copy of ``model`` with float32 inputs and outputs."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    for i, init in enumerate(g.initializer):
        g.initializer[i].CopyFrom(_half(init))
    for node in g.node:
        for attr in node.attribute:
            if node.op_type == "Constant" and attr.name == "value":
                attr.t.CopyFrom(_half(attr.t))
            if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
    float_inputs = [i for i in g.input if i.type.tensor_type.elem_type == TensorProto.FLOAT]
    float_outputs = [o for o in g.output if o.type.tensor_type.elem_type == TensorProto.FLOAT]
    renamed_in = {i.name: f"{i.name}__fp16" for i in float_inputs}
    renamed_out = {o.name: f"{o.name}__fp16" for o in float_outputs}
    for node in g.node:
        for k, name in enumerate(node.input):
            if name in renamed_in:
                node.input[k] = renamed_in[name]
            elif name in renamed_out:  # an output also used inside the graph
                node.input[k] = renamed_out[name]
        for k, name in enumerate(node.output):
            if name in renamed_out:
                node.output[k] = renamed_out[name]
    casts_in = [
        helper.make_node("Cast", [n], [h], to=TensorProto.FLOAT16, name=f"{n}_to_fp16")
        for n, h in renamed_in.items()
    ]
    casts_out = [
        helper.make_node("Cast", [h], [n], to=TensorProto.FLOAT, name=f"{n}_to_fp32")
        for n, h in renamed_out.items()
    ]
    nodes = casts_in + list(g.node) + casts_out
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]
    return onnx.shape_inference.infer_shapes(out, strict_mode=True)
