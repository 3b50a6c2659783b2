"""Kill a training run with SIGKILL at random moments, resume it each time, and compare the end.

A char-RNN run (the ``tiny`` preset widened to 128 units, dropout on) is started, killed with SIGKILL
at a random moment after each new checkpoint, and resumed with ``rnnkit train --resume`` until it has
been killed ``--kills`` times; then it runs to the end. Its final weights are compared with an
uninterrupted run of the same seed. Prints, for each kill, the step the process had reached (from
metrics.jsonl) and the step it resumed from, so the work lost per kill is visible.

    .venv/bin/python bench/crash.py [--kills 20] [--steps 1500]

Not a test (tests/test_reliability.py does five kills).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from rnnkit.tasks.lm import load_lm


def last_checkpoint(run: Path) -> int:
    try:
        return int(json.loads((run / "manifest.json").read_text())["last"].split("-")[1])
    except (OSError, ValueError, KeyError):
        return -1


def last_logged(run: Path) -> int:
    steps = [0]
    try:
        for line in (run / "metrics.jsonl").read_text().splitlines():
            try:
                steps.append(int(json.loads(line)["step"]))
            except (ValueError, KeyError):
                continue  # a torn last line
    except OSError:
        pass
    return max(steps)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = tmp / "text.txt"
        words = ["the", "cat", "sat", "on", "a", "mat", "and", "the", "dog", "ran", "far", "away", "home"]
        source.write_text("\n".join(" ".join(rng.choice(words) for _ in range(8)) for _ in range(4000)))
        base = [sys.executable, "-m", "rnnkit", "train"]
        settings = [
            "--preset", "tiny", "--hidden-size", "128", "--batch-size", "8", "--seq-len", "32",
            "--dropout", "0.1", "--max-steps", str(args.steps), "--checkpoint-interval", "10",
            "--eval-interval", "500", "--set", "train.log_interval=1", "--sample-length", "0",
            "--precision", "fp32", "--device", "cpu", "--threads", "1", "--quiet",
        ]  # fmt: skip
        straight, run = tmp / "straight", tmp / "killed"
        subprocess.run([*base, str(source), "--out", str(straight), *settings], check=True)
        command = [*base, str(source), "--out", str(run), *settings]
        lost = []
        while len(lost) < args.kills:
            resumed_from = max(last_checkpoint(run), 0)
            proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while last_checkpoint(run) <= resumed_from and proc.poll() is None:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.5))
            if proc.poll() is not None:
                break
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            reached, saved = last_logged(run), last_checkpoint(run)
            lost.append(reached - saved)
            print(
                f"kill {len(lost):2d}: reached step {reached:5d}, last checkpoint {saved:5d}, "
                f"lost {reached - saved} steps",
                flush=True,
            )
            command = [*base, "--resume", str(run), "--quiet"]
        if last_checkpoint(run) < args.steps:
            subprocess.run(command, check=True)
        a = load_lm(straight, "last").model.state_dict()
        b = load_lm(run, "last").model.state_dict()
        worst = max(float((a[k] - b[k]).abs().max()) for k in a)
        same = all(torch.equal(a[k], b[k]) for k in a)
        print(
            json.dumps(
                {
                    "kills": len(lost),
                    "resumes": len(lost),
                    "steps": args.steps,
                    "steps_lost": lost,
                    "mean_steps_lost": sum(lost) / max(len(lost), 1),
                    "final_weights_identical": same,
                    "max_abs_difference": worst,
                }
            )
        )
        if len(lost) < args.kills or worst > 1e-6:
            sys.exit(1)


if __name__ == "__main__":
    main()
