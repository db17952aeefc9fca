"""Fault injection for tests of the failure paths, read from the environment of a test's child process."""

from __future__ import annotations

import os
import threading
import time

FAULT_ENV = "MLPERF_WIZARD_FAULT"
"""``raise-after:N`` or ``hang-after:N`` inference calls, or ``delay-ms:N`` added to every call."""


def with_faults(infer):
    """``infer``, failing or slowing as :data:`FAULT_ENV` says (unchanged when it is not set)."""
    spec = os.environ.get(FAULT_ENV, "")
    if not spec:
        return infer
    kind, _, count = spec.partition(":")
    limit = int(count or 0)
    calls = [0]

    def faulty(batch, *rest):
        calls[0] += 1
        if kind == "delay-ms":  # a slow SUT: every call takes this much longer
            time.sleep(limit / 1000)
        elif calls[0] > limit:
            if kind == "raise-after":
                raise RuntimeError(f"injected fault after {limit} inference calls")
            if kind == "hang-after":
                threading.Event().wait()
        return infer(batch, *rest)

    return faulty
