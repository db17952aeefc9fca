"""BERT-large for SQuAD as ONNX with seeded random weights: the offline stand-in for MLPerf's ``model.onnx``.

The graph is the real architecture of ``BertForQuestionAnswering`` (24 layers, hidden 1024, 16 heads,
intermediate 4096, vocab 30522, 512 positions, 2 token types; QA head 1024 -> 2) at sequence length 384,
so it costs what the official model costs to run; only the weights are random, so its answers are
meaningless. I/O is the official fp32 file's. MLPERF_FACTS.md names its inputs but not its outputs; the
output names below are those of MLCommons' PyTorch-to-ONNX export of this model and of its CM metadata:

- inputs ``input_ids``, ``input_mask``, ``segment_ids``: int64 [batch_size, 384];
- outputs ``output_start_logits``, ``output_end_logits``: float32 [batch_size, 384].

:func:`quantize_int8` turns a built model into the "Quantized: Y" stand-in with ONNX Runtime's dynamic
quantization (int8 weights) and renames the inputs to the official int8 file's ``input_ids``,
``attention_mask``, ``token_type_ids``; the outputs keep their names.

Built with ``onnx.helper`` and numpy only. The full fp32 model is ~1.34 GB, under protobuf's 2 GB limit, so
it is one self-contained file like the official one (no external data file).

The weights carry Hugging Face's ``BertForQuestionAnswering`` names, so the frameworks' own definitions
(``torch_bert``, ``tf_bert``) run the same network: :func:`reference_state` reads them back in that layout as
numpy, and :func:`normalise_state_dict` and :func:`state_config` are the framework-free parts of loading any
BERT state dict (numpy arrays or torch tensors alike).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import ModelError
from .onnx_graph import BuildInfo, GraphBuilder
from .store import write_model

VARIANTS = ("full", "tiny")
PRECISIONS = ("fp32", "int8")

SEQ_LEN = 384
BATCH_DIM = "batch_size"
FP32_INPUTS = ("input_ids", "input_mask", "segment_ids")
"""Input names of the official fp32 ONNX model, in the order ids, mask, segments."""
INT8_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
"""Input names of the official int8 ONNX model (``bert_large_v1_1_fake_quant.onnx``), same order."""
OUTPUTS = ("output_start_logits", "output_end_logits")
OPSET = 17
# Pinned so a newer onnx does not change the bytes (the cache key) or write a file an older ORT refuses.
IR_VERSION = 8
T = TypeVar("T")
HEAD_DIM = 64
"""Width of one attention head: BERT-large (1024 / 16), BERT-base (768 / 12) and the tiny stand-in (128 / 2)."""
LAYER_NORM_EPS = 1e-12
MASK_VALUE = -10000.0
"""What BertForQuestionAnswering adds to the attention scores of padding keys."""


@dataclass(frozen=True)
class BertConfig:
    """The shape of the network; ``full`` is BERT-large."""

    layers: int
    hidden: int
    heads: int
    intermediate: int
    vocab: int = 30522
    max_positions: int = 512
    type_vocab: int = 2
    layer_norm_eps: float = LAYER_NORM_EPS


CONFIGS = {
    "full": BertConfig(layers=24, hidden=1024, heads=16, intermediate=4096),
    # Same vocabulary, positions, sequence length and I/O; much less compute.
    "tiny": BertConfig(layers=2, hidden=128, heads=2, intermediate=512),
}

# BERT's initializer_range: weights ~ N(0, 0.02^2), biases 0, LayerNorm gamma 1 and beta 0.
_INIT_STD = 0.02
_WORD_EMBEDDINGS = "bert.embeddings.word_embeddings.weight"
# Dense (nn.Linear) weights: stored [in, out] in the ONNX stand-in, [out, in] in Hugging Face's layout.
_DENSE_WEIGHT = re.compile(r"(\.(query|key|value|dense)|^qa_outputs)\.weight$")
# In old checkpoints but unused by the QA model: the position-ids buffer and the pooler.
_UNUSED = re.compile(r"^bert\.embeddings\.position_ids$|^bert\.pooler\.dense\.(weight|bias)$")
# The weights of the QA model in Hugging Face's spelling; anything else in an ONNX file is not this model's.
_QA_KEY = re.compile(r"^bert\.(embeddings|encoder\.layer\.\d+)\.[\w.]+\.(weight|bias)$|^qa_outputs\.(weight|bias)$")
_REBUILD_FIX = "delete it; the next run rebuilds it."


class _GraphBuilder(GraphBuilder):
    """BERT's layers on the shared graph accumulator."""

    def weight(self, name: str, shape: tuple[int, ...]) -> str:
        return self.add_weight(name, self.rng.standard_normal(shape, dtype=np.float32) * np.float32(_INIT_STD))

    def filled(self, name: str, size: int, value: float) -> str:
        return self.add_weight(name, np.full(size, value, dtype=np.float32))

    def op(self, op_type: str, name: str, inputs: list[str], outputs: list[str] | None = None,
           **attrs: object) -> str:
        """Append a node; returns its (first) output name."""
        outputs = outputs or [f"{name}.out"]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=name, **attrs))
        return outputs[0]

    def dense(self, name: str, x: str, n_in: int, n_out: int) -> str:
        """``x @ W + b`` with W stored [in, out], as a PyTorch export of nn.Linear leaves it."""
        w = self.weight(f"{name}.weight", (n_in, n_out))
        b = self.filled(f"{name}.bias", n_out, 0.0)
        y = self.op("MatMul", f"{name}.matmul", [x, w])
        return self.op("Add", f"{name}.add", [y, b])

    def layer_norm(self, name: str, x: str, hidden: int, eps: float) -> str:
        gamma = self.filled(f"{name}.weight", hidden, 1.0)
        beta = self.filled(f"{name}.bias", hidden, 0.0)
        return self.op("LayerNormalization", name, [x, gamma, beta], axis=-1, epsilon=eps)

    def gelu(self, name: str, x: str) -> str:
        """Exact GELU, ``0.5 x (1 + erf(x / sqrt 2))``: the pattern ORT fuses into its Gelu kernel."""
        scaled = self.op("Div", f"{name}.div", [x, "const.sqrt2"])
        erf = self.op("Erf", f"{name}.erf", [scaled])
        one_plus = self.op("Add", f"{name}.add", [erf, "const.one"])
        y = self.op("Mul", f"{name}.mul", [x, one_plus])
        return self.op("Mul", f"{name}.half", [y, "const.half"])

    def attention(self, name: str, x: str, mask_bias: str, cfg: BertConfig) -> str:
        """Multi-head self-attention with the additive padding mask; returns the context [B,S,H]."""

        def heads(tensor: str, kind: str, perm: list[int]) -> str:
            split = self.op("Reshape", f"{name}.{kind}.reshape", [tensor, "const.heads_shape"])
            return self.op("Transpose", f"{name}.{kind}.transpose", [split], perm=perm)

        q = heads(self.dense(f"{name}.self.query", x, cfg.hidden, cfg.hidden), "q", [0, 2, 1, 3])
        k = heads(self.dense(f"{name}.self.key", x, cfg.hidden, cfg.hidden), "k", [0, 2, 3, 1])
        v = heads(self.dense(f"{name}.self.value", x, cfg.hidden, cfg.hidden), "v", [0, 2, 1, 3])
        scores = self.op("MatMul", f"{name}.scores", [q, k])
        scores = self.op("Div", f"{name}.scale", [scores, "const.sqrt_head_dim"])
        scores = self.op("Add", f"{name}.mask", [scores, mask_bias])
        probs = self.op("Softmax", f"{name}.softmax", [scores], axis=-1)
        context = self.op("MatMul", f"{name}.context", [probs, v])
        context = self.op("Transpose", f"{name}.context.transpose", [context], perm=[0, 2, 1, 3])
        return self.op("Reshape", f"{name}.context.reshape", [context, "const.hidden_shape"])


