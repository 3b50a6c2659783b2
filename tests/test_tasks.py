"""The task registry and ``rnnkit.load``: any trained run's loaded model, found from the run folder."""

from __future__ import annotations

import hashlib
import json

import pytest
from tests.conftest import data_dir
from tests.helpers import ensemble_args, sentiment_file, text_corpus

import rnnkit
from rnnkit.cli import main
from rnnkit.errors import CheckpointError
from rnnkit.tasks import TASKS, task_of
from rnnkit.tasks.classify import LoadedEnsemble
from rnnkit.tasks.forecast import LoadedForecaster
from rnnkit.tasks.lm import LoadedLM, load_lm

TINY = ["--preset", "tiny", "--precision", "fp32", "--device", "cpu", "--quiet", "--sample-length", "0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    shared_data = data_dir()
    root = tmp_path_factory.mktemp("runs")
    source = text_corpus(root / "t.txt", 12_000)
    assert main(["train", str(source), "--out", str(root / "lm"), *TINY, "--max-steps", "6"]) == 0
    air = shared_data / "timeseries" / "airline-passengers.csv"
    args = ["forecast", "train", str(air), "--column", "Passengers", "--out", str(root / "air")]
    assert main([*args, "--max-steps", "6", "--quiet"]) == 0
    train = sentiment_file(root / "train.tsv", rows=80)
    assert main(ensemble_args(train, root / "ens", "--members", "2", "--max-steps", "4")) == 0
    return root


def test_every_task_the_checkpoints_name_is_registered():
    assert set(TASKS) == {"lm", "classify", "tag", "forecast", "speech", "caption"}
    assert all(spec.name == name for name, spec in TASKS.items())


def test_load_finds_the_task_and_returns_its_loaded_model(runs):
    model = rnnkit.load(runs / "lm")
    assert isinstance(model, LoadedLM) and task_of(runs / "lm") == "lm"
    reference = load_lm(runs / "lm")  # the same weights as the task's own loader
    for key, value in reference.model.state_dict().items():
        assert (model.model.state_dict()[key] == value).all()
    assert isinstance(rnnkit.load(runs / "air", "last"), LoadedForecaster)
    ensemble = rnnkit.load(runs / "ens")
    assert isinstance(ensemble, LoadedEnsemble) and len(ensemble.members) == 2
    assert ensemble.predict(["a good film", "an awful film"]).shape == (2, 2)


def test_a_run_of_an_unknown_task_is_refused(runs, tmp_path):
    import shutil

    run = tmp_path / "lm"
    shutil.copytree(runs / "lm", run)
    manifest = json.loads((run / "manifest.json").read_text())
    name = manifest["best"]
    config = json.loads((run / name / "config.json").read_text())
    config["task"] = "os.system"
    data = json.dumps(config).encode()
    (run / name / "config.json").write_bytes(data)
    manifest["checkpoints"][name]["config.json"] = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
    }
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"task 'os\.system', which this rnnkit does not know"):
        rnnkit.load(run)
    with pytest.raises(CheckpointError, match="no such run folder"):
        rnnkit.load(tmp_path / "absent")
