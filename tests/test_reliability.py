"""A training process killed with SIGKILL at random moments, resumed each time, ends where an
uninterrupted run of the same seed ends (issue: nothing lost, no surprises)."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import torch
from tests.helpers import text_corpus

from rnnkit.tasks.lm import load_lm

STEPS = 400


def train_command(source, out):
    return [
        sys.executable, "-m", "rnnkit", "train", str(source), "--out", str(out), "--preset", "tiny",
        "--max-steps", str(STEPS), "--checkpoint-interval", "10", "--eval-interval", "100",
        "--hidden-size", "128", "--batch-size", "8", "--seq-len", "32",
        "--sample-length", "0", "--precision", "fp32", "--device", "cpu", "--threads", "1", "--quiet",
        "--dropout", "0.1",
    ]  # fmt: skip


def resume_command(run):
    return [sys.executable, "-m", "rnnkit", "train", "--resume", str(run), "--quiet"]


def last_step(run):
    try:
        return int(json.loads((run / "manifest.json").read_text())["last"].split("-")[1])
    except (OSError, ValueError, KeyError):
        return -1


def test_sigkill_at_random_moments_then_resume_equals_uninterrupted(tmp_path):
    source = text_corpus(tmp_path / "t.txt", 20_000)
    straight = tmp_path / "straight"
    subprocess.run(train_command(source, straight), check=True, capture_output=True, timeout=300)

    run = tmp_path / "killed"
    rng = random.Random(1234)
    kills = 0
    command = train_command(source, run)
    while kills < 5:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        start_step = max(last_step(run), 0)
        deadline = time.monotonic() + 120
        # wait until this process has written at least one new checkpoint, then kill at a random moment
        while last_step(run) <= start_step and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is not None:  # it finished before we could kill it
            break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        command = resume_command(run)
    assert kills == 5, "the run finished before it could be killed five times"
    if last_step(run) < STEPS:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    assert last_step(run) == STEPS
    a, b = load_lm(straight, "last").model.state_dict(), load_lm(run, "last").model.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    assert not list(run.glob(".tmp*"))
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps)
