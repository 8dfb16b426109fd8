"""The shipped ONNX graphs, executed with torch ops: one source of truth for the weights.

:class:`OnnxTorchGraph` reads an ONNX file once (initializers become device tensors in
the compute dtype) and *specialises* it per input shape: a pass over the nodes with real
inputs computes every value that depends only on shapes and constants (``Shape`` → ``Gather``
→ ``Concat`` → ``Reshape`` targets, ``Range`` positions, …) on the host, once, and records
the remaining tensor ops as a flat program of closures. Replaying that program issues only
device kernels — no host round trip, no ``.item()`` — so it can be captured in a CUDA graph.

Only the operators the shipped models use are implemented (opset 17 as exported by
``engines.export``); an unknown operator fails at load time with its name, never silently.
In FP16 mode float initializers and ``Cast(to=FLOAT)`` use half precision and every float
output is returned as float32.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import torch
from onnx import numpy_helper

__all__ = ["OnnxTorchGraph", "Program", "dynamic_axes"]

Value = torch.Tensor
Step = Callable[[list[Any]], None]

INT64_MAX = 2**63 - 1
ONNX_DTYPES: dict[int, torch.dtype] = {
    onnx.TensorProto.FLOAT: torch.float32,
    onnx.TensorProto.FLOAT16: torch.float16,
    onnx.TensorProto.DOUBLE: torch.float64,
    onnx.TensorProto.INT64: torch.int64,
    onnx.TensorProto.INT32: torch.int32,
    onnx.TensorProto.BOOL: torch.bool,
    onnx.TensorProto.INT8: torch.int8,
    onnx.TensorProto.UINT8: torch.uint8,
}
# Inputs that carry shapes, axes or bounds: read on the host while specialising.
HOST_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,),
    "Unsqueeze": (1,),
    "Squeeze": (1,),
    "Split": (1,),
    "Slice": (1, 2, 3, 4),
    "ReduceSum": (1,),
    "Clip": (1, 2),
    "Expand": (1,),
}


def dynamic_axes(path: Path) -> dict[str, dict[str, dict[int, str]]]:
    """{"inputs"|"outputs": {tensor: {axis: dim_param}}} for the named (dynamic) axes."""
    model = onnx.load(str(path), load_external_data=False)
    out: dict[str, dict[str, dict[int, str]]] = {"inputs": {}, "outputs": {}}
    for kind, values in (("inputs", model.graph.input), ("outputs", model.graph.output)):
        for v in values:
            dims = v.type.tensor_type.shape.dim
            out[kind][v.name] = {i: d.dim_param for i, d in enumerate(dims) if d.dim_param}
    return out


@dataclass(frozen=True, slots=True)
class _Node:
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict[str, Any]


@dataclass(slots=True)
class Program:
    """One shape-specialised run: ``steps`` read and write ``slots``; inputs first."""

    input_slots: tuple[int, ...]
    output_slots: tuple[int, ...]
    steps: list[Step]
    n_slots: int
    constants: dict[int, Value]

    def run(self, inputs: Sequence[Value]) -> list[Value]:
        slots: list[Any] = [None] * self.n_slots
        for slot, value in self.constants.items():
            slots[slot] = value
        for slot, value in zip(self.input_slots, inputs, strict=True):
            slots[slot] = value
        for step in self.steps:
            step(slots)
        return [slots[s] for s in self.output_slots]


class OnnxTorchGraph:
    """An ONNX graph on a torch device; :meth:`specialise` gives a replayable program."""

    def __init__(self, path: Path, device: torch.device, dtype: torch.dtype) -> None:
        model = onnx.load(str(path))
        self.path = path
        self.device = device
        self.dtype = dtype  # compute dtype for floats: float32 or float16
        g = model.graph
        self.input_names = tuple(i.name for i in g.input)
        # Static input shapes (a named, dynamic axis reads 1) and dtypes, for buffer sizing.
        self.input_shapes: dict[str, tuple[int, ...]] = {
            i.name: tuple(d.dim_value or 1 for d in i.type.tensor_type.shape.dim) for i in g.input
        }
        self.input_dtypes: dict[str, torch.dtype] = {
            i.name: ONNX_DTYPES[i.type.tensor_type.elem_type] for i in g.input
        }
        self.output_names = tuple(o.name for o in g.output)
        self.nodes: list[_Node] = []
        self.weights: dict[str, Value] = {}
        self.host_constants: dict[str, torch.Tensor] = {}
        for init in g.initializer:
            self.weights[init.name] = self._to_device(
                torch.from_numpy(numpy_helper.to_array(init).copy())
            )
        for node in g.node:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type == "Constant":
                self.host_constants[node.output[0]] = torch.from_numpy(
                    numpy_helper.to_array(attrs["value"]).copy()
                )
                continue
            if node.op_type not in OPS:
                raise NotImplementedError(
                    f"{path.name}: ONNX operator {node.op_type} not supported"
                )
            self.nodes.append(_Node(node.op_type, tuple(node.input), tuple(node.output), attrs))
        self.parameters = sum(w.numel() for w in self.weights.values())

    def _to_device(self, t: torch.Tensor) -> Value:
        if t.is_floating_point():
            t = t.to(self.dtype)
        return t.to(self.device)

    def specialise(self, inputs: Sequence[Value]) -> tuple[Program, list[Value]]:
        """Specialise for these inputs' shapes (running them once); returns program, outputs."""
        slot_of: dict[str, int] = {}
        values: list[Any] = []
        constants: dict[int, Value] = {}

        def slot(name: str) -> int:
            if name not in slot_of:
                slot_of[name] = len(values)
                values.append(None)
            return slot_of[name]

        host: dict[str, torch.Tensor] = dict(self.host_constants)  # shape-only values (CPU)
        steps: list[Step] = []
        for name, value in zip(self.input_names, inputs, strict=True):
            values[slot(name)] = value
            if value.is_floating_point() and value.dtype != self.dtype:  # FP32 feed, FP16 run
                steps.append(_make_step(_cast_to(self.dtype), [slot(name)], [slot(name)], {}, self))
                steps[-1](values)
        for name, w in self.weights.items():
            values[slot(name)] = w
            constants[slot_of[name]] = w
        for node in self.nodes:
            fn = OPS[node.op]
            on_host = all(not n or n in host for n in node.inputs)
            if on_host:  # every input is a shape-derived constant: fold it now, on the CPU
                args = [host[n] if n else None for n in node.inputs]
                outs = fn(args, node.attrs, self, True)
                for name, out in zip(node.outputs, outs, strict=False):
                    host[name] = out
                continue
            if node.op == "Shape":
                shape = values[slot_of[node.inputs[0]]].shape
                start, end = node.attrs.get("start", 0), node.attrs.get("end", len(shape))
                host[node.outputs[0]] = torch.tensor(list(shape)[start:end], dtype=torch.int64)
                continue
            host_idx = HOST_INPUTS.get(node.op, ())
            bound: list[Any] = []
            for i, name in enumerate(node.inputs):
                if not name:
                    bound.append(None)
                elif name in host:
                    h = host[name]
                    bound.append(h if i in host_idx else self._to_device(h))
                else:
                    bound.append(slot(name))
            step = _make_step(fn, bound, [slot(o) for o in node.outputs], node.attrs, self)
            step(values)
            steps.append(step)
        for name in self.output_names:
            if name in host:  # an output that depends on shapes only: keep it on the device
                values[slot(name)] = self._to_device(host[name])
                constants[slot_of[name]] = values[slot_of[name]]
        program = Program(
            input_slots=tuple(slot_of[n] for n in self.input_names),
            output_slots=tuple(slot_of[n] for n in self.output_names),
            steps=steps,
            n_slots=len(values),
            constants=constants,
        )
        return program, [values[slot_of[n]] for n in self.output_names]


