"""Beam search for captions: one picture at a time against a batch of pictures, in the same process.

``Captioner.beam`` searches one picture's K hypotheses as a batch of K; ``Captioner.beams`` (what
``caption eval --beam`` and ``describe`` use) searches N pictures' N x K hypotheses as one batch. Both
must give the same captions; this prints the times and how many captions agree.

    .venv/bin/rnnkit caption make-shapes /tmp/shapes --n 600
    .venv/bin/rnnkit caption train /tmp/shapes/images /tmp/shapes/captions.csv --out /tmp/cap --max-minutes 3
    .venv/bin/python bench/beam_search.py /tmp/cap /tmp/shapes/images [--pictures 300] [--beams 3,5]

Prints one line per beam width. Not a test.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from common import machine
from rnnkit.tasks.caption import load_captioner, load_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a caption run folder")
    parser.add_argument("images", type=Path, help="a folder of pictures")
    parser.add_argument("--pictures", type=int, default=300)
    parser.add_argument("--beams", default="3,5")
    parser.add_argument("--batch", type=int, default=64, help="pictures per batch (as caption eval)")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_captioner(args.run)
    model, words = loaded.model, loaded.config.data.max_words
    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    images = torch.stack([load_image(p, loaded.config.model.image_size) for p in paths[: args.pictures]])
    n = len(images)
    print(f"# {machine()}; {n} pictures from {args.images}, at most {words} words")
    for beam in [int(b) for b in args.beams.split(",")]:
        started = time.perf_counter()
        alone = [model.beam(images[i : i + 1], beam, words) for i in range(n)]
        one = time.perf_counter() - started
        started = time.perf_counter()
        together = []
        for start in range(0, n, args.batch):
            together += model.beams(images[start : start + args.batch], beam, words)
        batched = time.perf_counter() - started
        same = sum(a == b for a, b in zip(alone, together, strict=True))
        print(
            f"beam {beam}: one picture at a time {one:.2f} s, {args.batch} at a time {batched:.2f} s "
            f"({one / batched:.1f}x); the same caption for {same} of {n}",
            flush=True,
        )


if __name__ == "__main__":
    main()
