import json
import pickle

import pytest
import torch
from tests.helpers import text_corpus, tiny_config

from rnnkit.errors import CheckpointError
from rnnkit.tasks.lm import SPEC as LM
from rnnkit.tasks.lm import load_lm
from rnnkit.train.checkpoint import atomic_write, load_checkpoint, normalise_keys, save_checkpoint
from rnnkit.train.run import run as run_task


@pytest.fixture
def run(tmp_path):
    source = text_corpus(tmp_path / "t.txt", 8_000)
    config = tiny_config(source, max_steps=20, eval_interval=10)
    run_task(LM, config, tmp_path / "run")
    return tmp_path / "run"


def test_run_folder_layout_and_manifest(run):
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["format"] == 1 and manifest["last"] == "ckpt-000020"
    folders = sorted(p.name for p in run.iterdir() if p.name.startswith("ckpt-"))
    assert set(folders) == {manifest["last"], manifest["best"]}
    files = sorted(p.name for p in (run / manifest["last"]).iterdir())
    assert files == ["config.json", "model.safetensors", "state.safetensors", "trainer.json"]
    assert not list(run.glob(".tmp*"))


def test_model_rebuilds_from_checkpoint_alone(run, tmp_path):
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "manifest.json").write_bytes((run / "manifest.json").read_bytes())
    for name in {"ckpt-000020", json.loads((run / "manifest.json").read_text())["best"]}:
        (moved / name).mkdir()
        for f in (run / name).iterdir():
            (moved / name / f.name).write_bytes(f.read_bytes())
    loaded = load_lm(moved, "last")
    assert loaded.vocab.kind == "char" and loaded.model.vocab_size == len(loaded.vocab)


def test_flipped_bit_is_caught_by_the_checksum(run):
    path = run / "ckpt-000020" / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_lm(run, "last")


def test_truncated_file_is_refused(run):
    path = run / "ckpt-000020" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="checksum"):
        load_lm(run, "last")


def test_pickle_is_never_loaded(run):
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickle ran')",))

    path = run / "ckpt-000020" / "model.safetensors"
    path.write_bytes(pickle.dumps(Boom()))
    manifest = json.loads((run / "manifest.json").read_text())
    import hashlib

    manifest["checkpoints"]["ckpt-000020"]["model.safetensors"] = hashlib.sha256(
        path.read_bytes()
    ).hexdigest()
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_lm(run, "last")


def test_other_task_and_other_version_are_refused(run, tmp_path):
    with pytest.raises(CheckpointError, match="not a 'caption' one"):
        load_checkpoint(run, "last", task="caption")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["format"] = 99
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="format 99"):
        load_lm(run)
    with pytest.raises(CheckpointError, match="no such run folder"):
        load_lm(tmp_path / "absent")
    (tmp_path / "plain").mkdir()
    with pytest.raises(CheckpointError, match=r"no manifest\.json"):
        load_lm(tmp_path / "plain")


def test_failed_write_leaves_previous_checkpoint_intact(run, monkeypatch):
    before = load_lm(run, "last").model.state_dict()
    import rnnkit.train.checkpoint as ck

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(
            run,
            99,
            model_state={"w": torch.zeros(2)},
            config={},
            state_tensors={},
            trainer_state={},
            best=True,
        )
    monkeypatch.undo()
    assert json.loads((run / "manifest.json").read_text())["last"] == "ckpt-000020"
    assert not (run / "ckpt-000099").exists() and not list(run.glob(".tmp*"))
    after = load_lm(run, "last").model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "f.json"
    atomic_write(path, b"one")
    atomic_write(path, b"two")
    assert path.read_bytes() == b"two" and [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_wrapper_prefixes_are_stripped():
    state = {"_orig_mod.rnn.weight": torch.ones(1), "module.head.bias": torch.zeros(1)}
    assert sorted(normalise_keys(state)) == ["head.bias", "rnn.weight"]


def test_a_new_runs_corpus_is_read_from_the_run_folder_once_committed(tmp_path):
    """The corpus is encoded into a staging folder and moved into the run folder at commit; the task
    then reads it from there (the staging folder is gone)."""
    source = text_corpus(tmp_path / "t.txt", 8_000)
    seen = []

    def look(trainer):
        corpus = trainer.task.corpus
        seen.append((corpus.folder, len(corpus.tokens("val"))))

    run_task(LM, tiny_config(source, max_steps=2, eval_interval=2), tmp_path / "run", on_step=look)
    assert seen and all(folder == tmp_path / "run" / "data" for folder, _ in seen)
    assert seen[-1][1] > 0 and not list(tmp_path.glob(".run.staging-*"))