def _make_model(seed: int, variant: str) -> tuple[onnx.ModelProto, int]:
    cfg = CONFIGS[variant]
    g = _GraphBuilder(seed)
    ids, mask, segments = FP32_INPUTS
    head_dim = cfg.hidden // cfg.heads
    g.constant("const.sqrt2", np.array(np.sqrt(2.0), dtype=np.float32))
    g.constant("const.one", np.array(1.0, dtype=np.float32))
    g.constant("const.half", np.array(0.5, dtype=np.float32))
    g.constant("const.mask_value", np.array(MASK_VALUE, dtype=np.float32))
    g.constant("const.sqrt_head_dim", np.array(np.sqrt(head_dim), dtype=np.float32))
    # Reshape's 0 copies the input's dimension, so batch and sequence stay symbolic.
    g.constant("const.heads_shape", np.array([0, 0, cfg.heads, head_dim], dtype=np.int64))
    g.constant("const.hidden_shape", np.array([0, 0, cfg.hidden], dtype=np.int64))
    g.constant("const.mask_axes", np.array([1, 2], dtype=np.int64))
    g.constant("const.position_ids", np.arange(SEQ_LEN, dtype=np.int64))
    g.constant("const.qa_split", np.array([1, 1], dtype=np.int64))
    g.constant("const.last_axis", np.array([-1], dtype=np.int64))

    # Embeddings: word + position + token type, then LayerNorm.
    word = g.weight("bert.embeddings.word_embeddings.weight", (cfg.vocab, cfg.hidden))
    position = g.weight("bert.embeddings.position_embeddings.weight", (cfg.max_positions, cfg.hidden))
    token_type = g.weight("bert.embeddings.token_type_embeddings.weight", (cfg.type_vocab, cfg.hidden))
    x = g.op("Gather", "embeddings.word", [word, ids])
    x = g.op("Add", "embeddings.add_position",
             [x, g.op("Gather", "embeddings.position", [position, "const.position_ids"])])
    x = g.op("Add", "embeddings.add_token_type", [x, g.op("Gather", "embeddings.token_type", [token_type, segments])])
    x = g.layer_norm("bert.embeddings.LayerNorm", x, cfg.hidden, cfg.layer_norm_eps)

    # Padding mask -> additive bias [B,1,1,S]: 0 for real tokens, -10000 for padding.
    m = g.op("Cast", "mask.cast", [mask], to=TensorProto.FLOAT)
    m = g.op("Sub", "mask.invert", ["const.one", m])
    m = g.op("Mul", "mask.scale", [m, "const.mask_value"])
    mask_bias = g.op("Unsqueeze", "mask.unsqueeze", [m, "const.mask_axes"])

    for i in range(cfg.layers):
        p = f"bert.encoder.layer.{i}"
        context = g.attention(f"{p}.attention", x, mask_bias, cfg)
        y = g.dense(f"{p}.attention.output.dense", context, cfg.hidden, cfg.hidden)
        y = g.op("Add", f"{p}.attention.output.residual", [y, x])
        x = g.layer_norm(f"{p}.attention.output.LayerNorm", y, cfg.hidden, cfg.layer_norm_eps)
        h = g.gelu(f"{p}.intermediate.gelu", g.dense(f"{p}.intermediate.dense", x, cfg.hidden, cfg.intermediate))
        y = g.dense(f"{p}.output.dense", h, cfg.intermediate, cfg.hidden)
        y = g.op("Add", f"{p}.output.residual", [y, x])
        x = g.layer_norm(f"{p}.output.LayerNorm", y, cfg.hidden, cfg.layer_norm_eps)

    logits = g.dense("qa_outputs", x, cfg.hidden, 2)
    start, end = "qa_outputs.start", "qa_outputs.end"
    g.op("Split", "qa_outputs.split", [logits, "const.qa_split"], outputs=[start, end], axis=-1)
    g.op("Squeeze", "qa_outputs.squeeze_start", [start, "const.last_axis"], outputs=[OUTPUTS[0]])
    g.op("Squeeze", "qa_outputs.squeeze_end", [end, "const.last_axis"], outputs=[OUTPUTS[1]])

    graph = helper.make_graph(
        g.nodes,
        f"bert_large_squad_synthetic_{variant}",
        inputs=[helper.make_tensor_value_info(name, TensorProto.INT64, [BATCH_DIM, SEQ_LEN]) for name in FP32_INPUTS],
        outputs=[helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH_DIM, SEQ_LEN]) for name in OUTPUTS],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="mlperf-wizard",
        doc_string=f"Synthetic BERT-large for SQuAD ({variant}), random weights from seed {seed}; not for accuracy.",
    )
    model.ir_version = IR_VERSION
    return model, g.parameters


