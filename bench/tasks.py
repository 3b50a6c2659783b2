"""Sequence tasks on real data: train each within a time budget, then score the held-out test split.

Classification (issue #4, part 1):

- SST-2 (English movie-review sentences): trained on train.tsv, validated on dev.tsv, scored on the
  labelled test.tsv; a BiLSTM from random embeddings. Target: test accuracy >= 0.83.
- ChnSentiCorp hotel reviews (Chinese, characters as tokens): a fixed 80/20 split by seed 0 (the 80%
  is further cut 90/10 for validation inside training); scored on the 20%. Target: accuracy >= 0.89.

Each dataset is trained twice, with ``--pool last`` (the final states, the tutorial's model) and with
``--pool mean``, side by side. ``--classify-flags "--members 3"`` trains ensembles instead (the budget
shared out among the members); the steps column is then their sum and the validation column the mean of
the members' best validation accuracies, each on its own held-out rows.

Tagging (part 2), each trained bidirectionally (BiLSTM-CRF) and unidirectionally (forward LSTM-CRF of
the same size), side by side:

- SXU word segmentation: train.txt (validation: 5% of it), scored on test.txt with SIGHAN word F1.
  Target: F1 >= 0.94.
- MSRA NER: a fixed split of the 55,289 sentences (seed 0: the last 10% after shuffling is the test);
  entity F1 by seqeval. Target: F1 >= 0.85.

Forecasting (part 3): airline passengers (log values, seasonal differences, window 12), Melbourne
daily minimum temperatures (levels, window 30) and the S&P 500 daily close (differences, window 20),
each scored on the last 15% of the series against the naive and seasonal-naive forecasts.

Budgets are minutes of training per run (``--minutes``; the issue allows 20; forecasting uses
``--forecast-minutes``). ``--pools``/``--directions`` pick the runs and ``--threads`` caps each run's
CPU threads, so that two invocations can share the machine fairly (say, the bidirectional tagger in
one and the unidirectional in the other, one thread each). The test split is only ever scored, never
used to choose anything.

    .venv/bin/python bench/tasks.py [--minutes 20] [--only sst2,chnsenticorp,sxu,msra,forecast]

Prints a table and one JSON object. Not a test.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import data_dir, machine
from rnnkit.tasks.classify import is_ensemble, read_ensemble
from rnnkit.train.checkpoint import read_metrics


def rnnkit(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "rnnkit", *args], capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"rnnkit {' '.join(args[:3])} failed:\n{proc.stderr[-3000:]}")
    return proc


def threads(args) -> list[str]:
    return ["--threads", str(args.threads)] if args.threads else []


def classifier_figures(run: Path) -> list[dict]:
    """Steps and best validation accuracy of a classifier run, or of each member of an ensemble run
    (then the table shows their sums and means: each member is validated on its own held-out rows)."""
    folders = [run / name for name in read_ensemble(run)["members"]] if is_ensemble(run) else [run]
    figures = []
    for folder in folders:
        manifest = json.loads((folder / "manifest.json").read_text())
        best = max((r for r in read_metrics(folder) if "val_accuracy" in r), key=lambda r: r["val_accuracy"])
        figures.append({
            "steps": int(manifest["last"].split("-")[1]), "best_val_accuracy": round(best["val_accuracy"], 4),
            "best_step": best["step"],
        })  # fmt: skip
    return figures


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


def split_msra(work: Path) -> tuple[Path, Path]:
    """The fixed split of MSRA NER (seed 0): 90% to train, the last 10% after shuffling to test."""
    from rnnkit.data.seqlabel import read_conll

    sentences = read_conll(data_dir() / "seqlabel/ner_msra_zh/dh_msra.zip")
    order = list(range(len(sentences.tokens)))
    random.Random(0).shuffle(order)
    cut = int(0.9 * len(order))
    paths = []
    for name, part in (("train", order[:cut]), ("test", order[cut:])):
        path = work / f"msra_{name}.txt"
        with open(path, "w", encoding="utf-8") as handle:
            for i in sorted(part):
                rows = zip(sentences.tokens[i], sentences.tags[i], strict=True)
                handle.write("".join(f"{w}\t{t}\n" for w, t in rows) + "\n")
        paths.append(path)
    return paths[0], paths[1]


def tagging(args, work: Path, rows: list) -> None:
    seq = data_dir() / "seqlabel"
    msra_train, msra_test = split_msra(work) if "msra" in args.only else (None, None)
    datasets = {
        "sxu": (seq / "cws_sxu/train.txt", seq / "cws_sxu/test.txt", "segmented", 0.94),
        "msra": (msra_train, msra_test, "conll", 0.85),
    }
    for name in [n for n in args.only.split(",") if n in datasets]:
        train, test, fmt, target = datasets[name]
        for direction in [f"--{d}directional" for d in args.directions.split(",")]:
            run = work / f"{name}{direction}"
            started = time.perf_counter()
            rnnkit(
                "tag", "train", str(train), "--format", fmt, "--out", str(run), "--force", direction,
                "--max-minutes", str(args.minutes), "--quiet", *threads(args),
            )  # fmt: skip
            wall = (time.perf_counter() - started) / 60
            result = json.loads(rnnkit("tag", "eval", str(run), str(test), "--json").stdout)
            steps = int(json.loads((run / "manifest.json").read_text())["last"].split("-")[1])
            row = {
                "dataset": name, "model": direction.strip("-"), "steps": steps, "minutes": round(wall, 1),
                "precision": round(result["precision"], 4), "recall": round(result["recall"], 4),
                "f1": round(result["f1"], 4), "scoring": result["scoring"], "target_f1": target,
            }  # fmt: skip
            rows.append(row)
            print(
                f"{name:6} {direction.strip('-'):15} {steps:>6} {wall:>7.1f} {result['precision']:>9.4f} "
                f"{result['recall']:>9.4f} {result['f1']:>9.4f} {target:>7}",
                flush=True,
            )


def forecasting(args, work: Path, rows: list) -> None:
    ts = data_dir() / "timeseries"
    jobs = {
        "airline": (
            ts / "airline-passengers.csv",
            "Passengers",
            ["--log", "--target", "seasonal-diff", "--window", "12"],
        ),
        "temperature": (ts / "daily-min-temperatures.csv", "Temp", ["--window", "30"]),
        "sp500": (ts / "sp500.csv", "Close", ["--target", "diff", "--window", "20", "--log"]),
    }
    for name, (path, column, flags) in jobs.items():
        run = work / f"forecast-{name}"
        rnnkit(
            "forecast", "train", str(path), "--column", column, "--out", str(run), "--force", *flags,
            "--max-minutes", str(args.forecast_minutes), "--quiet",
        )  # fmt: skip
        result = json.loads(
            rnnkit("forecast", "eval", str(run), "--json", "--plot", str(work / f"{name}.png")).stdout
        )
        row = {"dataset": name, "flags": " ".join(flags), "windows": result["windows"], "rnnkit": {
            k: round(result[k], 4) for k in ("rmse", "mae", "mape")}}  # fmt: skip
        for base in ("naive", "seasonal_naive"):
            if base in result:
                row[base] = {k: round(v, 4) for k, v in result[base].items()}
        rows.append(row)
        seasonal = f"{row['seasonal_naive']['rmse']:>10.4g}" if "seasonal_naive" in row else f"{'-':>10}"
        print(
            f"{name:12} {row['rnnkit']['rmse']:>10.4g} {row['naive']['rmse']:>10.4g} {seasonal} "
            f"{row['rnnkit']['mape']:>8.2f} {row['naive']['mape']:>8.2f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="training budget per run")
    parser.add_argument("--only", default="sst2,chnsenticorp,sxu,msra,forecast")
    parser.add_argument("--forecast-minutes", type=float, default=2.0)
    parser.add_argument("--pools", default="last,mean", help="last, mean, max, concat (comma-separated)")
    parser.add_argument(
        "--classify-flags", default="", help='more flags for every classify train, e.g. "--ema 0.995"'
    )
    parser.add_argument("--directions", default="bi,uni", help="taggers to train: bi, uni or both")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per run (0: torch's default)")
    parser.add_argument("--work", type=Path, help="keep the runs in this folder")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="rnnkit-tasks-"))
    work.mkdir(parents=True, exist_ok=True)
    sst = data_dir() / "sentiment/sst2"
    hotel_train, hotel_test = split_chnsenticorp(work)
    rows: list = []  # one per run, printed as JSON at the end
    layout = f", {args.threads} thread(s) per run" if args.threads else ""
    print(f"# {machine()}; {args.minutes:g} minutes of training per run{layout}")
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
    wanted = args.only.split(",")
    if {"sst2", "chnsenticorp"} & set(wanted):
        head = f"{'dataset':13} {'pool':6} {'steps':>6} {'minutes':>7} {'val acc':>8} {'test acc':>9}"
        print(f"{head} {'macro-F1':>9} {'target':>7}")
    for name in [n for n in wanted if n in datasets]:
        spec = datasets[name]
        for pool in args.pools.split(","):
            run = work / f"{name}-{pool}"
            started = time.perf_counter()
            rnnkit(
                "classify", "train", *spec["train"], *spec["columns"], "--out", str(run), "--force",
                "--pool", pool, "--max-minutes", str(args.minutes), "--quiet", *threads(args),
                *shlex.split(args.classify_flags),
            )  # fmt: skip
            wall = (time.perf_counter() - started) / 60
            result = json.loads(
                rnnkit("classify", "eval", str(run), str(spec["test"]), *spec["columns"], "--json").stdout
            )
            members = classifier_figures(run)
            steps = sum(m["steps"] for m in members)
            val = sum(m["best_val_accuracy"] for m in members) / len(members)
            row = {
                "dataset": name, "pool": pool, "flags": args.classify_flags, "steps": steps,
                "wall_minutes": round(wall, 1), "best_val_accuracy": round(val, 4),
                **({"members": members} if len(members) > 1 else {}),
                "test_accuracy": round(result["accuracy"], 4), "test_macro_f1": round(result["macro_f1"], 4),
                "best_checkpoint": result["checkpoint"], "target_accuracy": spec["target"],
            }  # fmt: skip
            rows.append(row)
            print(
                f"{name:13} {pool:6} {steps:>6} {wall:>7.1f} {val:>8.4f} {result['accuracy']:>9.4f} "
                f"{result['macro_f1']:>9.4f} {spec['target']:>7}",
                flush=True,
            )
    if {"sxu", "msra"} & set(args.only.split(",")):
        head = f"{'data':6} {'model':15} {'steps':>6} {'minutes':>7} {'precision':>9} {'recall':>9} {'F1':>9}"
        print(f"{head} {'target':>7}")
        tagging(args, work, rows)
    if "forecast" in args.only.split(","):
        print(f"{'series':12} {'RMSE':>10} {'naive':>10} {'seasonal':>10} {'MAPE %':>8} {'naive %':>8}")
        forecasting(args, work, rows)
    print(json.dumps({"machine": machine(), "minutes": args.minutes, "rows": rows}))


if __name__ == "__main__":
    main()
