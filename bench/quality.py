"""Validation nats/char on Tiny Shakespeare after fixed training budgets: rnnkit vs a plain baseline.

Both train on the first 90% of input.txt and are scored on the last 10% (nanoGPT's split) with the same
scoring function, for the same wall-clock budget of *training* time (evaluation excluded for both):

- rnnkit, at each budget B of ``--budgets``: ``rnnkit train input.txt --preset shakespeare
  --max-minutes B/60 --val-fraction 0.1``, the preset sized by the budget rule for B on this machine
  (rnnkit.tasks.lm.budget: a few seconds' probe, then the model, dropout, weight drop, batch and lr);
- baseline, once, at ``--baseline-seconds`` (300): a hand-written loop, nn.Embedding + nn.LSTM 2x256
  fp32 + nn.Linear, Adam (lr 2e-3), gradient clipping at 5, hidden state carried across batches
  (batch 32 x 100 steps).

    .venv/bin/python bench/quality.py --budgets 60,300,900,2700 [--data PATH] [--json out.json]
    .venv/bin/python bench/quality.py --seconds 300        # one budget (the same as --budgets 300)

Prints the machine (CPU flags that matter, precision used), one row per budget (the rule's choice,
chars/s, the last and the best validation nats/char) and one JSON object. Not a test: it takes the sum
of the budgets plus the baseline plus a minute or two per budget.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from common import FLAGS, PlainLSTM, cpu_flags, data_dir, machine
from rnnkit.data.batching import StreamBatcher
from rnnkit.tasks.lm import SPEC as LM
from rnnkit.tasks.lm import score_tokens
from rnnkit.train.run import run as run_task


def train_baseline(train_tokens, vocab_size: int, seconds: float, seed: int) -> tuple[PlainLSTM, dict]:
    torch.manual_seed(seed)
    model = PlainLSTM(vocab_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    batcher = StreamBatcher(train_tokens, 32, 100)
    state, elapsed, steps, tokens, index = None, 0.0, 0, 0, 0
    while elapsed < seconds:
        if index == batcher.batches_per_epoch:
            index, state = 0, None
        x, y = batcher.batch(index)
        index += 1
        started = time.perf_counter()
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.reshape(-1, vocab_size), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        state = tuple(s.detach() for s in state)
        elapsed += time.perf_counter() - started
        steps += 1
        tokens += y.numel()
    return model, {"steps": steps, "train_seconds": elapsed, "chars_per_s": tokens / elapsed}


#: The issue's targets (#20): validation nats/char at most this after this many seconds.
TARGETS = {300: 1.45, 900: 1.41, 2700: 1.38}


def train_rnnkit(args, seconds: float) -> dict:
    from rnnkit.config import apply, override
    from rnnkit.tasks.lm.budget import starting_config

    values = {
        "data.val_fraction": 0.1,
        "data.split": "tail",
        "train.max_minutes": seconds / 60,
        "train.max_steps": 0,
        "train.eval_tokens": 0,  # on the whole validation split
        "train.sample_length": 0,
    }
    config = starting_config(args.preset, values, args.set, [str(args.data)])
    config = override(apply(config, values), args.set)
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_task(
            LM, config, args.out / f"budget-{seconds:g}" if args.out else Path(tmp), force=True
        )
    m, t = config.model, config.train
    return {
        "seconds": seconds,
        "config": f"{m.cell} {m.num_layers}x{m.hidden_size} p{m.dropout:g} wd{m.weight_drop:g} "
        f"B{t.batch_size} lr {t.lr:g}",
        "val_nats_per_char": summary["val_loss"],
        "best_val_nats_per_char": summary["best_val"],
        "steps": summary["step"],
        "train_seconds": summary["elapsed"],
        "chars_per_s": summary.get("tokens_per_s"),
        "parameters": summary["parameters"],
        "precision": summary["precision"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=data_dir() / "tinyshakespeare" / "input.txt")
    parser.add_argument("--budgets", default="", help="comma-separated training budgets in seconds")
    parser.add_argument(
        "--seconds", type=float, default=300.0, help="one budget (when --budgets is not given)"
    )
    parser.add_argument("--baseline-seconds", type=float, default=300.0)
    parser.add_argument("--preset", default="shakespeare")
    parser.add_argument("--set", action="append", default=[], help="config overrides for rnnkit, KEY=VALUE")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--out", type=Path, help="keep the rnnkit runs here (default: temporary folders)")
    parser.add_argument("--json", type=Path, help="also write the JSON result here")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    budgets = [float(b) for b in args.budgets.split(",") if b] or [args.seconds]
    flags = " ".join(cpu_flags()) or "none of " + ", ".join(FLAGS)
    print(f"# {machine()}; CPU flags: {flags}", flush=True)

    rows = []
    for seconds in budgets:
        rows.append(train_rnnkit(args, seconds))
        row = rows[-1]
        print(
            f"# {seconds:g} s: {row['config']}, {row['precision']}: {row['val_nats_per_char']:.4f} nats/char",
            flush=True,
        )
    baseline = None
    if not args.skip_baseline:
        baseline = run_baseline(args)

    print(f"\nTiny Shakespeare, validation = last 10% ({machine()}; CPU flags: {flags})")
    print(f"{'budget':>7} {'rnnkit config (the rule)':38} {'prec':5} {'params':>10} {'steps':>7} "
          f"{'chars/s':>9} {'val (last)':>10} {'val (best)':>10} {'target':>7}")  # fmt: skip
    previous = math.inf
    for row in rows:
        target = TARGETS.get(int(row["seconds"]))
        verdict = "" if target is None else ("met" if row["val_nats_per_char"] <= target else "MISSED")
        print(
            f"{row['seconds']:>6g}s {row['config']:38} {row['precision']:5} {row['parameters']:>10,} "
            f"{row['steps']:>7,} {row['chars_per_s']:>9,.0f} {row['val_nats_per_char']:>10.4f} "
            f"{row['best_val_nats_per_char']:>10.4f} {'' if target is None else target:>7} {verdict}"
        )
        if row["val_nats_per_char"] > previous:
            print(f"        ^ WORSE than the shorter budget before it ({previous:.4f})")
        previous = min(previous, row["val_nats_per_char"])
    if baseline is not None:
        print(
            f"{baseline['train_seconds']:>6.0f}s {'baseline: ' + baseline['config']:38} {'fp32':5} "
            f"{baseline['parameters']:>10,} {baseline['steps']:>7,} {baseline['chars_per_s']:>9,.0f} "
            f"{baseline['val_nats_per_char']:>10.4f}"
        )
    result = {"machine": machine(), "cpu_flags": cpu_flags(), "budgets": rows, "baseline": baseline}
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if not all(math.isfinite(row["val_nats_per_char"]) for row in rows):
        sys.exit(1)


def run_baseline(args) -> dict:
    """The hand-written baseline on the same split (the tail 10% of the same text, encoded as rnnkit does)."""
    from rnnkit.data.corpus import encode_corpus, resolve_sources

    with tempfile.TemporaryDirectory() as tmp:
        corpus = encode_corpus(resolve_sources([str(args.data)]), Path(tmp), val_fraction=0.1, split="tail")
        vocab_size = len(corpus.vocab)
        model, stats = train_baseline(corpus.tokens("train"), vocab_size, args.baseline_seconds, seed=1337)
        model.eval()
        with torch.no_grad():
            nats, count = score_tokens(model, corpus.tokens("val"))
    return {
        "config": "nn.LSTM 2x256, Adam 2e-3, B32 T100",
        "val_nats_per_char": nats / count,
        **stats,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


if __name__ == "__main__":
    main()
