"""Files of every earlier record version read in today's form through the public loaders,
and files of a later datadam refused in one line (datadam.records).

The version-1 files are committed under tests/fixtures/records/ (how each was made: the
README there)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import datadam
from datadam.cli import app
from datadam.errors import ConfigError, DatadamError
from datadam.evaluate import EvaluationResult
from datadam.files import datadam_metadata, write_json
from datadam.records import RecordVersionError, current_version, migrate, schema_version
from datadam.synthetic import SyntheticSet, load_tensors, save_tensors
from datadam.training import TrainConfig, TrainingCheckpoint

FIXTURES = Path(__file__).parent / "fixtures" / "records"
SET = FIXTURES / "synthetic_v1.safetensors"
CHECKPOINT = FIXTURES / "checkpoint_v1.safetensors"
EVALUATION = FIXTURES / "evaluation_v1.json"
# what version 1 left out, as today's form has it
THEN = {"attention_power": 4.0, "bn_statistics": "class"}
NETWORKS = {"net_norm": "batchnorm", "net_pooling": "avgpooling", "net_width": 16}


def tiny_data() -> tuple[torch.Tensor, torch.Tensor]:
    """The images the fixtures were made from (make_v1_fixtures.py)."""
    g = torch.Generator().manual_seed(0)
    return torch.rand(6, 1, 8, 8, generator=g), torch.tensor([0, 0, 0, 1, 1, 1])


def raw_metadata(path: Path) -> dict:
    return load_tensors(path)[1]


def test_the_fixtures_are_of_version_1():
    assert "schema" not in raw_metadata(SET) and "schema" not in raw_metadata(CHECKPOINT)
    assert "schema" not in json.loads(EVALUATION.read_text())
    assert {current_version(kind) for kind in ("synthetic", "checkpoint", "evaluation")} == {2}


def test_a_version_1_set_loads_in_todays_form_and_saves_as_version_2(tmp_path):
    syn = SyntheticSet.load(SET)
    config = syn.metadata["config"]
    assert syn.metadata["schema"] == 2
    assert {k: config[k] for k in THEN} == THEN
    # the choice of one width is the fixed option it is
    assert config["model_options"] == NETWORKS and config["model_choices"] == {}
    assert syn.describe().startswith("datadam p = 4, IPC 1, 2 iterations")
    assert "per-class BatchNorm statistics" in syn.describe()
    assert datadam_metadata(SET)["config"] == config  # the header-only reader agrees
    again = SyntheticSet.load(syn.save(tmp_path / "again.safetensors"))
    written = raw_metadata(tmp_path / "again.safetensors")
    assert written["schema"] == 2 and {k: written["config"][k] for k in THEN} == THEN
    assert again.metadata == syn.metadata and again.sha256() == syn.sha256()


def test_a_version_1_checkpoint_loads_and_resumes_under_its_settings(tmp_path):
    partial = SyntheticSet.load(CHECKPOINT)
    assert partial.metadata["in_progress"]["iteration"] == 2
    assert partial.metadata["wall_time_s"] == 0.0 and partial.loss_terms == {}
    assert {k: partial.metadata["config"][k] for k in THEN} == THEN
    checkpoint = shutil.copy(CHECKPOINT, tmp_path / "run.ckpt.safetensors")
    recipe = dict(method="datadam", ipc=1, batch_real=2, model_choices={"net_width": [16]},
                  device="cpu", progress=False, checkpoint=checkpoint, resume=True, iterations=3)
    with pytest.raises(ConfigError, match="settings differ.*attention_power.*bn_statistics"):
        datadam.distill(tiny_data(), **recipe)
    resumed = datadam.distill(tiny_data(), **recipe, **THEN)
    assert resumed.metadata["iterations_done"] == 3 and resumed.metadata["resumed_at_iteration"] == 2
    assert len(resumed.metadata["loss_history"]) == 3
    assert resumed.loss_terms == {}  # version 1 recorded none, so the rest of the run records none
    assert raw_metadata(Path(checkpoint))["schema"] == 2  # the resumed run writes today's form


def test_a_checkpoint_without_normalisation_says_to_resume_it(tmp_path):
    tensors, meta = load_tensors(CHECKPOINT)
    del meta["mean"], meta["std"]
    save_tensors(tmp_path / "c.safetensors", tensors, meta)
    assert migrate("checkpoint", meta)["mean"] is None
    with pytest.raises(DatadamError, match="predates recorded normalisation.*--resume"):
        SyntheticSet.load(tmp_path / "c.safetensors")


def test_a_version_1_evaluation_loads_in_todays_form_and_saves_as_version_2(tmp_path):
    result = EvaluationResult.load(EVALUATION)
    settings = result.settings
    assert settings["train"]["precision"] == "fp32" and settings["train"]["compile"] is False
    assert TrainConfig(**settings["train"]).key() == settings["train"]
    config = settings["synthetic"]["config"]
    assert {k: config[k] for k in THEN} == THEN and config["model_options"] == NETWORKS
    assert settings["ipc"] == 1  # images stored per class; version 1 counted the 4 decoded ones
    described = result.describe_set()
    assert described.startswith("datadam p = 4, IPC 1 x factor 2 = 4 per class, 2 iterations")
    assert "per-class BatchNorm statistics" in described
    saved = write_json(tmp_path / "again.json", result.to_dict())
    assert json.loads(saved.read_text())["schema"] == 2
    again = EvaluationResult.load(saved)
    assert again.settings == settings and again.runs == result.runs
    # one evaluation, whichever version wrote it: the two merge as parts of one
    assert EvaluationResult.from_dict(json.loads(EVALUATION.read_text())).settings == settings


def test_a_network_save_of_version_1_resumes(tmp_path):
    """A save keyed before ``precision`` and ``compile`` existed is of an fp32 eager network."""
    config = TrainConfig(epochs=4)
    earlier = {k: v for k, v in config.key().items() if k not in ("precision", "compile")}
    save = TrainingCheckpoint(tmp_path / "net.pt", key="k")
    torch.save({"identity": {"key": "k", "seed": 0, "train": earlier}, "network": {}, "epoch": 2},
               save.path)
    assert save.load({"key": "k", "seed": 0, "train": config.key()})["epoch"] == 2
    assert save.load({"key": "k", "seed": 0, "train": TrainConfig(epochs=4, precision="bf16").key()}) is None


def newer(record: dict) -> dict:
    return {**record, "schema": 99}


def test_a_record_of_a_later_datadam_is_refused_by_every_loader(tmp_path):
    tensors, meta = load_tensors(SET)
    save_tensors(tmp_path / "s.safetensors", tensors, newer(meta))
    tensors, meta = load_tensors(CHECKPOINT)
    save_tensors(tmp_path / "c.safetensors", tensors, newer(meta))
    (tmp_path / "e.json").write_text(json.dumps(newer(json.loads(EVALUATION.read_text()))))
    for path in ("s.safetensors", "c.safetensors"):
        with pytest.raises(RecordVersionError, match=f"{path}: this .* schema version 99, newer"):
            SyntheticSet.load(tmp_path / path)
        with pytest.raises(RecordVersionError, match="upgrade datadam"):
            datadam_metadata(tmp_path / path)
    with pytest.raises(RecordVersionError, match="e.json: this evaluation .* schema version 99"):
        EvaluationResult.load(tmp_path / "e.json")
    torch.save({"identity": {"key": "k"}, "network": {}, "schema": 99}, tmp_path / "net.pt")
    with pytest.raises(RecordVersionError):
        TrainingCheckpoint(tmp_path / "net.pt", key="k").load({"key": "k"})
    with pytest.raises(RecordVersionError, match="not a positive integer"):
        schema_version({"schema": "2"})


def test_the_command_line_says_so_in_one_line(tmp_path):
    tensors, meta = load_tensors(SET)
    save_tensors(tmp_path / "s.safetensors", tensors, newer(meta))
    result = CliRunner().invoke(app, ["show", str(tmp_path / "s.safetensors")])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and "upgrade datadam" in lines[0], lines
