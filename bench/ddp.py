"""DDP on this machine: one process against ``torchrun --nproc-per-node N``, the same global batch.

Trains the same model for the same number of steps on Tiny Shakespeare three ways and prints the
training characters per second of each (from the run's own ``metrics.jsonl``, evaluation excluded):

- one process, all cores (torch's default threads), global batch ``B``;
- one process, one thread, global batch ``B`` (what a single rank would do alone);
- ``torchrun`` with N processes of one thread each, ``B / N`` rows per rank.

    .venv/bin/python bench/ddp.py [--nproc 2] [--batch 32] [--steps 150] [--hidden 256]

Prints a table and one JSON object. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import data_dir, machine


def tokens_per_s(run: Path) -> float:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "tokens_per_s" in r][1:]  # the first window holds the warm-up
    seen = sum(r["tokens_per_s"] for r in rows) / len(rows)
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32, help="global batch (rows)")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--hidden", type=int, default=256)
    args = parser.parse_args()
    text = data_dir() / "tinyshakespeare" / "input.txt"
    work = Path(tempfile.mkdtemp(prefix="rnnkit-ddp-"))
    common = [
        str(text),
        "--preset",
        "small",
        "--hidden-size",
        str(args.hidden),
        "--max-steps",
        str(args.steps),
    ]
    common += ["--eval-interval", str(args.steps), "--sample-length", "0", "--quiet", "--device", "cpu"]
    common += ["--set", "train.log_interval=25"]
    launcher = str(Path(sys.executable).with_name("torchrun"))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    single = [sys.executable, "-m", "rnnkit", "train", *common, "--batch-size", str(args.batch)]
    jobs = {
        "1 process, all cores": single,
        "1 process, 1 thread": [*single, "--threads", "1"],
        f"torchrun {args.nproc} x 1 thread": [
            launcher, "--standalone", "--nproc-per-node", str(args.nproc), "-m", "rnnkit", "train", *common,
            "--batch-size", str(args.batch // args.nproc), "--threads", "1",
        ],
    }  # fmt: skip
    print(f"# {machine()}; LSTM 2x{args.hidden}, global batch {args.batch} x 100, {args.steps} steps")
    rows = []
    for name, command in jobs.items():
        run = work / name.replace(" ", "_").replace(",", "")
        proc = subprocess.run([*command, "--out", str(run)], env=env, capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"{name} failed:\n{proc.stderr[-3000:]}")
        speed = tokens_per_s(run)
        rows.append({"setup": name, "chars_per_s": round(speed)})
        print(f"{name:28} {speed:>10,.0f} chars/s", flush=True)
    base = rows[0]["chars_per_s"]
    for row in rows:
        row["vs_one_process"] = round(row["chars_per_s"] / base, 2)
    print(json.dumps({"machine": machine(), "rows": rows}))


if __name__ == "__main__":
    main()
