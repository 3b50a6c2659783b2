"""Corpora larger than memory: encoding speed and peak memory on a generated 1 GB text.

1. Writes a 1 GB text (the Tiny Shakespeare lines in a fresh random order for every 1 MB block;
   ``--chinese`` uses the Tang poems instead) into a temporary folder, never into the repository.
2. Encodes it with :func:`rnnkit.data.corpus.encode_corpus` in a child process: MB/s of input and
   the child's peak resident memory (RSS).
3. Runs ``rnnkit train`` on it in a child process (encode, then ``--max-steps`` steps of the small
   preset with the token files memory-mapped): wall time and peak RSS.

    .venv/bin/python bench/corpus.py [--gigabytes 1] [--steps 200] [--chinese] [--keep DIR]

Targets (issue #7): encoding at 50 MB/s or more; peak RSS while training at most 2 GB.
Prints a table and one JSON object. Not a test.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import data_dir, machine

ENCODE = """
import json, sys, time
from pathlib import Path
from rnnkit.data.corpus import encode_corpus, resolve_sources
started = time.perf_counter()
corpus = encode_corpus(resolve_sources([sys.argv[1]]), Path(sys.argv[2]), val_fraction=0.01)
tokens = corpus.train_tokens + corpus.val_tokens
print(json.dumps({"seconds": time.perf_counter() - started, "tokens": tokens}))
"""


def write_text(path: Path, size: int, source: Path, seed: int = 0) -> None:
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    rng = random.Random(seed)
    written = 0
    with open(path, "w", encoding="utf-8") as out:
        while written < size:
            block, length = [], 0
            while length < 1 << 20:
                line = lines[rng.randrange(len(lines))]
                block.append(line)
                length += len(line.encode("utf-8"))
            text = "".join(block)
            out.write(text)
            written += len(text.encode("utf-8"))


def child(args: list[str]) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run a child; its output, wall seconds and peak RSS in GB (of that child alone)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True)
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KB, the largest child so far
    if proc.returncode:
        sys.exit(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc, wall, max(peak, before) / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--chinese", action="store_true", help="Tang poems (3-byte characters) instead")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep the files")
    args = parser.parse_args()
    source = data_dir() / ("char-rnn-tf/poetry.txt" if args.chinese else "tinyshakespeare/input.txt")
    work = args.keep or Path(tempfile.mkdtemp(prefix="rnnkit-corpus-"))
    work.mkdir(parents=True, exist_ok=True)
    text = work / "big.txt"
    size = int(args.gigabytes * 1e9)
    print(f"# {machine()}")
    started = time.perf_counter()
    write_text(text, size, source)
    megabytes = text.stat().st_size / 1e6
    print(f"wrote {megabytes:,.0f} MB in {time.perf_counter() - started:.1f} s: {text}", flush=True)

    proc, _, encode_rss = child([sys.executable, "-c", ENCODE, str(text), str(work / "encoded")])
    encoded = json.loads(proc.stdout.strip().splitlines()[-1])
    rate = megabytes / encoded["seconds"]
    print(f"encode: {encoded['seconds']:.1f} s, {rate:.1f} MB/s, peak RSS {encode_rss:.2f} GB", flush=True)

    run = work / "run"
    command = [sys.executable, "-m", "rnnkit", "train", str(text), "--out", str(run), "--preset", "small"]
    command += ["--max-steps", str(args.steps), "--val-fraction", "0.01", "--quiet", "--sample-length", "0"]
    command += ["--set", "train.eval_tokens=200000", "--force"]
    _, wall, train_rss = child(command)
    print(f"train ({args.steps} steps, encoding included): {wall:.1f} s, peak RSS {train_rss:.2f} GB")
    row = {
        "machine": machine(),
        "text": "chinese" if args.chinese else "english",
        "megabytes": round(megabytes, 1),
        "encode_seconds": round(encoded["seconds"], 2),
        "encode_mb_per_s": round(rate, 1),
        "encode_peak_rss_gb": round(encode_rss, 3),
        "train_steps": args.steps,
        "train_wall_seconds": round(wall, 1),
        "train_peak_rss_gb": round(train_rss, 3),
        "targets": {"encode_mb_per_s": 50, "train_peak_rss_gb": 2.0},
    }
    print(json.dumps(row))
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
