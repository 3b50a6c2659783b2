"""Peak resident memory of every task's default ``train``, fp32 and bf16 side by side.

    .venv/bin/python bench/memory.py                 # 1 minute each, every task, both precisions
    .venv/bin/python bench/memory.py --minutes 0.5 --only tag,classify

Each run is a child process (``rnnkit TASK train ... --max-minutes M``) whose peak resident set size is
read from the kernel when it exits (``wait4``'s ``ru_maxrss``); the steps it trained come from its
metrics.jsonl. bf16 runs only where the CPU computes it natively (avx512_bf16 or AMX), as
``--precision auto`` would choose; elsewhere the row says so. Prints the CPU flags that matter.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_flags, data_dir, machine


def commands(data: Path) -> dict[str, list[str]]:
    """Each task's train command with its defaults, as the README gives it."""
    return {
        "lm": ["train", str(data / "tinyshakespeare" / "input.txt")],
        "classify": ["classify", "train", str(data / "sentiment" / "sst2" / "train.tsv"),
                     "--text-column", "1", "--label-column", "0"],
        "tag": ["tag", "train", str(data / "seqlabel" / "cws_sxu" / "train.txt"), "--format", "segmented"],
        "forecast": ["forecast", "train", str(data / "timeseries" / "airline-passengers.csv"), "--column",
                     "Passengers"],
        "speech": ["speech", "train", str(data / "fsdd" / "recordings")],
        "caption": ["caption", "train", str(data / "flickr8k_mini" / "images"),
                    str(data / "flickr8k_mini" / "captions.txt")],
    }  # fmt: skip


def run(task: str, args: list[str], precision: str, minutes: float, out: Path) -> dict:
    argv = [
        sys.executable,
        "-m",
        "rnnkit",
        *args,
        "--out",
        str(out),
        "--max-minutes",
        str(minutes),
        "--quiet",
    ]
    argv += ["--set", f"train.precision={precision}"]
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    error = proc.stderr.read().decode(errors="replace").strip().splitlines() if proc.stderr else []
    steps = 0
    for target in [out, *sorted(out.glob("member-*"))]:
        for line in (
            (target / "metrics.jsonl").read_text().splitlines() if (target / "metrics.jsonl").exists() else []
        ):
            steps = max(steps, json.loads(line).get("step", 0))
    return {
        "task": task,
        "precision": precision,
        "peak_rss_mb": round(usage.ru_maxrss / 1024),  # ru_maxrss is in KB on Linux
        "steps": steps,
        "seconds": round(time.monotonic() - started, 1),
        "exit": os.waitstatus_to_exitcode(status),
        **({"error": error[-1]} if error and os.waitstatus_to_exitcode(status) else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="Training budget of each run.")
    parser.add_argument("--only", default="", help="Comma-separated tasks (default: all six).")
    args = parser.parse_args()
    flags = cpu_flags()
    native_bf16 = "avx512_bf16" in flags or "amx_bf16" in flags
    print(f"# {machine()}; CPU flags: {' '.join(flags)}; bf16 {'native' if native_bf16 else 'not native'}")
    wanted = [t for t in args.only.split(",") if t] or list(commands(data_dir()))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in wanted:
            for precision in ("fp32", "bf16"):
                if precision == "bf16" and not native_bf16:
                    rows.append({"task": task, "precision": "bf16", "skipped": "no native bf16 on this CPU"})
                    continue
                row = run(
                    task,
                    commands(data_dir())[task],
                    precision,
                    args.minutes,
                    Path(tmp) / f"{task}-{precision}",
                )
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("\n| task | precision | peak RSS (MB) | steps in the budget |")
    print("|---|---|---|---|")
    for row in rows:
        if "skipped" in row:
            print(f"| {row['task']} | bf16 | {row['skipped']} | |")
        else:
            print(f"| {row['task']} | {row['precision']} | {row['peak_rss_mb']:,} | {row['steps']:,} |")


if __name__ == "__main__":
    main()
