"""Loading a state dict into one of the project's PyTorch definitions: strictly, with the mismatch in words."""

from __future__ import annotations

import torch
from torch import nn

from .state_check import check_state


def load_strictly(module: nn.Module, state: dict[str, torch.Tensor], what: str, fix: str) -> None:
    """Load ``state`` into ``module`` with no missing or unexpected key and every shape right.

    Otherwise raises :class:`ModelError` "The weights do not fit ``what``: missing ...; unexpected ...;
    wrong shape ..." naming up to five keys of each, with ``fix``. Tensors are loaded as float32 (the
    backend casts the module to the run's precision afterwards).
    """
    check_state({k: tuple(v.shape) for k, v in module.state_dict().items()},
                {k: v if isinstance(v, torch.Tensor) else None for k, v in state.items()}, what, fix)
    module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
