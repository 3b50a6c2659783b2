"""Training throughput of char-RNN models: rnnkit against hand-written PyTorch loops, same sizes.

For each model size it times full training steps (forward, backward, AdamW step) on random
characters and prints chars/s and achieved GFLOP/s, next to

- ``nn.LSTM``: a hand-written fp32 loop calling ``torch.nn.LSTM`` (the plain-PyTorch baseline);
- ``LSTMCell``: a hand-written fp32 Python loop over ``torch.nn.LSTMCell``;
- the matmul peak measured on the same device (a large fp32 and bf16 GEMM).

rnnkit runs with its fused backend (cuDNN / oneDNN), its unrolled backend, and, with ``--compile``,
the unrolled backend under ``torch.compile``; in fp32 and, where the hardware has it, bf16 autocast.
FLOPs count the matrix products only: 2 * (4H(E+H) + 4H(H+H)*(L-1) + H*V) per char forward, times 3
for forward + backward (the usual estimate).

    .venv/bin/python bench/throughput.py [--device cpu|cuda] [--sizes 2x128,2x512] [--seconds 3]

Prints a table and one JSON object per row. Not a test.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn
from torch.nn import functional as F

from common import PlainLSTM, machine
from rnnkit.tasks.lm import CharLM, ModelConfig
from rnnkit.train.trainer import autocast, cpu_has_native_bf16, detach

VOCAB, EMBED = 65, 64
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def flops_per_char(cell: str, layers: int, hidden: int) -> float:
    g = GATES[cell]
    macs = g * hidden * (EMBED + hidden) + g * hidden * 2 * hidden * (layers - 1) + hidden * VOCAB
    return 3 * 2 * macs


class CellLoop(nn.Module):
    def __init__(self, hidden, layers):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, EMBED)
        self.cells = nn.ModuleList(nn.LSTMCell(EMBED if i == 0 else hidden, hidden) for i in range(layers))
        self.head = nn.Linear(hidden, VOCAB)

    def forward(self, ids, state=None):
        x = self.embedding(ids)
        batch, steps, _ = x.shape
        if state is None:
            zeros = x.new_zeros(batch, self.cells[0].hidden_size)
            state = [(zeros, zeros) for _ in self.cells]
        outs = []
        for t in range(steps):
            h = x[:, t]
            new_state = []
            for cell, (hx, cx) in zip(self.cells, state, strict=True):
                hx, cx = cell(h, (hx, cx))
                new_state.append((hx, cx))
                h = hx
            state = new_state
            outs.append(h)
        return self.head(torch.stack(outs, 1)), state


def time_training(model, device, precision, batch, steps, seconds, warmup=2) -> float:
    """Seconds per training step, measured over at least ``seconds`` after ``warmup`` steps."""
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, VOCAB, (batch, steps), device=device)
    y = torch.randint(0, VOCAB, (batch, steps), device=device)
    state = None

    def step():
        nonlocal state
        with autocast(device, precision):
            logits, new_state = model(x, state)
            loss = F.cross_entropy(logits.float().reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        state = detach(new_state)

    for _ in range(warmup):
        step()
    sync(device)
    count, started = 0, time.perf_counter()
    while True:
        step()
        count += 1
        sync(device)
        spent = time.perf_counter() - started
        if spent >= seconds and count >= 3:
            return spent / count


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device, dtype, seconds=1.5, n=2048) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or count < 3:
        a @ b
        count += 1
        if count % 10 == 0:
            sync(device)
    sync(device)
    return count * 2 * n**3 / (time.perf_counter() - started) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default="2x128,2x256,2x512,3x512", help="LSTM sizes LAYERSxHIDDEN")
    parser.add_argument("--cells", default="gru,rnn", help="other cells, timed at the first 2x size")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=3.0, help="timing window per row")
    parser.add_argument("--compile", action="store_true", help="also time unrolled + torch.compile")
    parser.add_argument("--compile-sizes", default="2x512", help="sizes to compile (compiling is slow)")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--no-unrolled", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    native_bf16 = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_native_bf16()
    precisions = ["fp32", "bf16"] if native_bf16 else ["fp32"]
    peak = {"fp32": matmul_peak(device, torch.float32)}
    if native_bf16:
        peak["bf16"] = matmul_peak(device, torch.bfloat16)
    peaks = ", ".join(f"{k} {v:,.0f} GFLOP/s" for k, v in peak.items())
    print(f"# {machine()}; device {device}; matmul peak {peaks}")
    print(f"# batch {args.batch} x {args.steps} steps, embedding {EMBED}, vocabulary {VOCAB}")
    print(
        f"{'model':10} {'implementation':26} {'prec':5} {'chars/s':>12} {'GFLOP/s':>9} {'% peak':>7} "
        f"{'vs nn.LSTM':>10}"
    )
    rows = []

    def record(model_name, impl, precision, seconds_per_step, flops, base):
        chars = args.batch * args.steps / seconds_per_step
        gflops = chars * flops / 1e9
        row = {
            "model": model_name, "implementation": impl, "precision": precision, "chars_per_s": round(chars),
            "gflops": round(gflops, 1), "peak_fraction": round(gflops / peak[precision], 3),
            "vs_nn_lstm": round(chars / base, 2) if base else None, "device": str(device),
        }  # fmt: skip
        rows.append(row)
        ratio = f"{row['vs_nn_lstm']:.2f}x" if base else "-"
        print(
            f"{model_name:10} {impl:26} {precision:5} {chars:>12,.0f} {gflops:>9,.1f} "
            f"{100 * row['peak_fraction']:>6.1f}% {ratio:>10}",
            flush=True,
        )
        return chars

    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",") if size]
    jobs = [("lstm", layers, hidden) for layers, hidden in sizes]
    first = next(((layers, hidden) for layers, hidden in sizes if layers == 2), sizes[0])
    jobs += [(cell, *first) for cell in args.cells.split(",") if cell]
    baselines: dict[str, float | None] = {}
    for cell, layers, hidden in jobs:
        name = f"{cell} {layers}x{hidden}"
        flops = flops_per_char(cell, layers, hidden)
        base = None
        if cell == "lstm" and not args.no_baselines:
            torch.manual_seed(0)
            base = record(
                name,
                "hand-written nn.LSTM",
                "fp32",
                time_training(
                    PlainLSTM(VOCAB, hidden, layers, EMBED),
                    device,
                    "fp32",
                    args.batch,
                    args.steps,
                    args.seconds,
                ),
                flops,
                None,
            )
            torch.manual_seed(0)
            record(
                name,
                "hand-written LSTMCell loop",
                "fp32",
                time_training(CellLoop(hidden, layers), device, "fp32", args.batch, args.steps, args.seconds),
                flops,
                base,
            )
        config = ModelConfig(cell=cell, embedding_size=EMBED, hidden_size=hidden, num_layers=layers)
        for precision in precisions:
            torch.manual_seed(0)
            record(
                name,
                "rnnkit fused",
                precision,
                time_training(CharLM(VOCAB, config), device, precision, args.batch, args.steps, args.seconds),
                flops,
                base,
            )
            if not args.no_unrolled:
                model = CharLM(VOCAB, config)
                model.rnn.backend = "unrolled"
                record(
                    name,
                    "rnnkit unrolled",
                    precision,
                    time_training(model, device, precision, args.batch, args.steps, args.seconds),
                    flops,
                    base,
                )
        baselines[name] = base
    # torch.compile of a 100-step unrolled loop takes minutes: these rows come last, fp32 only
    for size in args.compile_sizes.split(",") if args.compile else []:
        layers, hidden = (int(v) for v in size.split("x"))
        name = f"lstm {layers}x{hidden}"
        config = ModelConfig(cell="lstm", embedding_size=EMBED, hidden_size=hidden, num_layers=layers)
        torch.manual_seed(0)
        model = CharLM(VOCAB, config)
        model.rnn.backend = "unrolled"
        seconds = time_training(
            torch.compile(model), device, "fp32", args.batch, args.steps, args.seconds, warmup=3
        )
        record(
            name,
            "rnnkit unrolled+compile",
            "fp32",
            seconds,
            flops_per_char("lstm", layers, hidden),
            baselines.get(name),
        )
    print(json.dumps({"machine": machine(), "device": str(device), "matmul_peak_gflops": peak, "rows": rows}))


if __name__ == "__main__":
    main()
