"""Loading a state dict into one of the project's PyTorch definitions: strictly, with the mismatch in words."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ModelError


def _listed(label: str, keys: list[str]) -> str:
    return f"{label} {', '.join(keys[:5])}" + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


def load_strictly(module: nn.Module, state: dict[str, torch.Tensor], what: str, fix: str) -> None:
    """Load ``state`` into ``module`` with no missing or unexpected key and every shape right.

    Otherwise raises :class:`ModelError` "The weights do not fit ``what``: missing ...; unexpected ...;
    wrong shape ..." naming up to five keys of each, with ``fix``. Tensors are loaded as float32 (the
    backend casts the module to the run's precision afterwards).
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state)
                   if not isinstance(state[k], torch.Tensor) or tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = [_listed(label, keys) for label, keys in
                 (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
        raise ModelError(f"The weights do not fit {what}: {'; '.join(parts)}.", fix)
    module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
