"""Generation speed: characters per second for 1, 8 and 64 streams, rnnkit against a naive loop.

Three ways to generate from the same size of LSTM char model (random weights: speed does not depend
on them), each timed over the same number of seconds after a warm-up, in this process:

- ``naive nn.LSTM``: a hand-written loop that calls ``nn.Embedding``, ``nn.LSTM`` and ``nn.Linear`` on
  one step at a time, then softmax and ``torch.multinomial`` (the baseline the issue names);
- ``rnnkit plain``: :func:`rnnkit.generate.sample` with ``CharLM.step(fast=False)``;
- ``rnnkit stepper``: the same call through :class:`rnnkit.nn.Stepper` (``fast=True``);
- ``rnnkit default``: what ``rnnkit sample`` does: the stepper up to ``FAST_STREAMS`` streams, the
  fused kernel above.

It also prints the bytes of recurrent weights each step must read, and the bandwidth that implies
at the fast path's speed: a single stream is a chain of matrix-vector products, bound by memory.

    .venv/bin/python bench/sample_speed.py [--sizes 2x512,3x512] [--streams 1,8,64] [--seconds 3]

Prints a table and one JSON object. Not a test.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from common import PlainLSTM, machine
from rnnkit.generate import SamplingConfig, sample
from rnnkit.tasks.lm import CharLM, ModelConfig

VOCAB, EMBED = 65, 64
TARGETS = {("2x512", 1): 10_000, ("2x512", 64): 200_000}


def timed(make_steps, seconds: float) -> float:
    """Steps per second of the generator ``make_steps()`` yields (one step per item)."""
    steps = make_steps()
    for _ in range(20):  # warm-up
        next(steps)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(50):
            next(steps)
        count += 50
    return count / (time.perf_counter() - started)


@torch.no_grad()
def naive(model: PlainLSTM, streams: int):
    ids = torch.zeros(streams, 1, dtype=torch.long)
    state = None
    generator = torch.Generator().manual_seed(0)
    while True:
        out, state = model.lstm(model.embedding(ids), state)
        probs = torch.softmax(model.head(out[:, -1]), dim=-1)
        ids = torch.multinomial(probs, 1, generator=generator)
        yield ids


def rnnkit(model: CharLM, streams: int, fast: bool | None):
    real = model.step
    model.step = lambda ids, state=None: real(ids, state, fast=fast)  # type: ignore[method-assign]
    config = SamplingConfig(temperature=1.0)
    while True:
        yield from sample(model, [1, 2, 3], 10_000, config, num_samples=streams, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2x512,3x512", help="LAYERSxHIDDEN, comma-separated")
    parser.add_argument("--streams", default="1,8,64")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing window per row")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# {machine()}, {torch.get_num_threads()} threads")
    print(f"{'model':8} {'streams':>7} {'implementation':16} {'chars/s':>10} {'vs naive':>9} {'target':>9}")
    rows = []
    for size in args.sizes.split(","):
        layers, hidden = (int(v) for v in size.split("x"))
        weight_bytes = 4 * 4 * hidden * (hidden + (layers - 1) * 2 * hidden)  # fp32 recurrent matrices/step
        for streams in (int(s) for s in args.streams.split(",")):
            torch.manual_seed(0)
            plain_model = PlainLSTM(VOCAB, hidden, layers, EMBED).eval()
            base = streams * timed(lambda m=plain_model, s=streams: naive(m, s), args.seconds)
            results = {"naive nn.LSTM": base}
            for fast, name in ((False, "rnnkit plain"), (True, "rnnkit stepper"), (None, "rnnkit default")):
                torch.manual_seed(0)
                model = CharLM(
                    VOCAB, ModelConfig(hidden_size=hidden, num_layers=layers, embedding_size=EMBED)
                )
                model.eval()
                results[name] = streams * timed(
                    lambda m=model, s=streams, f=fast: rnnkit(m, s, f), args.seconds
                )
            target = TARGETS.get((size, streams))
            for name, chars in results.items():
                row = {
                    "model": f"lstm {size}", "streams": streams, "implementation": name,
                    "chars_per_s": round(chars), "vs_naive": round(chars / base, 2), "target": target,
                }  # fmt: skip
                if name == "rnnkit stepper":
                    row["weight_gb_per_s"] = round(chars / streams * weight_bytes / 1e9, 1)
                rows.append(row)
                shown = f"{target:,}" if target and name == "rnnkit default" else ""
                print(
                    f"{size:8} {streams:>7} {name:16} {chars:>10,.0f} {chars / base:>8.2f}x {shown:>9}",
                    flush=True,
                )
    print(json.dumps({"machine": machine(), "threads": torch.get_num_threads(), "rows": rows}))


if __name__ == "__main__":
    main()