def _make_step(fn: Any, bound: list[Any], outs: list[int], attrs: dict[str, Any], g: Any) -> Step:
    def step(slots: list[Any]) -> None:
        args = [slots[b] if isinstance(b, int) else b for b in bound]
        for o, value in zip(outs, fn(args, attrs, g, False), strict=False):
            slots[o] = value

    return step


# ---------------------------------------------------------------- operators
# Each takes (args, attrs, graph, on_host) and returns the outputs as a list.


def _ints(t: torch.Tensor | None) -> list[int]:
    return [] if t is None else [int(v) for v in t.reshape(-1).tolist()]


def _float_dtype(g: OnnxTorchGraph, on_host: bool) -> torch.dtype:
    return torch.float32 if on_host else g.dtype


def _binary(op: Callable[[Value, Value], Value]) -> Any:
    return lambda a, _at, _g, _h: [op(a[0], a[1])]


def _div(a: list[Value], _at: Any, _g: Any, _h: bool) -> list[Value]:
    x, y = a
    if x.is_floating_point() or y.is_floating_point():
        return [x / y]
    return [torch.div(x, y, rounding_mode="trunc")]


def _cast(a: list[Value], at: dict[str, Any], g: OnnxTorchGraph, h: bool) -> list[Value]:
    to = ONNX_DTYPES[at["to"]]
    if to == torch.float32:
        to = _float_dtype(g, h)
    return [a[0].to(to)]


