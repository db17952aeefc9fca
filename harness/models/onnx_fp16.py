"""fp16 ONNX models made from the fp32 ones: the same weights, rounded once, for ONNX Runtime on CUDA.

MLCommons publishes ResNet50 and BERT in fp32 (BERT also in int8), not in fp16. :func:`to_fp16` rewrites an
fp32 graph so that its compute-heavy part runs in half precision:

- the nodes whose operator is in :data:`FP16_OPS` (convolutions, matrix products, their element-wise
  neighbours, normalisation, data movement) compute in fp16: their float initializers are stored as fp16,
  and an fp32 value reaching them is cast;
- every other node (ArgMax, the graph's outputs, anything precision-sensitive) gets fp32 inputs, cast back;
- the graph's inputs and outputs keep their fp32 types, so the feeds and results are those of the fp32 file.

RetinaNet is not converted: its box decoding and NMS need fp32 coordinates (fp16 resolves 0.5 px at 800),
which this operator-level rule cannot tell from the backbone's arithmetic.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper, numpy_helper

FP16_OPS = frozenset({
    "Add", "Concat", "Conv", "Div", "Erf", "Flatten", "Gather", "Gemm", "GlobalAveragePool",
    "LayerNormalization", "MatMul", "MaxPool", "Mul", "Relu", "Reshape", "Softmax", "Split", "Squeeze", "Sub",
    "Transpose", "Unsqueeze",
})
"""Operators that compute in fp16 (ONNX Runtime's CUDA provider has fp16 kernels for each)."""
_FLOAT_DATA = {  # per operator, the input positions that carry float data (the rest are shapes, indices, axes)
    "Gather": (0,), "Reshape": (0,), "Split": (0,), "Squeeze": (0,), "Unsqueeze": (0,),
}


def _float_inputs(node: onnx.NodeProto) -> tuple[int, ...]:
    return _FLOAT_DATA.get(node.op_type, tuple(range(len(node.input))))


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with :data:`FP16_OPS` computing in fp16 (see the module's docstring)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    initializers = {t.name: t for t in graph.initializer}
    float_values = {i.name for i in graph.input if i.type.tensor_type.elem_type == TensorProto.FLOAT}
    float_values |= {name for name, t in initializers.items() if t.data_type == TensorProto.FLOAT}
    # An initializer that an fp32 node also reads stays fp32 (the fp16 nodes get a cast of it).
    read_in_fp32 = {i for node in graph.node if node.op_type not in FP16_OPS for i in node.input}
    half: set[str] = set()
    """Values now held in fp16."""
    converted: set[str] = set()
    nodes: list[onnx.NodeProto] = []
    casts: dict[tuple[str, int], str] = {}

    def cast(name: str, to: int) -> str:
        key = (name, to)
        if key not in casts:
            casts[key] = f"{name}__as_{'fp16' if to == TensorProto.FLOAT16 else 'fp32'}"
            nodes.append(helper.make_node("Cast", [name], [casts[key]], to=to, name=f"cast_{casts[key]}"))
        return casts[key]

    for node in graph.node:
        in_fp16 = node.op_type in FP16_OPS
        for position in _float_inputs(node):
            if position >= len(node.input) or node.input[position] not in float_values:
                continue
            name = node.input[position]
            if in_fp16 and name not in half:
                if name in initializers and name not in converted and name not in read_in_fp32:
                    tensor = initializers[name]
                    tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor).astype("float16"), name))
                    converted.add(name)
                    half.add(name)
                else:
                    node.input[position] = cast(name, TensorProto.FLOAT16)
            elif not in_fp16 and name in half:
                node.input[position] = cast(name, TensorProto.FLOAT)
        nodes.append(node)
        outputs_float = in_fp16 and any(node.input[p] in half for p in _float_inputs(node) if p < len(node.input))
        for name in node.output:
            if node.op_type == "Cast":
                if node.attribute[0].i == TensorProto.FLOAT:
                    float_values.add(name)
            elif outputs_float:
                float_values.add(name)
                half.add(name)
            elif any(node.input[p] in float_values for p in _float_inputs(node) if p < len(node.input)):
                float_values.add(name)
    for output in graph.output:
        if output.name in half:
            # The graph's output keeps its name and fp32 type: the fp16 value is renamed, then cast back.
            inner = f"{output.name}__fp16"
            for node in nodes:
                node.output[:] = [inner if o == output.name else o for o in node.output]
                node.input[:] = [inner if i == output.name else i for i in node.input]
            nodes.append(helper.make_node("Cast", [inner], [output.name], to=TensorProto.FLOAT,
                                          name=f"cast_{output.name}_out"))
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]  # types changed: ONNX Runtime infers them again
    return out

