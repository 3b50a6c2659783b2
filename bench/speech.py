"""Listen, Attend and Spell on the Free Spoken Digit Dataset, with and without the pyramid.

Three runs, each trained for ``--minutes`` of wall time (default 20), then scored on its test split:

- ``pyramid``: the default listener, 3 pyramidal layers (reduction 8); official split (index 0-4 is
  the test set). Target: word accuracy >= 97%.
- ``flat``: the same listener without the pyramid (``--no-pyramid``: the same four BiLSTM layers, each
  reading every frame of the one below, reduction 1): what the
  pyramid saves, in training time per epoch and in accuracy at the same budget.
- ``holdout-SPEAKER``: the pyramid model trained on five speakers, tested on every recording of the
  sixth (``--holdout-speaker``, default theo).

``--pairs`` runs two trainings at a time with one CPU thread each (pyramid beside flat, so both see the
same machine); without it, one run at a time with every thread. Training time per epoch is measured
from the trainer's own throughput log (training steps only, evaluations excluded). The test split is
scored once, after training; nothing is chosen on it.

    .venv/bin/python bench/speech.py [--minutes 20] [--pairs] [--only pyramid,flat,holdout]

Prints a table and one JSON object. Not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import data_dir, machine


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "rnnkit", *args]


def train_args(name: str, wav: Path, run: Path, args) -> list[str]:
    flags = ["speech", "train", str(wav), "--out", str(run), "--force", "--max-minutes", str(args.minutes)]
    flags += ["--quiet"]
    if args.pairs or args.threads:
        flags += ["--threads", str(args.threads or 1)]
    if name == "flat":
        flags += ["--no-pyramid"]
    if name.startswith("holdout"):
        flags += ["--holdout-speaker", args.speaker]
    return command(*flags)


def report(name: str, run: Path, wav: Path, wall: float) -> dict:
    from rnnkit.train.checkpoint import read_metrics

    rows = read_metrics(run)
    speeds = [r["tokens_per_s"] for r in rows if "tokens_per_s" in r][1:]  # the first includes start-up
    config = json.loads((run / "manifest.json").read_text())
    steps = int(config["last"].split("-")[1])
    best_val = max((r["val_accuracy"] for r in rows if "val_accuracy" in r), default=float("nan"))
    from rnnkit.tasks.speech import list_fsdd, load_speech, split_fsdd

    loaded = load_speech(run)
    d = loaded.config.data
    train, _val, _test = split_fsdd(
        list_fsdd(wav), d.holdout_speaker, d.val_fraction, loaded.config.train.seed
    )
    # the trainer's throughput is in recordings (utterances) per second for this task
    epoch_seconds = len(train) / statistics.fmean(speeds) if speeds else float("nan")
    epochs = steps * loaded.config.train.batch_size / len(train)
    row = {
        "run": name, "steps": steps, "wall_minutes": round(wall / 60, 1), "epochs": round(epochs, 1),
        "epoch_seconds": round(epoch_seconds, 2), "best_val_accuracy": best_val,
        "reduction": loaded.model.listener.reduction, "train_recordings": len(train),
    }  # fmt: skip
    for beam in (1, 3):
        out = subprocess.run(
            command("speech", "eval", str(run), str(wav), "--json", "--beam", str(beam)),
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        found = json.loads(out.stdout)
        row[f"test_accuracy_beam{beam}"] = round(found["accuracy"], 4)
        row[f"test_cer_beam{beam}"] = round(found["cer"], 4)
        row["test_recordings"] = found["recordings"]
        if beam == 1:
            row["errors"] = found["errors"][:8]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--pairs", action="store_true", help="two runs at a time, one thread each")
    parser.add_argument("--only", default="pyramid,flat,holdout")
    parser.add_argument("--speaker", default="theo", help="the speaker held out")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per run (--pairs: 1)")
    parser.add_argument("--work", type=Path, help="keep the runs in this folder")
    args = parser.parse_args()
    wav = data_dir() / "fsdd" / "recordings"
    work = args.work or Path(tempfile.mkdtemp(prefix="rnnkit-speech-"))
    work.mkdir(parents=True, exist_ok=True)
    names = [n if n != "holdout" else f"holdout-{args.speaker}" for n in args.only.split(",")]
    layout = "two runs at a time, 1 thread each" if args.pairs else "one run at a time"
    print(f"# {machine()}; {args.minutes:g} minutes per run; {layout}")
    groups = [names[i : i + 2] for i in range(0, len(names), 2)] if args.pairs else [[n] for n in names]
    rows = []
    head = f"{'run':16} {'red.':>4} {'steps':>6} {'epochs':>6} {'s/epoch':>8} {'val acc':>8}"
    print(f"{head} {'test acc':>8} {'beam 3':>8} {'CER':>7} {'target':>6}", flush=True)
    for group in groups:
        started = time.perf_counter()
        procs = {n: subprocess.Popen(train_args(n, wav, work / n, args)) for n in group}
        walls = {}
        for n, proc in procs.items():
            if proc.wait():
                sys.exit(f"training {n} failed")
            walls[n] = time.perf_counter() - started
        for n in group:
            row = report(n, work / n, wav, walls[n])
            rows.append(row)
            target = "0.97" if n == "pyramid" else "-"
            cells = [
                f"{row[k]:>{w}}"
                for k, w in (("reduction", 4), ("steps", 6), ("epochs", 6), ("epoch_seconds", 8))
            ]
            cells += [
                f"{row[k]:>8.4f}" for k in ("best_val_accuracy", "test_accuracy_beam1", "test_accuracy_beam3")
            ]
            print(f"{n:16} {' '.join(cells)} {row['test_cer_beam1']:>7.4f} {target:>6}", flush=True)
    print(json.dumps({"machine": machine(), "minutes": args.minutes, "pairs": args.pairs, "rows": rows}))


if __name__ == "__main__":
    main()
