"""Inputs that are there but hold nothing usable, refused with one line naming them before any model loads: a
dataset folder with no rows (`dramatis train`, `dramatis publish --dry-run`), a model folder without a tokenizer
(any command that takes a model folder)."""

import pytest

from personas.errors import DramatisError
from synth.dataset import write_dataset
from synth.models import resolve_model
from synth.publish import build_folder
from tests.helpers import run_cli


@pytest.fixture
def empty_dataset(tmp_path):
    """A run's dataset folder as the pipeline writes it when curation kept nothing: dataset_info.json, no data."""
    folder = tmp_path / "run" / "dataset"
    write_dataset(folder, [], [], [])
    return folder


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return lines[0]


@pytest.mark.cli
def test_train_on_a_dataset_without_rows_exits_2_before_any_model_loads(empty_dataset, tmp_path):
    out = tmp_path / "train"
    result = run_cli("train", "train/recipes/demo-lora.yaml", f"data={empty_dataset}", f"out={out}", timeout=300)
    assert f"data={empty_dataset}: no training rows" in one_error_line(result)
    assert not out.exists()


def test_publish_of_a_run_without_rows_is_refused_and_writes_no_folder(empty_dataset):
    run = empty_dataset.parent
    (run / "split").mkdir()
    (run / "split" / "manifest.json").write_text("{}")
    with pytest.raises(DramatisError, match="the dataset has no rows .* nothing to publish"):
        build_folder(run, run / "hub")
    assert not (run / "hub").exists()


@pytest.mark.parametrize("present", [[], ["tokenizer_config.json"], ["tokenizer_config.json", "chat_template.jinja"]])
def test_a_model_folder_without_a_tokenizer_is_refused_naming_it(tmp_path, present):
    model = tmp_path / "merged"
    model.mkdir()
    for name in ["config.json", *present]:
        (model / name).write_text("{}")
    with pytest.raises(DramatisError) as exc:
        resolve_model(str(model))
    assert str(exc.value).startswith(f"backend.model={model}: the folder has no tokenizer (tokenizer.json or")


@pytest.mark.parametrize("tokenizer", ["tokenizer.json", "tokenizer.model", "vocab.json"])
def test_a_model_folder_with_a_tokenizer_file_is_accepted(tmp_path, tokenizer):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / tokenizer).write_text("{}")
    assert resolve_model(str(model)) == str(model)