def _cast_to(dtype: torch.dtype) -> Any:
    return lambda a, _at, _g, _h: [a[0].to(dtype)]


def _gather(a: list[Value], at: dict[str, Any], _g: Any, _h: bool) -> list[Value]:
    data, idx = a
    axis = at.get("axis", 0) % data.dim()
    idx = torch.where(idx < 0, idx + data.shape[axis], idx)
    flat = torch.index_select(data, axis, idx.reshape(-1))
    shape = (*data.shape[:axis], *idx.shape, *data.shape[axis + 1 :])
    return [flat.reshape(shape)]


def _unsqueeze(a: list[Any], _at: Any, _g: Any, _h: bool) -> list[Value]:
    x = a[0]
    axes = sorted(ax % (x.dim() + len(_ints(a[1]))) for ax in _ints(a[1]))
    for ax in axes:
        x = x.unsqueeze(ax)
    return [x]


def _squeeze(a: list[Any], _at: Any, _g: Any, _h: bool) -> list[Value]:
    x = a[0]
    if len(a) < 2 or a[1] is None:
        return [x.squeeze()]
    for ax in sorted((ax % x.dim() for ax in _ints(a[1])), reverse=True):
        x = x.squeeze(ax)
    return [x]


def _reshape(a: list[Any], at: dict[str, Any], _g: Any, _h: bool) -> list[Value]:
    x, shape = a[0], _ints(a[1])
    if not at.get("allowzero", 0):
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return [x.reshape(shape)]


def _slice(a: list[Any], _at: Any, _g: Any, _h: bool) -> list[Value]:
    x = a[0]
    starts, ends = _ints(a[1]), _ints(a[2])
    axes = _ints(a[3]) if len(a) > 3 and a[3] is not None else list(range(len(starts)))
    steps = _ints(a[4]) if len(a) > 4 and a[4] is not None else [1] * len(starts)
    index: list[slice] = [slice(None)] * x.dim()
    for s, e, ax, st in zip(starts, ends, axes, steps, strict=True):
        if st != 1:
            raise NotImplementedError("Slice with a step other than 1")
        n = x.shape[ax]
        e = n if e >= INT64_MAX // 2 else e
        index[ax % x.dim()] = slice(s, e)
    return [x[tuple(index)]]


