"""Two-process DDP on CPU (gloo): the ranks stay identical and equal one process over the same batch."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file
from tests.helpers import spawned_rank, text_corpus, tiny_config

from rnnkit.tasks.lm import SPEC as LM
from rnnkit.tasks.lm import load_lm
from rnnkit.train.run import run

STEPS = 12


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def config_for(source: Path, batch_size: int):
    config = tiny_config(
        source, max_steps=STEPS, eval_interval=5, checkpoint_interval=5, batch_size=batch_size
    )
    config.model.num_layers = 2
    config.train.threads = 1
    return config


def _rank(rank: int, world: int, port: int, source: str, out: str) -> None:
    with spawned_rank(rank, world, port):

        def dump(trainer):
            if trainer.step == STEPS:
                state = {k: v.contiguous() for k, v in trainer.model.state_dict().items()}
                save_file(state, Path(out) / f"rank{rank}.safetensors")

        run(LM, config_for(Path(source), 2), Path(out) / "run", on_step=dump)


def test_two_ranks_stay_identical_and_equal_one_process(tmp_path):
    source = text_corpus(tmp_path / "t.txt", 20_000)
    mp.spawn(_rank, args=(2, free_port(), str(source), str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key  # DDP: the same averaged gradient everywhere

    run(LM, config_for(source, 4), tmp_path / "single")  # one process, the same global batch of 4 rows
    single = load_lm(tmp_path / "single", "last").model.state_dict()
    saved = load_lm(tmp_path / "run", "last").model.state_dict()
    for key in single:
        torch.testing.assert_close(rank0[key], single[key], rtol=0, atol=2e-5)
        torch.testing.assert_close(saved[key], rank0[key], rtol=0, atol=0)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["last"] == f"ckpt-{STEPS:06d}"


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    launcher = Path(sys.executable).with_name("torchrun")
    if not launcher.exists():
        pytest.skip("torchrun is not installed beside this python")  # pragma: no cover
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"),
    }
    return subprocess.run(
        [str(launcher), "--standalone", "--nproc-per-node", "2", "-m", "rnnkit", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_torchrun_trains_resumes_and_matches_one_process(tmp_path):
    source = text_corpus(tmp_path / "t.txt", 20_000)
    flags = ["--preset", "tiny", "--num-layers", "2", "--precision", "fp32", "--device", "cpu", "--quiet"]
    flags += ["--eval-interval", "5", "--sample-length", "0", "--threads", "1", "--val-fraction", "0.1"]
    flags += ["--schedule", "constant", "--warmup-steps", "0"]  # a schedule that does not depend on max-steps
    half = torchrun(
        "train", str(source), "--out", "ddp", *flags, "--batch-size", "2", "--max-steps", "7", cwd=tmp_path
    )
    assert half.returncode == 0, half.stderr[-2000:]
    trainer_json = json.loads((tmp_path / "ddp" / "ckpt-000007" / "trainer.json").read_text())
    assert trainer_json["world_size"] == 2
    shutil.copytree(tmp_path / "ddp", tmp_path / "ddp-copy")
    rest = torchrun("train", "--resume", "ddp", "--max-steps", str(STEPS), "--quiet", cwd=tmp_path)
    assert rest.returncode == 0, rest.stderr[-2000:]

    from rnnkit.cli import main

    assert (
        main(
            [
                "train",
                str(source),
                "--out",
                str(tmp_path / "one"),
                *flags,
                "--batch-size",
                "4",
                "--max-steps",
                str(STEPS),
            ]
        )
        == 0
    )
    a = load_lm(tmp_path / "ddp", "last").model.state_dict()
    b = load_lm(tmp_path / "one", "last").model.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=2e-5)

    # the data position and the carried state of both ranks came back: resuming with one process is refused
    code = main(["train", "--resume", str(tmp_path / "ddp-copy"), "--max-steps", str(STEPS), "--quiet"])
    assert code == 2