def build_bert_onnx(path: Path, *, seed: int = 0, variant: str = "full", precision: str = "fp32") -> BuildInfo:
    """Build BERT-large for SQuAD with random weights and write it to ``path``.

    ``variant="full"`` is the real architecture (334,094,338 parameters, ~1.34 GB in fp32, the cost of
    MLPerf's ``model.onnx``); ``"tiny"`` is the same graph with 2 layers, hidden 128, 2 heads and
    intermediate 512 (same vocabulary, sequence length and I/O), for fast tests. ``precision="int8"``
    builds the fp32 model in a temporary folder and writes :func:`quantize_int8` of it to ``path``.

    The same seed, variant and precision give a byte-identical file (with the same numpy, onnx and
    onnxruntime versions), so :attr:`BuildInfo.md5` is a stable cache key. The file is written through a
    temporary file in the same folder, so ``path`` never holds a partial model.

    Raises ``ValueError`` for an unknown variant or precision and :class:`~harness.errors.ModelError` if
    the file cannot be written.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    path = Path(path)
    start = time.perf_counter()
    if precision == "int8":
        with _scratch_dir(path) as work:
            fp32 = build_bert_onnx(work / "fp32.onnx", seed=seed, variant=variant)
            info = quantize_int8(fp32.path, path)
        return BuildInfo(path=path, variant=variant, precision="int8", seed=seed, parameters=fp32.parameters,
                         size_bytes=info.size_bytes, seconds=time.perf_counter() - start, md5=info.md5)
    model, parameters = _make_model(seed, variant)
    onnx.checker.check_model(model)
    data = model.SerializeToString(deterministic=True)
    del model
    write_model(path, data, "synthetic BERT model", "about 1.4 GB for the full fp32 BERT")
    return BuildInfo(path=path, variant=variant, precision="fp32", seed=seed, parameters=parameters,
                     size_bytes=len(data), seconds=time.perf_counter() - start, md5=hashlib.md5(data).hexdigest())


def quantize_int8(src: Path, dst: Path) -> BuildInfo:
    """Quantize the fp32 BERT at ``src`` to int8 weights with ONNX Runtime and write it to ``dst``.

    Dynamic quantization (``quantize_dynamic``: QInt8 MatMul weights, activations quantized at run time;
    ORT keeps the quantized embedding tables as uint8); the inputs are renamed to the official int8 model's
    ``input_ids``, ``attention_mask``, ``token_type_ids``. Written atomically like the fp32 model.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = Path(src), Path(dst)
    start = time.perf_counter()
    with _scratch_dir(dst) as work:
        quantized = work / "quantized.onnx"
        try:
            with _quiet_root_warnings():
                quantize_dynamic(src, quantized, weight_type=QuantType.QInt8)
        except OSError as exc:
            raise ModelError(f"Could not quantize {src}: {exc.strerror or exc}.",
                             f"make sure {dst.parent} is writable and has space, then rerun.") from exc
        model = onnx.load(quantized)
    _rename_inputs(model, dict(zip(FP32_INPUTS, INT8_INPUTS, strict=True)))
    model.ir_version = max(model.ir_version, IR_VERSION)
    onnx.checker.check_model(model)
    data = model.SerializeToString(deterministic=True)
    write_model(dst, data, "quantized BERT model", "about 340 MB for the full int8 BERT")
    variant, seed = _origin(model)
    return BuildInfo(path=dst, variant=variant, precision="int8", seed=seed,
                     parameters=parameter_count(CONFIGS[variant]) if variant in CONFIGS else 0,
                     size_bytes=len(data), seconds=time.perf_counter() - start, md5=hashlib.md5(data).hexdigest())


