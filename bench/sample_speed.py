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

The second section (issue #20, item 3) times one stream of a 2x512 LSTM char model through
``rnnkit.generate.sample`` with each ``precision``, rounds interleaved, each path's best quarter-second
window kept (the machine may be shared: the quietest spell is the fairest comparison):

- ``fp32 stepper``: today's path (``precision="fp32"``: ``CharLM.step`` through the stepper);
- ``bf16``: the recurrent matrices in bfloat16 (skipped where the CPU lacks native bf16);
- ``int8``: the recurrent matrices in int8, one scale per row, through PyTorch's weight-only int8
  kernel (``torch._weight_int8pack_mm``; the activations stay unquantized, rounded to bf16);

(the narrow paths also draw their tokens with noise made a block at a time, ``NoiseDraws``, where fp32
keeps its per-token draw and its exact tokens)

and prints each one's chars/s, its ratio to the fp32 stepper in the same run, and its nats/char on
the last 10% of Tiny Shakespeare (``score_tokens``, as ``rnnkit eval`` scores, through that path's
stepper). The model is the one of ``--run`` (a trained char-RNN run folder) or, by default, a 2x512
LSTM trained here for ``--train-seconds`` on the first 90% (briefly: its nats/char only shows how
much each precision changes a model's predictions, not how good a 2x512 model can get).

    .venv/bin/python bench/sample_speed.py [--sizes 2x512,3x512] [--streams 1,8,64] [--seconds 3]
    .venv/bin/python bench/sample_speed.py --section precision --seconds 2 [--run RUN]

Prints a table and one JSON object per section. Not a test.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from common import FLAGS, PlainLSTM, cpu_flags, data_dir, machine
from rnnkit.data.vocab import Vocabulary
from rnnkit.generate import SamplingConfig, sample, sampling_precision, step_function
from rnnkit.nn import Stepper
from rnnkit.tasks.lm import CharLM, ModelConfig, load_lm, score_tokens
from rnnkit.train import hardware

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


def timed_best(make_steps, seconds: float, window: float = 0.25) -> float:
    """The best steps per second over windows of ``window`` seconds within ``seconds``: on a machine that
    others share, the rate of the quietest spell (each path gets the same chances at one)."""
    steps = make_steps()
    for _ in range(20):  # warm-up
        next(steps)
    best, started = 0.0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        count, opened = 0, time.perf_counter()
        while time.perf_counter() - opened < window:
            for _ in range(20):
                next(steps)
            count += 20
        best = max(best, count / (time.perf_counter() - opened))
    return best


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


# -------------------------------------------------------------------------------------------------
# one stream in each precision


class SteppedLM(nn.Module):
    """A stepper read one token at a time as a ``model(ids (N, T), state) -> (logits (N, T, V), state)``,
    for :func:`rnnkit.tasks.lm.score_tokens`: the sampling path's own numbers, teacher-forced."""

    def __init__(self, stepper: Stepper) -> None:
        super().__init__()
        self.stepper = stepper
        self.anchor = nn.Parameter(torch.zeros(0))  # score_tokens reads the device from a parameter

    def forward(self, ids, state=None):
        logits = []
        for t in range(ids.shape[1]):
            step_logits, state = self.stepper.step(ids[:, t], state)
            logits.append(step_logits)
        return torch.stack(logits, 1), state  # (N, T, V)


def brief_model(text: str, vocab: Vocabulary, seconds: float, seed: int = 0) -> tuple[CharLM, str]:
    """A 2x512 LSTM char model trained for ``seconds`` on ``text`` (Adam 2e-3, batch 32 x 100, state
    carried, gradients clipped at 5), as bench/quality.py's baseline trains."""
    torch.manual_seed(seed)
    model = CharLM(len(vocab), ModelConfig(hidden_size=512, num_layers=2, embedding_size=EMBED))
    if seconds <= 0:
        return model.eval(), "untrained (random weights)"
    tokens = torch.from_numpy(vocab.encode(text).astype(np.int64))
    rows, seq_len = 32, 100
    row_len = (len(tokens) - 1) // rows
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    state, steps, position, started = None, 0, 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        if position + seq_len >= row_len:
            position, state = 0, None
        starts = torch.arange(rows) * row_len + position
        index = starts[:, None] + torch.arange(seq_len + 1)  # (B, T + 1)
        batch = tokens[index]
        logits, state = model(batch[:, :-1], state)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        state = type(state)(*(s.detach() for s in state))
        steps, position = steps + 1, position + seq_len
    took = time.perf_counter() - started
    return model.eval(), f"briefly trained: {steps} steps of 32x100 chars in {took:.0f} s, fp32"


def precision_section(args) -> None:
    text = args.data.read_text(encoding="utf-8")
    split = int(len(text) * 0.9)
    if args.run:
        loaded = load_lm(args.run)
        model, vocab, how = loaded.model, loaded.vocab, f"the trained run {args.run}"
    else:
        vocab = Vocabulary.from_text(text)
        model, how = brief_model(text[:split], vocab, args.train_seconds)
    size = f"{model.config.cell} {model.config.num_layers}x{model.config.hidden_size}"
    val = vocab.encode(text[split:])
    if args.val_chars:
        val = val[: args.val_chars]
    device = torch.device("cpu")
    auto = sampling_precision("auto", device)
    print(f"# {machine()}, {torch.get_num_threads()} threads")
    print(f"# CPU flags: {' '.join(cpu_flags()) or 'none of ' + ', '.join(FLAGS)}; native bf16: "
          f"{'yes' if hardware.cpu_has_native_bf16() else 'no'}; --precision auto here: {auto}")  # fmt: skip
    print(f"# model: {size} char model, {how}; one stream, temperature 1; validation: last 10% of "
          f"{args.data.name}, {len(val):,} chars")  # fmt: skip
    paths = ["fp32", "bf16", "int8"]
    if not hardware.cpu_has_native_bf16():
        paths.remove("bf16")
        print("# bf16 skipped: this CPU has no native bf16 (rnnkit refuses it there)")
    config, prime = SamplingConfig(temperature=1.0), vocab.encode("\n").astype(np.int64).tolist()
    with torch.no_grad():
        nats = {"fp32 model": score_tokens(model, val)}  # the fused forward pass: rnnkit eval's figure
        for precision in paths:
            stepper = step_function(model, precision).__self__
            if not isinstance(stepper, Stepper):  # fp32: CharLM.step, through its own stepper
                stepper = model.stepper()
            nats[precision] = score_tokens(SteppedLM(stepper).eval(), val)
        speed: dict[str, float] = {}
        for _ in range(args.rounds):  # interleaved, the best window of each path kept: see timed_best
            for precision in paths:

                def stream(p=precision):
                    while True:
                        yield from sample(model, prime, 10_000, config, seed=0, precision=p)

                speed[precision] = max(speed.get(precision, 0.0), timed_best(stream, args.seconds))
    base = speed["fp32"]
    fused = nats["fp32 model"][0] / nats["fp32 model"][1]
    print(f"{'path':14} {'MB/step':>8} {'chars/s':>9} {'vs fp32':>8} {'nats/char':>10} {'change':>9}")
    rows = []
    for precision in paths:
        stepper = step_function(model, precision).__self__
        megabytes = (stepper if isinstance(stepper, Stepper) else model.stepper()).weight_bytes / 1e6
        per_char = nats[precision][0] / nats[precision][1]
        name = "fp32 stepper" if precision == "fp32" else precision
        ratio = speed[precision] / base
        print(f"{name:14} {megabytes:>8.1f} {speed[precision]:>9,.0f} {ratio:>7.2f}x {per_char:>10.4f} "
              f"{per_char - nats['fp32'][0] / nats['fp32'][1]:>+9.5f}")  # fmt: skip
        rows.append({
            "path": name, "weight_mb_per_step": round(megabytes, 2), "chars_per_s": round(speed[precision]),
            "vs_fp32_stepper": round(ratio, 2), "val_nats_per_char": round(per_char, 5),
        })  # fmt: skip
    print(f"(the fp32 model's own forward pass, as rnnkit eval scores: {fused:.4f} nats/char)")
    print(json.dumps({
        "machine": machine(), "threads": torch.get_num_threads(), "cpu_flags": cpu_flags(), "auto": auto,
        "model": f"{size}, {how}", "val_chars": len(val), "seconds": args.seconds,
        "rounds": args.rounds, "rows": rows,
    }))  # fmt: skip


# -------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--section", choices=("all", "streams", "precision"), default="all",
                        help="streams: the implementations at 1/8/64 streams; precision: one stream in "
                        "fp32, bf16 and int8")  # fmt: skip
    parser.add_argument("--sizes", default="2x512,3x512", help="LAYERSxHIDDEN, comma-separated")
    parser.add_argument("--streams", default="1,8,64")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing window per row")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--run", type=Path, help="precision: a trained char-RNN run instead of the brief one")
    parser.add_argument("--data", type=Path, default=data_dir() / "tinyshakespeare" / "input.txt",
                        help="precision: the text (trains on 90%%, scores the rest)")  # fmt: skip
    parser.add_argument("--train-seconds", type=float, default=30.0,
                        help="precision: how long to train the 2x512 model (0: random weights)")  # fmt: skip
    parser.add_argument("--val-chars", type=int, default=0, help="precision: score only this many (0: all)")
    parser.add_argument("--rounds", type=int, default=2, help="precision: timing rounds, best kept")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.section in ("all", "streams"):
        streams_section(args)
    if args.section in ("all", "precision"):
        precision_section(args)


def streams_section(args) -> None:
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
    print()


if __name__ == "__main__":
    main()
