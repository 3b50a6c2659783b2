"""Validation nats/char on Tiny Shakespeare after a fixed training budget: rnnkit vs a plain baseline.

Both train on the first 90% of input.txt and are scored on the last 10% (nanoGPT's split) with the same
scoring function, for the same wall-clock budget of *training* time (evaluation excluded for both):

- rnnkit: ``rnnkit train input.txt --preset shakespeare --max-minutes B/60``;
- baseline: a hand-written loop, nn.Embedding + nn.LSTM 2x256 fp32 + nn.Linear, Adam (lr 2e-3),
  gradient clipping at 5, hidden state carried across batches (batch 32 x 100 steps).

    .venv/bin/python bench/quality.py [--seconds 300] [--data PATH] [--json out.json]

Prints a table and one JSON object. Not a test: it takes about 2 x budget + a minute.
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

from common import PlainLSTM, data_dir, machine
from rnnkit.data.batching import StreamBatcher
from rnnkit.tasks.lm import SPEC as LM
from rnnkit.tasks.lm import get_preset, load_lm, score_tokens
from rnnkit.train.checkpoint import load_checkpoint
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=data_dir() / "tinyshakespeare" / "input.txt")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--preset", default="shakespeare")
    parser.add_argument("--set", action="append", default=[], help="config overrides for rnnkit, KEY=VALUE")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--out", type=Path, help="keep the rnnkit run here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the JSON result here")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    from rnnkit.config import override

    config = override(get_preset(args.preset), args.set)
    config.data.sources = [str(args.data)]
    config.data.val_fraction = 0.1
    config.data.split = "tail"
    config.train.max_steps = 0
    config.train.max_minutes = args.seconds / 60
    config.train.eval_interval = 10**9  # evaluate once, at the end
    config.train.eval_tokens = 0  # on the whole validation split
    config.train.sample_length = 0
    with tempfile.TemporaryDirectory() as tmp:
        run = args.out or Path(tmp) / "run"
        summary = run_task(LM, config, run, force=True)
        loaded = load_lm(run, "last")
        info = load_checkpoint(run, "last").config["corpus"]
        from rnnkit.data.corpus import EncodedCorpus

        corpus = EncodedCorpus.load(run / "data", loaded.vocab, info)
        m, t = config.model, config.train
        rows = {
            "rnnkit": {
                "config": f"{m.cell} {m.num_layers}x{m.hidden_size}, B{t.batch_size} T{t.seq_len}, "
                f"lr {t.lr:g}, {summary['precision']}",
                "val_nats_per_char": summary["val_loss"],
                "steps": summary["step"],
                "train_seconds": summary["elapsed"],
                "chars_per_s": summary.get("tokens_per_s"),
                "parameters": summary["parameters"],
            }
        }
        if not args.skip_baseline:
            vocab_size = len(loaded.vocab)
            model, stats = train_baseline(corpus.tokens("train"), vocab_size, args.seconds, config.train.seed)
            model.eval()
            with torch.no_grad():
                nats, count = score_tokens(model, corpus.tokens("val"))
            rows["baseline"] = {
                "config": "nn.LSTM 2x256 fp32, Adam 2e-3, B32 T100",
                "val_nats_per_char": nats / count,
                **stats,
                "parameters": sum(p.numel() for p in model.parameters()),
            }
    print(f"\nTiny Shakespeare, {args.seconds:.0f} s of training each, validation = last 10% ({machine()})")
    print(f"{'system':10} {'config':42} {'params':>9} {'steps':>7} {'chars/s':>9} {'val nats/char':>14}")
    for name, row in rows.items():
        print(
            f"{name:10} {row['config']:42} {row['parameters']:>9,} {row['steps']:>7,} "
            f"{row['chars_per_s']:>9,.0f} {row['val_nats_per_char']:>14.4f}"
        )
    if "baseline" in rows:
        delta = rows["rnnkit"]["val_nats_per_char"] - rows["baseline"]["val_nats_per_char"]
        print(f"rnnkit - baseline: {delta:+.4f} nats/char")
    result = {"seconds": args.seconds, "machine": machine(), **rows}
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if not math.isfinite(rows["rnnkit"]["val_nats_per_char"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
