"""Load check of ``rnnkit serve``: many requests at once on loopback, errors and latency printed.

Starts the server as its own process (``rnnkit serve RUN --port P``), then sends ``--requests``
requests (default 2,000) with ``--concurrency`` (default 32) in flight from an asyncio client, and
prints errors, p50/p90/p99 latency and requests per second, for:

- ``healthz``: the HTTP stack alone (the baseline: what any request costs before the model works);
- ``generate``: ``POST /v1/generate`` of ``--length`` characters (default 100), a fresh seed each;
- ``score``: ``POST /v1/score`` of a 200-character text.

The same generation done in-process, one after another with no HTTP, is timed first, so the report
can say how much of a request is the model and how much the server. Without ``--run`` a small model
is trained first (the tiny preset, 300 steps, on the embedded python-stdlib corpus).

    .venv/bin/python bench/serve_load.py [--run RUN] [--requests 2000] [--concurrency 32]

Not a test: it prints its figures and one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_small(work: Path) -> Path:
    run = work / "run"
    subprocess.run(
        [sys.executable, "-m", "rnnkit", "train", "python-stdlib", "--preset", "tiny", "--out", str(run),
         "--max-steps", "300", "--quiet", "--force"],
        check=True,
    )  # fmt: skip
    return run


def in_process(run: Path, length: int, count: int) -> float:
    """Seconds per generation with the library directly: the floor under any request."""
    from rnnkit.generate import SamplingConfig
    from rnnkit.tasks.lm import generate_text, load_lm

    loaded = load_lm(run)
    config = SamplingConfig(temperature=0.8)
    started = time.perf_counter()
    for seed in range(count):
        generate_text(loaded.model, loaded.vocab, "def ", length, config, seed=seed)
    return (time.perf_counter() - started) / count


async def load(url: str, kind: str, total: int, concurrency: int, length: int) -> dict:
    import httpx2

    latencies: list[float] = []
    errors: list[str] = []
    text = ("def main():\n    return [x * 2 for x in range(10)]\n" * 5)[:200]
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx2.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        queue = iter(range(total))

        async def worker() -> None:
            for i in queue:
                started = time.perf_counter()
                try:
                    if kind == "healthz":
                        response = await client.get("/healthz")
                    elif kind == "generate":
                        body = {"prime": "def ", "length": length, "seed": i, "temperature": 0.8}
                        response = await client.post("/v1/generate", json=body)
                    else:
                        response = await client.post("/v1/score", json={"text": text, "top": 0})
                    if response.status_code != 200:
                        errors.append(f"{response.status_code} {response.text[:100]}")
                except Exception as exc:  # any failure counts as an error, and the run goes on
                    errors.append(repr(exc)[:100])
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return {
        "kind": kind, "requests": total, "concurrency": concurrency, "errors": len(errors),
        "first_errors": errors[:3], "p50_ms": round(pick(0.50), 1), "p90_ms": round(pick(0.90), 1),
        "p99_ms": round(pick(0.99), 1), "mean_ms": round(statistics.fmean(latencies) * 1000, 1),
        "requests_per_s": round(total / wall, 1), "wall_s": round(wall, 2),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a trained run folder (default: train a tiny one)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--length", type=int, default=100, help="characters per generate request")
    parser.add_argument("--kinds", default="healthz,generate,score")
    parser.add_argument("--workers", type=int, default=1, help="rnnkit serve --workers")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rnnkit-serve-load-"))
    run = args.run or train_small(work)
    print(f"# {machine()}; model {run}")
    floor = in_process(run, args.length, 50)
    print(f"in-process generation of {args.length} chars, one at a time: {floor * 1000:.1f} ms each")
    port = free_port()
    serve = ["serve", str(run), "--port", str(port), "--workers", str(args.workers)]
    server = subprocess.Popen(
        [sys.executable, "-m", "rnnkit", *serve],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx2

        deadline = time.monotonic() + 60
        while True:
            try:
                httpx2.get(f"{url}/healthz", timeout=1).raise_for_status()
                break
            except httpx2.HTTPError:
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"the server did not start: {server.stderr.read() if server.stderr else ''}")
                time.sleep(0.2)
        rows = []
        head = f"{'endpoint':9} {'requests':>8} {'conc':>5} {'errors':>6} {'p50 ms':>8} {'p90 ms':>8}"
        print(f"{head} {'p99 ms':>8} {'req/s':>8}")
        for kind in args.kinds.split(","):
            row = asyncio.run(load(url, kind, args.requests, args.concurrency, args.length))
            rows.append(row)
            cells = [row[k] for k in ("requests", "concurrency", "errors", "p50_ms", "p90_ms", "p99_ms")]
            widths = (8, 5, 6, 8, 8, 8)
            line = " ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True))
            print(f"{kind:9} {line} {row['requests_per_s']:>8}", flush=True)
            if row["errors"]:
                print(f"  first errors: {row['first_errors']}")
        generate = next((r for r in rows if r["kind"] == "generate"), None)
        if generate:
            served = 1 / generate["requests_per_s"]
            print(f"served generation: {served * 1000:.1f} ms of wall time per request at "
                  f"{args.concurrency} in flight, {floor / served:.2f}x the in-process rate")  # fmt: skip
        print(json.dumps({"machine": machine(), "in_process_ms": round(floor * 1000, 2), "rows": rows}))
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
