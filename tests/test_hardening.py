"""A run folder from someone else, or a careless command, never runs code, never loses a user's files and
never allocates without bound (issue: hardening).

Each case tampers with a run the test trains itself, and "re-signs" it (rewrites the manifest's checksum
and size of the changed file, which anyone can do). The commands that could allocate run as child
processes under an address-space limit (``LIMIT``), so an unbounded allocation shows as a failure there,
not as a machine out of memory. Every case asserts the exit code, the one-line message, and that no file
outside the run changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.helpers import text_corpus

from rnnkit.cli import main

LIMIT = 3 * 2**30
"""Address space for the child processes: torch and rnnkit take about 0.7 GB of it."""
TINY = ["--preset", "tiny", "--precision", "fp32", "--device", "cpu", "--quiet", "--sample-length", "0"]


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if not p.is_symlink() and not p.is_fifo()
    }


def resign(run: Path, name: str, filename: str) -> None:
    """Rewrite the manifest's record of ``name/filename`` to match the file as it is now."""
    manifest = json.loads((run / "manifest.json").read_text())
    data = (run / name / filename).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    entry = manifest["checkpoints"][name]
    # in the manifest's own format (a bare checksum in manifests written before sizes were recorded)
    entry[filename] = digest if isinstance(entry[filename], str) else {"sha256": digest, "bytes": len(data)}
    (run / "manifest.json").write_text(json.dumps(manifest))


def edit_json(path: Path, change) -> None:
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


def limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


