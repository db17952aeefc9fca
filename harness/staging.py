"""Where the QSL keeps loaded samples and how a batch is made of them.

The default keeps host arrays and stacks them per batch; a backend with a device of its own (PyTorch on
CUDA) keeps them on the device instead, converted once when LoadGen loads them (outside its clock), so
that a batch is one on-device stack and the host copy is not in the timed path.
"""

from __future__ import annotations

import threading

import numpy as np


class HostSamples:
    """How samples are kept and batched when the backend takes host arrays (the default): as the dataset
    gives them, stacked per batch into a per-thread buffer reused across batches (a fresh multi-MB array
    per batch costs page faults on every call).

    A backend with a device of its own offers another staging (see ``Backend.staging``): the QSL then
    keeps the samples there, converted once at load time, outside LoadGen's clock."""

    def __init__(self) -> None:
        self._local = threading.local()

    def stage(self, sample):
        """The form the QSL keeps ``sample`` in (an array, or a tuple of arrays)."""
        return sample

    def batch(self, samples: list):
        """One batch (an array, or a tuple of arrays per input) of staged samples."""
        first = samples[0]
        if len(samples) == 1:
            return tuple(x[None] for x in first) if isinstance(first, tuple) else first[None]
        if isinstance(first, tuple):
            return tuple(self._stack([s[k] for s in samples], k) for k in range(len(first)))
        return self._stack(samples, None)

    def _stack(self, arrays: list[np.ndarray], part: int | None) -> np.ndarray:
        buffers = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = {}
        n, like = len(arrays), arrays[0]
        buf = buffers.get(part)
        if buf is None or buf.shape[0] < n or buf.shape[1:] != like.shape or buf.dtype != like.dtype:
            buf = np.empty((n,) + like.shape, dtype=like.dtype)
            buffers[part] = buf
        out = buf[:n]
        for i, a in enumerate(arrays):
            out[i] = a
        return out


def staged_batch(staging, dataset, n: int):
    """A batch of the first ``n`` samples (round the dataset), staged as the QSL stages them."""
    return staging.batch([staging.stage(dataset.sample(i % dataset.count)) for i in range(n)])
