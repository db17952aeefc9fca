"""BERT for SQuAD (``BertForQuestionAnswering``) as the project's own PyTorch module (no ``transformers``).

The module uses Hugging Face's state-dict key names, so two weight sources load into it strictly:

- the official MLCommons ``model.pytorch`` (zenodo 3733896), through :func:`load_official`;
- the synthetic ONNX stand-in's seeded weights (:func:`state_dict_from_onnx`), so that PyTorch and ONNX
  Runtime run the same network.

It computes what ``harness.models.synthetic_bert`` builds: word + position (0..S-1) + token-type
embeddings, LayerNorm (eps 1e-12), post-LN encoder layers with exact GELU, an additive -10000 bias on the
scores of padding keys, and the QA head split into start and end logits. I/O is the official fp32 model's:
``forward(input_ids, input_mask, segment_ids)`` (int64 [B, S]) returns ``(start_logits, end_logits)``
([B, S], in the module's dtype).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import ModelError
from .synthetic_bert import HEAD_DIM, LAYER_NORM_EPS, MASK_VALUE, normalise_state_dict, reference_state, state_config
from .torch_weights import load_strictly

_OFFICIAL_FIX = "use the official model.pytorch (zenodo 3733896) or --model-source synthetic."


class BertEmbeddings(nn.Module):
    """Word + position + token-type embeddings, then LayerNorm."""

    def __init__(self, vocab: int, hidden: int, max_positions: int, type_vocab: int):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden)
        self.position_embeddings = nn.Embedding(max_positions, hidden)
        self.token_type_embeddings = nn.Embedding(type_vocab, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=LAYER_NORM_EPS)

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions) + self.token_type_embeddings(
            segment_ids)
        return self.LayerNorm(x)


class BertSelfAttention(nn.Module):
    """Multi-head scaled dot-product attention with an additive mask (SDPA: fused on GPU)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.heads = hidden // HEAD_DIM
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        b, s, h = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, s, self.heads, HEAD_DIM).transpose(1, 2)

        context = nn.functional.scaled_dot_product_attention(
            split(self.query(x)), split(self.key(x)), split(self.value(x)), attn_mask=mask_bias)
        return context.transpose(1, 2).reshape(b, s, h)


class BertResidualOutput(nn.Module):
    """``LayerNorm(dense(x) + residual)``: HF's ``BertSelfOutput`` and ``BertOutput``."""

    def __init__(self, n_in: int, hidden: int):
        super().__init__()
        self.dense = nn.Linear(n_in, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class BertAttention(nn.Module):
    """Self-attention and its output projection (HF names ``self`` and ``output``)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.self = BertSelfAttention(hidden)
        self.output = BertResidualOutput(hidden, hidden)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x, mask_bias), x)


class BertIntermediate(nn.Module):
    """The feed-forward expansion with exact (erf) GELU."""

    def __init__(self, hidden: int, intermediate: int):
        super().__init__()
        self.dense = nn.Linear(hidden, intermediate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(self.dense(x))


class BertLayer(nn.Module):
    """One post-LayerNorm transformer encoder layer."""

    def __init__(self, hidden: int, intermediate: int):
        super().__init__()
        self.attention = BertAttention(hidden)
        self.intermediate = BertIntermediate(hidden, intermediate)
        self.output = BertResidualOutput(intermediate, hidden)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        x = self.attention(x, mask_bias)
        return self.output(self.intermediate(x), x)


class BertEncoder(nn.Module):
    """The stack of encoder layers (HF name ``layer``)."""

    def __init__(self, layers: int, hidden: int, intermediate: int):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(hidden, intermediate) for _ in range(layers))

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            x = layer(x, mask_bias)
        return x


class BertModel(nn.Module):
    """Embeddings and encoder; no pooler (the QA head reads every token)."""

    def __init__(self, layers: int, hidden: int, intermediate: int, vocab: int, max_positions: int,
                 type_vocab: int):
        super().__init__()
        self.embeddings = BertEmbeddings(vocab, hidden, max_positions, type_vocab)
        self.encoder = BertEncoder(layers, hidden, intermediate)


class BertForQuestionAnswering(nn.Module):
    """BERT with the SQuAD span head; ``forward`` takes and returns what the official fp32 ONNX model does."""

    def __init__(self, layers: int = 24, hidden: int = 1024, intermediate: int = 4096, vocab: int = 30522,
                 max_positions: int = 512, type_vocab: int = 2):
        super().__init__()
        if hidden % HEAD_DIM:
            raise ValueError(f"hidden size {hidden} is not a multiple of the head width {HEAD_DIM}")
        self.bert = BertModel(layers, hidden, intermediate, vocab, max_positions, type_vocab)
        self.qa_outputs = nn.Linear(hidden, 2)

    def forward(self, input_ids: torch.Tensor, input_mask: torch.Tensor,
                segment_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.bert.embeddings(input_ids, segment_ids)
        # [B, 1, 1, S] in the compute dtype: 0 for real tokens, -10000 for padding keys.
        mask_bias = ((1.0 - input_mask.to(x.dtype)) * MASK_VALUE)[:, None, None, :]
        x = self.bert.encoder(x, mask_bias)
        start, end = self.qa_outputs(x).unbind(-1)
        return start.contiguous(), end.contiguous()


def build_module(state_dict: dict[str, torch.Tensor]) -> BertForQuestionAnswering:
    """The BERT of ``state_dict`` (Hugging Face key names), loaded strictly, in eval mode.

    The shape (layers, hidden, heads = hidden / 64, intermediate, vocabulary, positions, token types) is
    read from the tensors. After :func:`normalise_state_dict`, a missing or unexpected key or a tensor of
    the wrong shape raises :class:`ModelError` naming up to five of each.
    """
    state = normalise_state_dict(state_dict)
    module = BertForQuestionAnswering(**state_config(state, _OFFICIAL_FIX))
    load_strictly(module, state, "BertForQuestionAnswering", _OFFICIAL_FIX)
    return module.eval()


def state_dict_from_onnx(onnx_path: Path) -> dict[str, torch.Tensor]:
    """The synthetic ONNX BERT's weights under this module's keys: the same seeded network for PyTorch.

    :func:`~harness.models.synthetic_bert.reference_state` as torch tensors (dense weights already [out, in],
    ``const.*`` constants skipped); the same :class:`ModelError` for a file that is not the synthetic BERT.
    """
    return {key: torch.from_numpy(array) for key, array in reference_state(onnx_path).items()}


def load_official(path: Path) -> dict[str, torch.Tensor]:
    """The state dict in a BERT ``model.pytorch`` (tensors only: no code is unpickled).

    A checkpoint that wraps it in a ``"model"`` or ``"state_dict"`` entry is unwrapped.
    """
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip, OS and runtime errors alike
        raise ModelError(f"{path} is not a PyTorch state dict ({type(exc).__name__}: {str(exc)[:120]}).",
                         _OFFICIAL_FIX) from None
    if isinstance(state, dict):
        for wrapper in ("model", "state_dict"):
            if isinstance(state.get(wrapper), dict):
                state = state[wrapper]
                break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} holds no BERT state dict.", _OFFICIAL_FIX)
    return dict(state)