def reference_state(onnx_path: Path) -> dict[str, np.ndarray]:
    """The synthetic ONNX BERT's weights in Hugging Face's ``BertForQuestionAnswering`` layout (float32 numpy).

    The ONNX initializers already carry Hugging Face's names; dense weights are transposed from the ONNX
    [in, out] to nn.Linear's [out, in], and the graph's ``const.*`` constants are skipped. Each array is
    its own C-contiguous, writable copy. Raises :class:`ModelError` for a file ONNX cannot read or an ONNX
    model that is not the fp32 synthetic BERT (another model's weights, or the int8 file's).
    """
    path = Path(onnx_path)
    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:  # onnx raises decode, OS and checker errors alike
        raise ModelError(f"{path} is not a readable ONNX model ({type(exc).__name__}).", _REBUILD_FIX) from None
    state: dict[str, np.ndarray] = {}
    for tensor in graph.initializer:
        if tensor.name.startswith("const."):
            continue
        array = numpy_helper.to_array(tensor)
        if not _QA_KEY.match(tensor.name) or array.dtype != np.float32:
            raise ModelError(f"{path} is not the synthetic fp32 BERT (unknown weight {tensor.name}).", _REBUILD_FIX)
        state[tensor.name] = np.array(array.T if _DENSE_WEIGHT.search(tensor.name) else array, order="C")
    if _WORD_EMBEDDINGS not in state:
        raise ModelError(f"{path} is not the synthetic BERT (no {_WORD_EMBEDDINGS}).", _REBUILD_FIX)
    return state


