"""harness.models.io: a file's tensor names are matched to the model's own names, or refused in words."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import ModelError
from harness.models.families import FACTORIES, family

names = st.lists(st.text(min_size=0, max_size=400), max_size=40)


@pytest.mark.parametrize("model", sorted(FACTORIES))
def test_every_onnx_name_set_matches_itself_and_covers_every_tensor(model: str):
    io = family(model).io
    assert io.files["onnx"], "every family says how ONNX files name its tensors"
    for name_set in io.files["onnx"]:
        assert set(name_set.names) == set(io.inputs) | set(io.outputs)
        file_inputs = [name_set.names[n] for n in reversed(io.inputs)]  # the file's order is its own
        file_outputs = [name_set.names[n] for n in io.outputs] + ["an_extra_output"]
        assert io.names_in("onnx", file_inputs, file_outputs, "m.onnx") == dict(name_set.names)


@pytest.mark.parametrize("model", sorted(FACTORIES))
def test_a_missing_output_is_refused_with_what_the_file_has(model: str):
    io = family(model).io
    name_set = io.files["onnx"][0]
    file_outputs = [name_set.names[n] for n in io.outputs[1:]]  # the first output is missing
    with pytest.raises(ModelError) as caught:
        io.names_in("onnx", [name_set.names[n] for n in io.inputs], file_outputs, "odd.onnx")
    assert "odd.onnx" in caught.value.message and name_set.label in caught.value.message
    assert caught.value.fix


def test_a_format_without_name_sets_is_refused():
    with pytest.raises(ModelError, match="no savedmodel file"):
        family("resnet50").io.names_in("savedmodel", ["x"], ["y"], "m")


@settings(max_examples=200, deadline=None)
@given(inputs=names, outputs=names, source=st.text(max_size=5000))
def test_any_names_give_a_mapping_into_the_file_or_a_short_error(inputs, outputs, source):
    for model in FACTORIES:
        io = family(model).io
        try:
            mapping = io.names_in("onnx", inputs, outputs, source)
        except ModelError as exc:
            assert len(exc.message) < 4000  # hostile names are shortened, never quoted whole
            continue
        assert {mapping[n] for n in io.inputs} == set(inputs)
        assert all(mapping[n] in outputs for n in io.outputs)
