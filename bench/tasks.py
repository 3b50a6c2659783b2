"""Sequence tasks on real data: train each within a time budget, then score the held-out test split.

Classification (issue #4, part 1):

- SST-2 (English movie-review sentences): trained on train.tsv, validated on dev.tsv, scored on the
  labelled test.tsv; a BiLSTM from random embeddings. Target: test accuracy >= 0.83.
- ChnSentiCorp hotel reviews (Chinese, characters as tokens): a fixed 80/20 split by seed 0 (the 80%
  is further cut 90/10 for validation inside training); scored on the 20%. Target: accuracy >= 0.89.

Each dataset is trained twice, with ``--pool last`` (the final states, the tutorial's model) and with
``--pool mean``, side by side. Budgets are CPU minutes of training per run (``--minutes``; the issue
allows 20). The test split is only ever scored, never used to choose anything.

    .venv/bin/python bench/tasks.py [--minutes 20] [--only sst2,chnsenticorp] [--pools last,mean]

Prints a table and one JSON object. Not a test.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import data_dir, machine


def rnnkit(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "rnnkit", *args], capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"rnnkit {' '.join(args[:3])} failed:\n{proc.stderr[-3000:]}")
    return proc


def split_chnsenticorp(work: Path) -> tuple[Path, Path]:
    """The fixed 80/20 split (seed 0) of the 7,766 hotel reviews, written as two CSV files."""
    source = data_dir() / "sentiment/chnsenticorp_htl/ChnSentiCorp_htl_all.csv"
    with open(source, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    order = list(range(len(body)))
    random.Random(0).shuffle(order)
    cut = int(0.8 * len(order))
    paths = []
    for name, part in (("train", order[:cut]), ("test", order[cut:])):
        path = work / f"chnsenticorp_{name}.csv"
        with open(path, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(body[i] for i in sorted(part))
        paths.append(path)
    return paths[0], paths[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="training budget per run")
    parser.add_argument("--only", default="sst2,chnsenticorp")
    parser.add_argument("--pools", default="last,mean")
    parser.add_argument("--work", type=Path, help="keep the runs in this folder")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="rnnkit-tasks-"))
    work.mkdir(parents=True, exist_ok=True)
    sst = data_dir() / "sentiment/sst2"
    hotel_train, hotel_test = split_chnsenticorp(work)
    datasets = {
        "sst2": {
            "train": [str(sst / "train.tsv"), "--val", str(sst / "dev.tsv")],
            "test": sst / "test.tsv",
            "columns": ["--text-column", "1", "--label-column", "0"],
            "target": 0.83,
        },
        "chnsenticorp": {
            "train": [str(hotel_train)],
            "test": hotel_test,
            "columns": ["--text-column", "review", "--label-column", "label"],
            "target": 0.89,
        },
    }
    print(f"# {machine()}; {args.minutes:g} minutes of training per run")
    print(
        f"{'dataset':13} {'pool':5} {'steps':>6} {'minutes':>7} {'test acc':>9} {'macro-F1':>9} {'target':>7}"
    )
    rows = []
    for name in args.only.split(","):
        spec = datasets[name]
        for pool in args.pools.split(","):
            run = work / f"{name}-{pool}"
            started = time.perf_counter()
            rnnkit(
                "classify", "train", *spec["train"], *spec["columns"], "--out", str(run), "--force",
                "--pool", pool, "--max-minutes", str(args.minutes), "--quiet",
            )  # fmt: skip
            wall = (time.perf_counter() - started) / 60
            result = json.loads(
                rnnkit("classify", "eval", str(run), str(spec["test"]), *spec["columns"], "--json").stdout
            )
            manifest = json.loads((run / "manifest.json").read_text())
            steps = int(manifest["last"].split("-")[1])
            row = {
                "dataset": name, "pool": pool, "steps": steps, "wall_minutes": round(wall, 1),
                "test_accuracy": round(result["accuracy"], 4), "test_macro_f1": round(result["macro_f1"], 4),
                "best_checkpoint": result["checkpoint"], "target_accuracy": spec["target"],
            }  # fmt: skip
            rows.append(row)
            print(
                f"{name:13} {pool:5} {steps:>6} {wall:>7.1f} {result['accuracy']:>9.4f} "
                f"{result['macro_f1']:>9.4f} {spec['target']:>7}",
                flush=True,
            )
    print(json.dumps({"machine": machine(), "minutes": args.minutes, "rows": rows}))


if __name__ == "__main__":
    main()