def normalise_state_dict(state_dict: Mapping[str, T]) -> dict[str, T]:
    """The state dict in today's Hugging Face spelling, without what the QA model does not use.

    Exactly three tolerated differences of older BERT checkpoints: LayerNorm ``gamma``/``beta`` are renamed
    ``weight``/``bias``; the ``bert.embeddings.position_ids`` buffer (constant 0..N-1, recomputed by the
    network) and the pooler ``bert.pooler.dense.*`` (only for classification, not for SQuAD spans) are
    dropped. Anything else is left for the strict check to report. The values are kept as they are.
    """
    state: dict[str, T] = {}
    for key, value in state_dict.items():
        if _UNUSED.match(key):
            continue
        state[re.sub(r"(\.LayerNorm)\.gamma$", r"\1.weight", re.sub(r"(\.LayerNorm)\.beta$", r"\1.bias", key))] = value
    return state


def state_config(state: Mapping[str, object], fix: str) -> dict[str, int]:
    """The shape of the BERT whose (normalised) weights are ``state``, read from the values' ``.shape``.

    Keys ``layers``, ``hidden``, ``intermediate``, ``vocab``, ``max_positions``, ``type_vocab`` (heads are
    hidden / :data:`HEAD_DIM`); works on numpy arrays and torch tensors alike. Raises :class:`ModelError`
    with ``fix`` when ``state`` is not a BERT state dict or its hidden size is not a multiple of 64.
    """
    try:
        vocab, hidden = state[_WORD_EMBEDDINGS].shape
        max_positions = state["bert.embeddings.position_embeddings.weight"].shape[0]
        type_vocab = state["bert.embeddings.token_type_embeddings.weight"].shape[0]
        intermediate = state["bert.encoder.layer.0.intermediate.dense.weight"].shape[0]
    except (KeyError, ValueError, AttributeError, IndexError, TypeError):
        raise ModelError("This file is not a BERT state dict (no bert.embeddings.* or bert.encoder.layer.0.*).",
                         fix) from None
    if hidden % HEAD_DIM:
        raise ModelError(f"The BERT hidden size {hidden} is not a multiple of the head width {HEAD_DIM}.", fix)
    layers = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"bert\.encoder\.layer\.(\d+)\.", k)))
    return {"layers": layers, "hidden": int(hidden), "intermediate": int(intermediate), "vocab": int(vocab),
            "max_positions": int(max_positions), "type_vocab": int(type_vocab)}


def parameter_count(cfg: BertConfig) -> int:
    """Weights and biases of BertForQuestionAnswering with ``cfg`` (no pooler: the QA model does not use it)."""
    h, i = cfg.hidden, cfg.intermediate
    embeddings = (cfg.vocab + cfg.max_positions + cfg.type_vocab) * h + 2 * h
    layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 2 * 2 * h
    return embeddings + cfg.layers * layer + (2 * h + 2)


@contextlib.contextmanager
def _scratch_dir(target: Path) -> Iterator[Path]:
    """A temporary folder beside ``target`` (same file system, so the final rename is atomic), removed after."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as exc:
        raise ModelError(f"Could not write the BERT model to {target}: {exc.strerror or exc}.",
                         f"make sure {target.parent} is writable and has space, then rerun.") from exc
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def _quiet_root_warnings() -> Iterator[None]:
    """Silence the quantizer's advice to pre-process, which it logs on the root logger at every call."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _rename_inputs(model: onnx.ModelProto, renames: dict[str, str]) -> None:
    for value in model.graph.input:
        value.name = renames.get(value.name, value.name)
    for node in model.graph.node:
        for k, name in enumerate(node.input):
            if name in renames:
                node.input[k] = renames[name]


def _origin(model: onnx.ModelProto) -> tuple[str, int]:
    """Variant and seed of a model this module built (from its graph name and doc string), else ("unknown", -1)."""
    name = model.graph.name
    variant = next((v for v in VARIANTS if name == f"bert_large_squad_synthetic_{v}"), "unknown")
    found = re.search(r"from seed (\d+)", model.doc_string)
    return variant, int(found.group(1)) if found else -1
