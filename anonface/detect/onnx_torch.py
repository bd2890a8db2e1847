"""A PyTorch module that runs a small convolutional ONNX graph with the graph's own weights.

CenterFace's graph uses only Conv, BatchNormalization, Relu, Add, ConvTranspose and Sigmoid, so
a tiny interpreter over those node types reproduces it exactly (to float rounding) and runs it
batched on any torch device. The ``onnx`` package reads the graph and its initializers; nothing
is downloaded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["OnnxConvNet"]

_SUPPORTED = {"Conv", "BatchNormalization", "Relu", "Add", "ConvTranspose", "Sigmoid"}


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _torch_pads(pads: list[int]) -> tuple[int, int]:
    # ONNX pads are (top, left, bottom, right); torch's conv takes symmetric ones.
    if len(pads) != 4 or pads[0] != pads[2] or pads[1] != pads[3]:
        raise ValueError(f"asymmetric padding {pads} is not supported")
    return pads[0], pads[1]


class OnnxConvNet(nn.Module):
    """Runs a Conv/BN/ReLU/Add/ConvTranspose/Sigmoid ONNX graph.

    Args:
        path: path of the ``.onnx`` file.
        outputs: names of the graph values to return, in this order (default: the graph outputs).

    Forward:
        ``x (Tensor[B, C, H, W])`` float -> tuple of the requested outputs.
    """

    def __init__(self, path: str, outputs: list[str] | None = None) -> None:
        super().__init__()
        import onnx
        from onnx import numpy_helper

        model = onnx.load(path)
        graph = model.graph
        init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.input_name = next(i.name for i in graph.input if i.name not in init)
        self.output_names = list(outputs) if outputs else [o.name for o in graph.output]
        self.params = nn.ParameterDict()
        self._steps: list[tuple[str, list[str], str, dict[str, Any]]] = []

        def param(name: str) -> str:
            key = f"p{len(self.params)}"
            self.params[key] = nn.Parameter(
                torch.from_numpy(np.ascontiguousarray(init[name]).astype(np.float32)),
                requires_grad=False,
            )
            return key

        for node in graph.node:
            if node.op_type not in _SUPPORTED:
                raise ValueError(f"ONNX node type {node.op_type!r} is not supported by OnnxConvNet")
            a = _attrs(node)
            ins = [n for n in node.input if n]
            if node.op_type in ("Conv", "ConvTranspose"):
                if a.get("dilations", [1, 1]) != [1, 1]:
                    raise ValueError("dilated convolutions are not supported")
                if any(a.get("output_padding", [0, 0])):
                    raise ValueError("output_padding is not supported")
                cfg = {
                    "w": param(ins[1]),
                    "b": param(ins[2]) if len(ins) > 2 else None,
                    "stride": tuple(a.get("strides", [1, 1])),
                    "padding": _torch_pads(a.get("pads", [0, 0, 0, 0])),
                    "groups": int(a.get("group", 1)),
                }
                self._steps.append((node.op_type, ins[:1], node.output[0], cfg))
            elif node.op_type == "BatchNormalization":
                cfg = {
                    "w": param(ins[1]),
                    "b": param(ins[2]),
                    "mean": param(ins[3]),
                    "var": param(ins[4]),
                    "eps": float(a.get("epsilon", 1e-5)),
                }
                self._steps.append((node.op_type, ins[:1], node.output[0], cfg))
            else:
                self._steps.append((node.op_type, ins, node.output[0], {}))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        vals: dict[str, torch.Tensor] = {self.input_name: x}
        p = self.params
        for op, ins, out, c in self._steps:
            if op == "Conv":
                b = p[c["b"]] if c["b"] else None
                y = F.conv2d(vals[ins[0]], p[c["w"]], b, c["stride"], c["padding"], 1, c["groups"])
            elif op == "ConvTranspose":
                b = p[c["b"]] if c["b"] else None
                y = F.conv_transpose2d(
                    vals[ins[0]], p[c["w"]], b, c["stride"], c["padding"], 0, c["groups"]
                )
            elif op == "BatchNormalization":
                y = F.batch_norm(
                    vals[ins[0]], p[c["mean"]], p[c["var"]], p[c["w"]], p[c["b"]], False, 0.0, c["eps"]
                )
            elif op == "Relu":
                y = F.relu(vals[ins[0]])
            elif op == "Sigmoid":
                y = torch.sigmoid(vals[ins[0]])
            else:  # Add
                y = vals[ins[0]] + vals[ins[1]]
            vals[out] = y
        return tuple(vals[n] for n in self.output_names)