def cli(*args, cwd: Path, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``rnnkit ARGS`` in a child process under the memory limit."""
    return subprocess.run(
        [sys.executable, "-m", "rnnkit", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limited,
        env={**os.environ, **(env or {})},
    )


def one_line(err: str) -> bool:
    return err.startswith("rnnkit: error: ") and err.count("\n") == 1 and "Traceback" not in err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("hard")
    source = text_corpus(root / "text.txt", 12_000)
    args = ["train", str(source), "--out", str(root / "run"), *TINY, "--max-steps", "20"]
    assert main([*args, "--checkpoint-interval", "10", "--eval-interval", "10"]) == 0
    return root


@pytest.fixture
def ws(trained, tmp_path):
    """A copy of the workspace: ``run`` (a trained char-RNN) and ``text.txt``."""
    root = tmp_path / "ws"
    shutil.copytree(trained, root)
    return root


def last(run: Path) -> str:
    return json.loads((run / "manifest.json").read_text())["last"]


def best(run: Path) -> str:
    return json.loads((run / "manifest.json").read_text())["best"]


# -------------------------------------------------------------------------------------------------
# 1. a checkpoint never names code


@pytest.fixture(scope="module")
def caption_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cap")
    assert main(["caption", "make-shapes", str(tmp / "shapes"), "--n", "30", "--size", "32"]) == 0
    args = ["caption", "train", str(tmp / "shapes" / "images"), str(tmp / "shapes" / "captions.csv")]
    args += ["--out", str(tmp / "run"), "--max-steps", "4", "--eval-interval", "4", "--image-size", "32"]
    args += ["--cnn-width", "4", "--hidden-size", "16", "--batch-size", "8", "--quiet"]
    assert main([*args, "--set", "data.min_count=1"]) == 0
    return tmp


def test_a_caption_run_that_names_a_backbone_imports_nothing(caption_run, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(caption_run, ws)
    run = ws / "run"
    for name in {last(run), best(run)}:
        edit_json(
            run / name / "config.json", lambda c: c["config"]["model"].update(backbone="tempfile:mkdtemp")
        )
        resign(run, name, "config.json")
    picture = next((ws / "shapes" / "images").iterdir())
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    before = snapshot(ws)
    for args in (["caption", "predict", run, picture], ["caption", "train", "--resume", run]):
        done = cli(*args, cwd=ws, env={"TMPDIR": str(scratch)})
        assert done.returncode == 4, done.stderr
        assert one_line(done.stderr) and "external backbone 'tempfile:mkdtemp'" in done.stderr
        assert "never imports code" in done.stderr
        assert list(scratch.iterdir()) == []  # mkdtemp was never called
        assert snapshot(ws) == before


# -------------------------------------------------------------------------------------------------
# 3. --force replaces only a folder that is provably a run, holding only what rnnkit wrote


def test_force_never_empties_a_folder_that_is_not_a_run(ws, capsys):
    thesis = ws / "thesis"
    thesis.mkdir()
    (thesis / "config.json").write_text('{"title": "mine"}')
    (thesis / "thesis.tex").write_text("\\documentclass{article}")
    (ws / "run" / "notes.txt").write_text("my notes, kept beside the run")
    before = snapshot(ws)
    for out, words in ((thesis, "not an rnnkit run folder"), (ws / "run", "did not write (notes.txt)")):
        code = main(["train", str(ws / "text.txt"), "--out", str(out), "--force", *TINY, "--max-steps", "2"])
        err = capsys.readouterr().err
        assert code == 2 and one_line(err) and words in err, err
        assert snapshot(ws) == before


# -------------------------------------------------------------------------------------------------
# 4. one training at a time in a run folder


def _wait_for_lock(run: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if f"rnnkit process {proc.pid} " in (run / ".lock").read_text():
                return
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"the first training never held the lock: {proc.communicate()[1]}")


@pytest.mark.parametrize("first", ["new", "resume", "force"])
def test_two_trainings_on_one_folder_one_runs_the_other_is_refused(ws, capsys, first):
    run = ws / "run"
    target = ws / "fresh" if first == "new" else run
    long = ["--max-steps", "100000", "--checkpoint-interval", "5", "--eval-interval", "5"]
    starts = {
        "new": ["train", ws / "text.txt", "--out", target, *TINY, *long],
        "resume": ["train", "--resume", target, *long],
        "force": ["train", ws / "text.txt", "--out", target, "--force", *TINY, *long],
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnkit", *map(str, starts[first])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_lock(target, proc)
        for second in ("new", "resume", "force"):
            args = {
                "new": ["train", str(ws / "text.txt"), "--out", str(target), *TINY, "--max-steps", "3"],
                "resume": ["train", "--resume", str(target), "--max-steps", "3"],
                "force": ["train", str(ws / "text.txt"), "--out", str(target), "--force", *TINY],
            }[second]
            code = main(args)
            err = capsys.readouterr().err
            assert code == 2, (first, second, err)
            assert one_line(err) and f"in use by rnnkit process {proc.pid} " in err, err
        assert proc.poll() is None  # the first one still runs, undisturbed
        deadline = time.monotonic() + 60
        while not (target / "metrics.jsonl").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGINT)  # stops at a step boundary with a checkpoint, exit 130
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    records = [json.loads(line) for line in (target / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records]
    kinds = [(r["step"], "val_loss" in r) for r in records]  # a training and a validation record a step
    assert steps == sorted(steps) and len(kinds) == len(set(kinds))  # one run's metrics, once each
    assert int(last(target).split("-")[1]) >= steps[-1] - 5
    assert not (target / ".lock").exists()  # the lock goes with the process that held it
    assert main(["train", "--resume", str(target), "--max-steps", str(steps[-1] + 2)]) == 0


def test_a_kill_before_the_first_checkpoint_is_started_again(ws, capsys):
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnkit", "train", str(ws / "text.txt"), "--out", str(ws / "k"), *TINY,
         "--max-steps", "100000", "--checkpoint-interval", "100000", "--eval-interval", "100000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (ws / "k" / "config.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.kill()
    proc.wait()
    assert not (ws / "k" / "manifest.json").read_text().count("ckpt-")  # killed before a checkpoint
    code = main(["train", "--resume", str(ws / "k")])
    err = capsys.readouterr().err
    assert code == 4 and one_line(err) and "run the same training command again" in err, err
    args = ["train", str(ws / "text.txt"), "--out", str(ws / "k"), *TINY, "--max-steps", "3"]
    assert main(args) == 0  # no --force needed: the folder held nothing to lose
    assert last(ws / "k") == "ckpt-000003"


def test_a_staging_folder_left_by_a_kill_during_encoding_is_removed(ws):
    stale = ws / ".new.staging-abc123"
    (stale / "data").mkdir(parents=True)
    (stale / "data" / ".train.bin.tmp").write_bytes(b"\0" * 100)
    assert main(["train", str(ws / "text.txt"), "--out", str(ws / "new"), *TINY, "--max-steps", "2"]) == 0
    assert not stale.exists()
    assert sorted(p.name for p in ws.iterdir() if p.name.startswith(".")) == []


# -------------------------------------------------------------------------------------------------
# 5. checkpoint files are lstat'ed, size-checked and hashed in chunks before anything else


@pytest.mark.parametrize("attack", ["symlink-to-dev-zero", "fifo", "sparse-20GB"])
def test_checkpoint_files_that_are_not_what_the_manifest_says(ws, attack):
    run = ws / "run"
    folder = run / best(run)
    if attack == "symlink-to-dev-zero":
        (folder / "config.json").unlink()
        (folder / "config.json").symlink_to("/dev/zero")
        words = "symbolic link"
    elif attack == "fifo":
        (folder / "config.json").unlink()
        os.mkfifo(folder / "config.json")
        words = "not a regular file"
    else:
        with open(folder / "model.safetensors", "r+b") as handle:
            handle.truncate(20 * 2**30)
        words = "does not match its checksum record"
    before = snapshot(ws)
    started = time.monotonic()
    done = cli("sample", run, "--length", "5", cwd=ws, timeout=60)
    assert done.returncode == 4, done.stderr
    assert one_line(done.stderr) and words in done.stderr, done.stderr
    assert time.monotonic() - started < 30
    assert snapshot(ws) == before


def test_a_resigned_sparse_weights_file_is_refused_by_its_header(ws):
    run = ws / "run"
    name = best(run)
    with open(run / name / "model.safetensors", "r+b") as handle:
        handle.truncate(20 * 2**30)
    manifest = json.loads((run / "manifest.json").read_text())  # re-signed: size only (hashing 20 GB
    manifest["checkpoints"][name]["model.safetensors"]["bytes"] = 20 * 2**30  # of zeros takes a minute)
    (run / "manifest.json").write_text(json.dumps(manifest))
    done = cli("sample", run, "--length", "5", cwd=ws, timeout=60)
    assert done.returncode == 4 and one_line(done.stderr), done.stderr
    assert "header does not account for its size" in done.stderr


# -------------------------------------------------------------------------------------------------
# 6. model sizes in config.json are checked against the weights before anything is built


@pytest.mark.parametrize(("field", "value"), [("num_layers", 1_000_000), ("hidden_size", 10**7)])
@pytest.mark.parametrize("command", ["sample", "resume"])
def test_absurd_model_sizes_in_a_resigned_config(ws, field, value, command):
    run = ws / "run"
    for name in {last(run), best(run)}:
        edit_json(run / name / "config.json", lambda c: c["config"]["model"].update({field: value}))
        resign(run, name, "config.json")
    before = snapshot(ws)
    args = ["sample", run, "--length", "5"] if command == "sample" else ["train", "--resume", run]
    started = time.monotonic()
    done = cli(*args, cwd=ws)
    assert done.returncode == 4, done.stderr
    assert one_line(done.stderr) and "does not fit model.safetensors" in done.stderr, done.stderr
    assert time.monotonic() - started < 60
    assert snapshot(ws) == before


def test_serve_refuses_the_same_run_at_start_up(ws):
    from rnnkit.errors import CheckpointError
    from rnnkit.serve.app import ServeConfig, create_app

    run = ws / "run"
    for name in {last(run), best(run)}:
        edit_json(run / name / "config.json", lambda c: c["config"]["model"].update(hidden_size=10**7))
        resign(run, name, "config.json")
    with pytest.raises(CheckpointError, match=r"does not fit model\.safetensors"):
        create_app(ServeConfig(runs=[str(run)]))


# -------------------------------------------------------------------------------------------------
# 7. sampling values: finite; tiny temperatures are greedy; top-p keeps the top token


@pytest.mark.parametrize(("flag", "value"), [("--temperature", "nan"), ("--temperature", "inf"),
                                             ("--top-p", "nan")])  # fmt: skip
def test_non_finite_sampling_values_are_one_line_errors(ws, capsys, flag, value):
    before = snapshot(ws)
    code = main(["sample", str(ws / "run"), flag, value, "--length", "5"])
    err = capsys.readouterr().err
    assert code == 2 and one_line(err) and flag in err and "finite" in err, err
    assert snapshot(ws) == before


def test_tiny_temperature_and_top_p_sample_the_most_likely_text(ws, capsys):
    outputs = []
    for flags in (
        ["--temperature", "0"],
        ["--temperature", "1e-300"],
        ["--top-p", "1e-300", "--temperature", "1"],
    ):
        assert (
            main(["sample", str(ws / "run"), "--prime", "the ", "--length", "40", "--seed", "3", *flags]) == 0
        )
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] == outputs[2] and len(outputs[0]) > 40


# -------------------------------------------------------------------------------------------------
# 8. flags too large to allocate: one line, and nothing left behind


def test_a_model_too_large_for_memory_leaves_no_folder(ws):
    before = snapshot(ws)
    args = ["train", "text.txt", "--out", "big", *TINY, "--max-steps", "2"]
    done = cli(*args, "--hidden-size", "10000000", cwd=ws)
    assert done.returncode == 2 and one_line(done.stderr), done.stderr
    assert "--hidden-size" in done.stderr and "parameters" in done.stderr
    assert snapshot(ws) == before and not (ws / "big").exists()
    assert cli(*args, "--hidden-size", "32", cwd=ws).returncode == 0  # the same command, sized, no --force


# -------------------------------------------------------------------------------------------------
# the weaker cases


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda s: s.pop("step"), "KeyError"),
        (lambda s: s.update(optimizer=["not", "a", "mapping"]), "not a trainer state"),
        (lambda s: s.update(step=["twelve"]), "not a trainer state"),
    ],
    ids=["missing-step", "list-for-mapping", "list-for-number"],
)
def test_malformed_trainer_state_is_a_checkpoint_error(ws, capsys, change, words):
    run = ws / "run"
    edit_json(run / last(run) / "trainer.json", change)
    resign(run, last(run), "trainer.json")
    code = main(["train", "--resume", str(run), "--max-steps", "30", "--quiet"])
    err = capsys.readouterr().err
    assert code == 4 and one_line(err) and words in err, err


def test_a_deeply_nested_trainer_state_is_a_checkpoint_error(ws, capsys):
    run = ws / "run"
    (run / last(run) / "trainer.json").write_text("[" * 200_000 + "]" * 200_000)
    resign(run, last(run), "trainer.json")
    code = main(["train", "--resume", str(run), "--max-steps", "30", "--quiet"])
    err = capsys.readouterr().err
    assert code == 4 and one_line(err) and "not JSON" in err, err


@pytest.mark.parametrize("name", ["../../outside", "ckpt-000010/../..", "/etc"])
def test_checkpoint_names_in_the_manifest_are_never_paths(ws, capsys, name):
    run = ws / "run"
    edit_json(
        run / "manifest.json", lambda m: m.update(last=name, checkpoints={name: {}, **m["checkpoints"]})
    )
    code = main(["sample", str(run), "--checkpoint", "last", "--length", "3"])
    err = capsys.readouterr().err
    assert code == 4 and one_line(err) and "is not a checkpoint name" in err, err


def test_the_encoded_corpus_is_covered_by_the_manifest(ws, capsys):
    run = ws / "run"
    assert set(json.loads((run / "manifest.json").read_text())["data"]) == {
        "corpus.json",
        "train.bin",
        "val.bin",
    }
    tokens = bytearray((run / "data" / "train.bin").read_bytes())
    tokens[100] ^= 1
    (run / "data" / "train.bin").write_bytes(bytes(tokens))
    code = main(["train", "--resume", str(run), "--max-steps", "30", "--quiet"])
    err = capsys.readouterr().err
    assert code == 4 and one_line(err) and "train.bin: checksum mismatch" in err, err


def test_a_corpus_of_replacement_characters_is_refused(ws, capsys):
    (ws / "fffd.txt").write_text("\ufffd" * 5000, encoding="utf-8")
    code = main(["train", str(ws / "fffd.txt"), "--out", str(ws / "f"), *TINY, "--max-steps", "2"])
    err = capsys.readouterr().err
    assert code == 3 and one_line(err) and "U+FFFD" in err and "--encoding" in err, err
    assert not (ws / "f").exists()


def test_a_utf16_file_gets_an_encoding_hint(ws, capsys):
    (ws / "u16.txt").write_bytes(("the cat sat on the mat.\n" * 300).encode("utf-16"))
    code = main(["train", str(ws / "u16.txt"), "--out", str(ws / "u"), *TINY, "--max-steps", "2"])
    err = capsys.readouterr().err
    assert code == 3 and one_line(err) and "--encoding utf-16" in err, err
    args = ["train", str(ws / "u16.txt"), "--out", str(ws / "u"), *TINY, "--max-steps", "2"]
    assert main([*args, "--encoding", "utf-16"]) == 0


def test_hidden_folders_and_binary_files_in_a_corpus_folder_are_skipped(ws, caplog):
    corpus = ws / "project"
    (corpus / ".git").mkdir(parents=True)
    (corpus / ".git" / "index").write_bytes(bytes(range(256)) * 20)
    (corpus / ".git" / "HEAD").write_text("ref: refs/heads/main\n" * 100)
    (corpus / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(500))
    shutil.copy(ws / "text.txt", corpus / "a.txt")
    assert main(["train", str(corpus), "--out", str(ws / "p"), *TINY, "--max-steps", "2"]) == 0
    info = json.loads((ws / "p" / "data" / "corpus.json").read_text())
    assert info["documents"] == 1


# -------------------------------------------------------------------------------------------------
# found in review: what a re-signed manifest can claim is bounded too


def test_a_resigned_manifest_cannot_raise_the_json_ceiling(ws):
    run = ws / "run"
    name = best(run)
    with open(run / name / "config.json", "r+b") as handle:
        handle.truncate(70 * 2**20)  # 70 MB of zeros, over the 64 MB a JSON file of a run may have
    resign(run, name, "config.json")  # size and checksum both rewritten
    done = cli("sample", run, "--length", "5", cwd=ws)
    assert done.returncode == 4 and one_line(done.stderr), done.stderr
    assert "more than the 67,108,864 this file may have" in done.stderr


def test_a_resigned_huge_trainer_state_is_refused_before_it_is_read(ws):
    run = ws / "run"
    name = last(run)
    with open(run / name / "state.safetensors", "r+b") as handle:
        handle.truncate(3 * 2**30)  # sparse: more than the whole address space the child may use
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["checkpoints"][name]["state.safetensors"]["bytes"] = 3 * 2**30
    (run / "manifest.json").write_text(json.dumps(manifest))
    done = cli("train", "--resume", run, "--quiet", cwd=ws)
    assert done.returncode == 4 and one_line(done.stderr), done.stderr
    assert "state.safetensors" in done.stderr


@pytest.mark.parametrize("value", [["ckpt-000020"], {"a": 1}, 7])
def test_a_manifest_whose_last_is_not_a_name(ws, capsys, value):
    run = ws / "run"
    edit_json(run / "manifest.json", lambda m: m.update(last=value))
    code = main(["sample", str(run), "--length", "3"])
    err = capsys.readouterr().err
    assert code == 4 and one_line(err) and "names no listed checkpoint" in err, err


def test_a_lock_file_that_is_a_fifo_neither_hangs_nor_crashes(ws, capsys):
    run = ws / "run"
    os.mkfifo(run / ".lock")
    started = time.monotonic()
    code = main(["train", "--resume", str(run), "--max-steps", "30", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and one_line(err) and "cannot be the run's lock" in err, err
    assert time.monotonic() - started < 20


def test_nothing_is_written_through_a_link_in_a_run_folder(ws, capsys, tmp_path):
    run, outside = ws / "run", tmp_path / "outside"
    outside.mkdir()
    (run / "report.html").symlink_to(outside / "report.html")
    code = main(["inspect", str(run), str(ws / "text.txt"), "--max-chars", "200"])
    err = capsys.readouterr().err
    assert code == 4 and one_line(err) and "holds symbolic links (report.html)" in err, err
    (run / "report.html").unlink()
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").symlink_to(outside / "metrics.jsonl")  # dangling: appending would create it
    code = main(["train", "--resume", str(run), "--max-steps", "30", "--quiet"])
    assert code == 4 and one_line(capsys.readouterr().err)
    (tmp_path / "mine.html").symlink_to(outside / "mine.html")  # --out: never written through either
    (run / "metrics.jsonl").unlink()
    code = main(["inspect", str(run), str(ws / "text.txt"), "--out", str(tmp_path / "mine.html")])
    err = capsys.readouterr().err
    assert code == 2 and one_line(err) and "a symbolic link" in err, err
    assert list(outside.iterdir()) == []


def test_sizes_past_what_a_tensor_can_hold_are_a_usage_error(ws, capsys):
    code = main(["train", str(ws / "text.txt"), "--out", str(ws / "h"), *TINY, "--hidden-size", "3000000000"])
    err = capsys.readouterr().err
    assert code == 2 and one_line(err) and "too large to build" in err, err
    assert not (ws / "h").exists()


def test_a_failed_new_run_removes_the_folders_it_made(ws, capsys):
    (ws / "empty.txt").write_text("")
    code = main(["train", str(ws / "empty.txt"), "--out", str(ws / "a" / "b" / "c"), *TINY])
    assert code == 3 and one_line(capsys.readouterr().err)
    assert not (ws / "a").exists()


def test_a_manifest_written_before_sizes_were_recorded_still_loads(ws, capsys):
    run = ws / "run"

    def bare(manifest):
        for files in manifest["checkpoints"].values():
            for name, record in files.items():
                files[name] = record["sha256"]  # the format of manifests before this session

    edit_json(run / "manifest.json", bare)
    assert main(["sample", str(run), "--length", "20", "--seed", "1"]) == 0
    assert main(["train", "--resume", str(run), "--max-steps", "24", "--quiet"]) == 0


def test_a_data_folder_that_is_a_link_is_refused(ws, capsys, tmp_path):
    run = ws / "run"
    shutil.move(run / "data", tmp_path / "elsewhere")
    (run / "data").symlink_to(tmp_path / "elsewhere")
    code = main(["train", "--resume", str(run), "--max-steps", "30", "--quiet"])
    err = capsys.readouterr().err
    assert code == 4 and one_line(err) and "holds symbolic links (data)" in err, err
