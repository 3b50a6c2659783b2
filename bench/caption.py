"""Captioning from scratch on two CPU cores: synthetic shapes, and Flickr8k-mini.

- ``shapes``: ``rnnkit caption make-shapes`` draws 5,000 pictures (64 px) with two captions each; the
  captioner (residual CNN from scratch, LSTM, the picture at the first step) trains for ``--minutes``.
  Targets on the held-out pictures: BLEU-4 >= 80 (sacrebleu's 0-100 scale, i.e. 0.80) and every colour
  and shape word right in >= 95% of the captions.
- ``flickr``: ../shared/data/flickr8k_mini (1,000 real photographs x 5 captions) for ``--minutes``:
  BLEU-1..4 on the held-out pictures next to two baselines on the same pictures, the single most common
  training caption and the first caption of the nearest training picture by the CNN's vector.

Held-out pictures are 10% of the pictures, split by seed (never by caption); the best checkpoint is
chosen on another 10% (validation BLEU-4). The test pictures are scored once, after training.

    .venv/bin/python bench/caption.py [--minutes 20] [--only shapes,flickr] [--threads N]
        [--inject every-step] [--word-loss W] [--grid-size G] [--tag NAME]   # comparisons

Prints a table and one JSON object. Not a test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import data_dir, machine


def rnnkit(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "rnnkit", *args], capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"rnnkit {' '.join(args[:3])} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--only", default="shapes,flickr")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--inject", help="first-step (the default) or every-step")
    parser.add_argument("--word-loss", help="weight of the bag-of-words loss (0: off)")
    parser.add_argument("--grid-size", help="cells a side of the picture grid (1: global average)")
    parser.add_argument(
        "--tag", default="", help="a name for the run folders (run-shapes-NAME), to keep comparisons apart"
    )
    args = parser.parse_args()
    model = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
             if k in ("inject", "word_loss", "grid_size") and v is not None]  # fmt: skip
    work = args.work or Path(tempfile.mkdtemp(prefix="rnnkit-caption-"))
    work.mkdir(parents=True, exist_ok=True)
    threads = ["--threads", str(args.threads)] if args.threads else []
    flickr = data_dir() / "flickr8k_mini"
    jobs = {
        "shapes": (work / "shapes" / "images", work / "shapes" / "captions.csv", ["--image-size", "64"]),
        "flickr": (flickr / "images", flickr / "captions.txt", ["--image-size", "96", "--flip"]),
    }
    print(f"# {machine()}; {args.minutes:g} minutes of training per run", flush=True)
    rows = []
    for name in args.only.split(","):
        images, captions, flags = jobs[name]
        if name == "shapes" and not captions.exists():
            rnnkit("caption", "make-shapes", str(work / "shapes"), "--n", "5000")
        tag = f"-{args.tag}" if args.tag else ""
        run = work / f"run-{name}{tag}"
        started = time.perf_counter()
        rnnkit("caption", "train", str(images), str(captions), "--out", str(run), "--force", *flags,
               "--max-minutes", str(args.minutes), "--quiet", *threads, *model)  # fmt: skip
        wall = (time.perf_counter() - started) / 60
        steps = int(json.loads((run / "manifest.json").read_text())["last"].split("-")[1])
        row = {
            "data": name,
            "model": " ".join(model) or "default",
            "steps": steps,
            "wall_minutes": round(wall, 1),
        }
        extra = ["--shape-words"] if name == "shapes" else ["--baselines"]
        for beam in (1, 3):
            grid = ["--grid", str(work / f"{name}{tag}-grid.png")] if beam == 3 else []
            found = json.loads(
                rnnkit(
                    "caption",
                    "eval",
                    str(run),
                    str(images),
                    str(captions),
                    "--json",
                    "--beam",
                    str(beam),
                    *(extra if beam == 1 else []),
                    *grid,
                )
            )
            row[f"beam{beam}"] = {k: round(v, 2) if isinstance(v, float) else v for k, v in found.items()}
        rows.append(row)
        b1, b3 = row["beam1"], row["beam3"]
        print(f"{name} ({row['model']}): {steps} steps in {wall:.1f} min, {b1['pictures']} held-out pictures")
        for label, res in (("greedy", b1), ("beam 3", b3)):
            print(f"  {label:16} " + " ".join(f"BLEU-{n} {res[f'bleu{n}']:6.2f}" for n in range(1, 5)))
        for base in ("most_common", "nearest_picture"):
            if base in b1:
                print(
                    f"  {base:16} " + " ".join(f"BLEU-{n} {b1[base][f'bleu{n}']:6.2f}" for n in range(1, 5))
                )
        if "shape_words_right" in b1:
            print(f"  colour and shape words right: {b1['shape_words_right']:.4f} (greedy); with sizes too: "
                  f"{b1['shape_and_size_words_right']:.4f}")  # fmt: skip
        print(f"  examples: {b3['examples'][:3]}", flush=True)
    print(json.dumps({"machine": machine(), "minutes": args.minutes, "rows": rows}))


if __name__ == "__main__":
    main()