def _split(a: list[Any], at: dict[str, Any], _g: Any, _h: bool) -> list[Value]:
    x, axis = a[0], at.get("axis", 0)
    sizes = _ints(a[1]) if len(a) > 1 and a[1] is not None else list(at.get("split", []))
    if not sizes:
        n = at.get("num_outputs", 1)
        sizes = [x.shape[axis] // n] * n
    return list(torch.split(x, sizes, dim=axis))


def _concat(a: list[Value], at: dict[str, Any], _g: Any, _h: bool) -> list[Value]:
    return [torch.cat(a, dim=at["axis"])]


def _reduce(fn: str) -> Any:
    def op(a: list[Any], at: dict[str, Any], _g: Any, _h: bool) -> list[Value]:
        x = a[0]
        axes = _ints(a[1]) if len(a) > 1 and a[1] is not None else list(at.get("axes", []))
        dims = tuple(axes) if axes else tuple(range(x.dim()))
        keep = bool(at.get("keepdims", 1))
        if fn == "sum":
            return [x.sum(dim=dims, keepdim=keep)]
        if fn == "mean":
            return [x.mean(dim=dims, keepdim=keep)]
        return [x.amax(dim=dims, keepdim=keep)]

    return op


def _clip(a: list[Any], _at: Any, _g: Any, _h: bool) -> list[Value]:
    lo = float(a[1]) if len(a) > 1 and a[1] is not None else None
    hi = float(a[2]) if len(a) > 2 and a[2] is not None else None
    return [torch.clamp(a[0], min=lo, max=hi)]


def _gemm(a: list[Value], at: dict[str, Any], _g: Any, _h: bool) -> list[Value]:
    x, w = a[0], a[1]
    if at.get("transA", 0):
        x = x.T
    if at.get("transB", 0):
        w = w.T
    y = (x @ w) * at.get("alpha", 1.0)
    if len(a) > 2 and a[2] is not None:
        y = y + a[2] * at.get("beta", 1.0)
    return [y]


def _layer_norm(a: list[Value], at: dict[str, Any], _g: Any, _h: bool) -> list[Value]:
    x, w = a[0], a[1]
    b = a[2] if len(a) > 2 else None
    axis = at.get("axis", -1) % x.dim()
    shape = tuple(x.shape[axis:])
    return [torch.nn.functional.layer_norm(x, shape, w, b, at.get("epsilon", 1e-5))]


def _range(a: list[Value], _at: Any, _g: Any, _h: bool) -> list[Value]:
    start, limit, delta = (v.reshape(()) for v in a)
    return [torch.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype)]


def _transpose(a: list[Value], at: dict[str, Any], _g: Any, _h: bool) -> list[Value]:
    perm = at.get("perm") or list(reversed(range(a[0].dim())))
    return [a[0].permute(*perm)]


OPS: dict[str, Any] = {
    "Add": _binary(torch.add),
    "Sub": _binary(torch.sub),
    "Mul": _binary(torch.mul),
    "Div": _div,
    "MatMul": _binary(torch.matmul),
    "Equal": _binary(torch.eq),
    "Or": _binary(torch.logical_or),
    "Not": lambda a, _at, _g, _h: [torch.logical_not(a[0])],
    "Where": lambda a, _at, _g, _h: [torch.where(a[0], a[1], a[2])],
    "Sqrt": lambda a, _at, _g, _h: [torch.sqrt(a[0])],
    "Erf": lambda a, _at, _g, _h: [torch.erf(a[0])],
    "Sigmoid": lambda a, _at, _g, _h: [torch.sigmoid(a[0])],
    "Softmax": lambda a, at, _g, _h: [torch.softmax(a[0], dim=at.get("axis", -1))],
    "Identity": lambda a, _at, _g, _h: [a[0]],
    "Cast": _cast,
    "Gather": _gather,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Reshape": _reshape,
    "Slice": _slice,
    "Split": _split,
    "Concat": _concat,
    "Transpose": _transpose,
    "ReduceSum": _reduce("sum"),
    "ReduceMean": _reduce("mean"),
    "ReduceMax": _reduce("max"),
    "Clip": _clip,
    "Gemm": _gemm,
    "LayerNormalization": _layer_norm,
    "Range": _range,
    "Shape": lambda a, at, _g, _h: [
        torch.tensor(list(a[0].shape)[at.get("start", 0) : at.get("end", a[0].dim())])
    ],
}
