"""A model's inputs and outputs under names of its own, independent of any framework's tensor names.

Tasks (pre- and post-processing) and the SUT speak these names only. A model file of a given format names
its tensors its own way (the official ResNet50 ONNX file calls its input ``input_tensor:0``); the
:class:`NameSet` entries say how, and a backend translates at its edge. A backend whose models take
positional inputs and return a tuple (PyTorch) uses the order of :attr:`ModelIO.inputs` and
:attr:`ModelIO.outputs` instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..errors import ModelError


@dataclass(frozen=True)
class NameSet:
    """How one kind of model file names the model's tensors."""

    label: str
    """Which files use these names, in words (``fp32 model.onnx``)."""
    names: Mapping[str, str]
    """Our name -> the file's name, for every input and output."""
    parts: Mapping[str, int] = field(default_factory=dict)
    """Outputs that are a slice of a file's tensor: our name -> index on its last axis (MLCommons' TensorFlow
    BERT returns ``logits`` [N,384,2], start and end logits stacked)."""
    layout: str = "NCHW"
    """The layout of an image input in these files (MLCommons' TensorFlow ResNet50 takes NHWC)."""

    def pick(self, name: str, tensor):
        """Our output ``name`` from the file's tensor ``names[name]``."""
        index = self.parts.get(name)
        return tensor if index is None else tensor[..., index]


@dataclass(frozen=True)
class ModelIO:
    inputs: tuple[str, ...]
    """The model's inputs in model order."""
    outputs: tuple[str, ...]
    """The outputs the task reads, in the order the project's own modules return them."""
    files: Mapping[str, tuple[NameSet, ...]] = field(default_factory=dict)
    """Model file format (``onnx``) -> the name sets its files use."""

    def check_outputs(self, outputs: Iterable[str], model: str) -> None:
        """Raise :class:`ModelError` naming any of ``outputs`` this model does not have."""
        unknown = [o for o in outputs if o not in self.outputs]
        if unknown:
            raise ModelError(f"The {model} model has no output named {', '.join(unknown)}.",
                             f"ask for one of {', '.join(self.outputs)}.")

    def names_in(self, fmt: str, file_inputs: Iterable[str], file_outputs: Iterable[str],
                 source: object) -> dict[str, str]:
        """Our name -> the file's name, for the name set of ``fmt`` that a file with these input and output
        names uses. Raises :class:`ModelError` naming what the file has and what was expected."""
        return dict(self.name_set(fmt, file_inputs, file_outputs, source).names)

    def name_set(self, fmt: str, file_inputs: Iterable[str], file_outputs: Iterable[str],
                 source: object) -> NameSet:
        """The name set of ``fmt`` that a file with these input and output names uses (see :meth:`names_in`)."""
        have_in, have_out = list(file_inputs), set(file_outputs)
        sets = self.files.get(fmt, ())
        for candidate in sets:
            wanted_in = {candidate.names[n] for n in self.inputs}
            if wanted_in == set(have_in) and all(candidate.names[n] in have_out for n in self.outputs):
                return candidate
        expected = "; or ".join(
            f"inputs {', '.join(c.names[n] for n in self.inputs)} and outputs "
            f"{', '.join(c.names[n] for n in self.outputs)} ({c.label})" for c in sets) or f"no {fmt} file"
        raise ModelError(
            f"{_short(source)} has inputs {_names(have_in)} and outputs {_names(sorted(have_out))}; "
            f"expected {expected}.",
            "use the official model file, the synthetic model, or a file with the same inputs and outputs.")


def _names(names: list[str]) -> str:
    shown = ", ".join(_short(n, 60) for n in names[:8])
    return (shown + f" (and {len(names) - 8} more)" if len(names) > 8 else shown) or "none"


def _short(value: object, limit: int = 200) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
