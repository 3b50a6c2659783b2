"""Every kind of bad input: its exit code, its one-line message, and that no file was changed.

Each case runs the CLI in a workspace folder that holds a trained run and some input files; a
snapshot of every file's bytes before and after must be equal (no file written, changed or removed).
"""

from __future__ import annotations

import errno
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from tests.helpers import text_corpus

from rnnkit.cli import main

TINY = ["--preset", "tiny", "--precision", "fp32", "--device", "cpu", "--quiet"]


def snapshot(root: Path) -> dict[str, str]:
    """Every path under root with the sha256 of its bytes ('dir' for folders)."""
    return {
        str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A workspace with a trained run and one file per kind of bad input."""
    root = tmp_path_factory.mktemp("bad")
    source = text_corpus(root / "good.txt", 12_000)
    code = main(["train", str(source), "--out", str(root / "run"), *TINY, "--max-steps", "20"])
    assert code == 0
    (root / "empty.txt").write_bytes(b"")
    (root / "binary.bin").write_bytes(bytes(range(256)) * 40)
    (root / "latin1.txt").write_bytes(("café crème brûlée, déjà vu. " * 400).encode("latin-1"))
    (root / "small.txt").write_text("hello world.\n" * 12)
    (root / "notes").mkdir()
    (root / "notes" / "keep.txt").write_text("a file the user cares about")
    return root


@pytest.fixture
def workspace(pristine, tmp_path, monkeypatch):
    root = tmp_path / "ws"
    shutil.copytree(pristine, root)
    monkeypatch.chdir(root)
    return root


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> bool:
    return err.startswith("rnnkit: error: ") and err.count("\n") == 1 and "Traceback" not in err


BAD = [
    # missing, empty, binary and non-UTF-8 input
    (["train", "absent.txt", "--out", "new", *TINY], 3, "no such file"),
    (["train", "empty.txt", "--out", "new", *TINY], 3, "empty.txt"),
    (["train", "binary.bin", "--out", "new", *TINY], 3, "binary.bin"),
    (["train", "latin1.txt", "--out", "new", *TINY], 3, "--encoding"),
    (["train", "good.txt", "--out", "new", *TINY, "--encoding", "klingon"], 2, "klingon"),
    (["train", "good.txt", "--out", "new", *TINY, "--errors", "shrug"], 2, "errors"),
    (["eval", "run", "absent.txt"], 3, "no such file"),
    (["eval", "run", "binary.bin"], 3, "binary.bin"),
    (["eval", "run", "latin1.txt"], 3, "--encoding"),
    (["eval", "run", "empty.txt"], 3, "empty.txt"),
    # a corpus too small for one batch
    (["train", "small.txt", "--out", "new", *TINY, "--batch-size", "32", "--seq-len", "64"], 3, "too small"),
    # out-of-range flags
    (["train", "good.txt", "--out", "new", *TINY, "--lr", "-1"], 2, "lr"),
    (["train", "good.txt", "--out", "new", *TINY, "--dropout", "1.5"], 2, "dropout"),
    (["train", "good.txt", "--out", "new", *TINY, "--seq-len", "0"], 2, "seq_len"),
    (["train", "good.txt", "--out", "new", *TINY, "--hidden-size", "0"], 2, "hidden_size"),
    (["train", "good.txt", "--out", "new", *TINY, "--val-fraction", "1.5"], 2, "val_fraction"),
    (["train", "good.txt", "--out", "new", *TINY, "--on-nan", "pray"], 2, "on_nan"),
    (["train", "good.txt", "--out", "new", *TINY, "--max-steps", "many"], 2, "max-steps"),
    (["sample", "run", "--temperature", "-1"], 2, "temperature"),
    (["sample", "run", "--top-p", "2"], 2, "--top-p"),
    (["sample", "run", "--top-k", "-3"], 2, "--top-k"),
    (["sample", "run", "--length", "-5"], 2, "--length"),
    (["sample", "run", "--line-chars", "0", "--acrostic", "ab"], 2, "line"),
    (["sample", "run", "--checkpoint", "middle"], 2, "--checkpoint"),
    # runs: absent, not a run, and never replaced without --force or --resume
    (["sample", "absent-run"], 4, "no such run folder"),
    (["sample", "notes"], 4, "manifest.json"),
    (["train", "good.txt", "--out", "run", *TINY], 2, "--force"),
    (["train", "good.txt", "--out", "notes", "--force", *TINY], 2, "notes"),
    (["train", "--resume", "notes"], 4, "notes"),
]


@pytest.mark.parametrize(("args", "code", "message"), BAD, ids=[" ".join(c[0][:3]) for c in BAD])
def test_bad_input_changes_nothing(workspace, capsys, args, code, message):
    before = snapshot(workspace)
    got, _out, err = run_cli(capsys, *args)
    assert got == code, err
    assert one_line(err), err
    assert message in err, err
    assert snapshot(workspace) == before


@pytest.mark.parametrize("how", [["--encoding", "latin-1"], ["--errors", "replace"]])
def test_encoding_flags_read_what_strict_utf8_refuses(workspace, capsys, how):
    code, _, err = run_cli(capsys, "train", "latin1.txt", "--out", "l1", *TINY, "--max-steps", "3", *how)
    assert code == 0, err
    vocab = json.loads((workspace / "l1" / "ckpt-000003" / "config.json").read_text())["vocab"]
    assert ("é" in vocab["tokens"]) == (how[0] == "--encoding")
    code, out, err = run_cli(capsys, "eval", "l1", "latin1.txt", "--json", *how)
    assert code == 0, err and json.loads(out)["nats_per_char"] > 0


def test_unknown_prime_characters_are_a_warning_and_change_nothing(workspace, capsys):
    before = snapshot(workspace)
    code, out, err = run_cli(capsys, "sample", "run", "--prime", "猫 the", "--length", "5", "--seed", "0")
    assert code == 0 and out.startswith("猫 the")
    assert err.count("\n") == 1 and "'猫' (U+732B)" in err
    assert snapshot(workspace) == before


def test_corrupt_checkpoint_is_refused_and_left_alone(workspace, capsys):
    weights = workspace / "run" / "ckpt-000020" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-7] ^= 0x10
    weights.write_bytes(bytes(data))
    before = snapshot(workspace)
    for args in (["sample", "run", "--checkpoint", "last"], ["train", "--resume", "run", *TINY[-1:]]):
        code, _, err = run_cli(capsys, *args)
        assert code == 4 and one_line(err) and "checksum" in err, err
    assert snapshot(workspace) == before


def test_full_disk_while_saving_keeps_the_previous_checkpoint(workspace, capsys, monkeypatch):
    import rnnkit.train.checkpoint as ck

    run = workspace / "run"
    kept = {k: v for k, v in snapshot(workspace).items() if k.startswith("run/ckpt-000020")}

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck.os, "fsync", full_disk)
    code, _, err = run_cli(
        capsys, "train", "--resume", "run", "--max-steps", "40", "--checkpoint-interval", "10", "--quiet"
    )
    monkeypatch.undo()
    assert code == 1 and one_line(err) and "No space left on device" in err, err
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["last"] == "ckpt-000020"
    assert {k: v for k, v in snapshot(workspace).items() if k.startswith("run/ckpt-000020")} == kept
    assert not list(run.glob(".tmp*")) and not (run / "ckpt-000030").exists()
    code, _, err = run_cli(capsys, "sample", run, "--checkpoint", "last", "--length", "5")
    assert code == 0, err


def test_nan_loss_exits_5_with_one_line_and_the_last_good_checkpoint(workspace, capsys, monkeypatch):
    import rnnkit.tasks.lm as lm

    real, calls = lm.LMTask.training_loss, {"n": 0}

    def poisoned(self, model, batch, carry):
        calls["n"] += 1
        loss, state, count = real(self, model, batch, carry)
        return (loss * float("nan") if calls["n"] == 3 else loss), state, count

    monkeypatch.setattr(lm.LMTask, "training_loss", poisoned)
    kept = {k: v for k, v in snapshot(workspace).items() if k.startswith("run/ckpt-000020")}
    code, _, err = run_cli(capsys, "train", "--resume", "run", "--max-steps", "40", "--quiet")
    assert code == 5 and one_line(err) and "nan at step 23" in err, err
    assert json.loads((workspace / "run" / "manifest.json").read_text())["last"] == "ckpt-000020"
    assert {k: v for k, v in snapshot(workspace).items() if k.startswith("run/ckpt-000020")} == kept
