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

``--abuse`` measures the well-behaved ``generate`` load (``--length`` 20 by default there) twice: alone,
then beside attackers, all on 127.0.0.1, bounded in count and time:

- abandoned generations: clients that ask for 10,000 characters (half of them streamed) and hang up
  after 50 ms, 8 at a time, until the well-behaved load is done (at most ``--abandoned``);
- half-sent heads: ``--half-open`` sockets that send part of a request line and stall (the server
  should answer 408 and close each after its 10 s header deadline; they give up after 15 s);
- mixed bodies: ``Content-Length: 20`` with a chunked body of 20 MB (413 once 1 MB has come; the
  client reports how much it could send), the same with a 30-byte body (400: it is not 20 bytes), a
  chunked body with no length (411), and a declared length over the limit (413 before any body).

It prints the well-behaved clients' errors (each kind counted, the first few shown) and p50/p99
latency in both runs, what each kind of attacker got, and the server's peak memory.

    .venv/bin/python bench/serve_load.py --abuse --requests 300 --concurrency 8

``--mixed`` serves three tasks from one server at once: the language model, a sentiment classifier and
a captioner (``rnnkit serve lm=RUN clf=RUN cap=RUN``), and sends ``--requests`` requests with
``--concurrency`` in flight, taking turns: ``POST /v1/generate`` (``--length`` characters),
``POST /v1/classify`` (8 sentences in one batch) and ``POST /v1/caption`` (a 64x64 PNG as the body). It
prints errors and p50/p90/p99 latency per endpoint, beside each call done in-process, one at a time.
Without ``--classifier``/``--captioner`` a small one of each is trained first (SST-2 from the shared data,
and ``rnnkit caption make-shapes`` pictures), a minute or so on two cores. It exits with status 1 when
any request failed.

    .venv/bin/python bench/serve_load.py --mixed --requests 2000 --concurrency 32

Not a test: it prints its figures and one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import data_dir, machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_small(work: Path) -> Path:
    run = work / "run"
    subprocess.run(
        [sys.executable, "-m", "rnnkit", "train", "python-stdlib", "--preset", "tiny", "--out", str(run),
         "--max-steps", "300", "--threads", "1", "--quiet", "--force"],
        check=True,
    )  # fmt: skip
    return run


def rnnkit(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "rnnkit", *args], check=True, stdout=subprocess.DEVNULL)


def train_classifier(work: Path) -> Path:
    """A sentiment classifier of SST-2 sentences (default sizes, 60 steps: it is the server that is timed)."""
    run = work / "classifier"
    sst2 = data_dir() / "sentiment" / "sst2" / "train.tsv"
    rnnkit("classify", "train", str(sst2), "--text-column", "sentence", "--label-column", "label", "--out",
           str(run), "--max-steps", "60", "--eval-interval", "60", "--threads", "1", "--quiet")  # fmt: skip
    return run


def train_captioner(work: Path) -> Path:
    """A captioner of 64x64 make-shapes pictures (default sizes, 30 steps)."""
    run, shapes = work / "captioner", work / "shapes"
    rnnkit("caption", "make-shapes", str(shapes), "--n", "200", "--size", "64")
    rnnkit("caption", "train", str(shapes / "images"), str(shapes / "captions.csv"), "--out", str(run),
           "--max-steps", "30", "--eval-interval", "30", "--threads", "1", "--quiet")  # fmt: skip
    return run


SENTENCES = [
    "a gorgeous , witty , seductive movie .",
    "the plot is nothing but boilerplate clichés from start to finish .",
    "an utterly charming and hilarious film that reminded me of my childhood .",
    "it 's a bad sign when you 're rooting for the film to end .",
    "the performances are uniformly excellent .",
    "too long , too slow and too silly .",
    "one of the most beautiful films of the year .",
    "a dull , simple-minded and stereotypical tale of drugs , death and mind-numbing indifference .",
]
"""What each /v1/classify request of the mixed load sends: eight sentences, one batch."""


def draw_picture(seed: int, size: int = 64) -> bytes:
    """A PNG of a coloured shape on white, as the make-shapes pictures are (the body of /v1/caption)."""
    import io
    import random

    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    picture = Image.new("RGB", (size, size), "white")
    box = sorted(rng.sample(range(4, size - 4), 2)), sorted(rng.sample(range(4, size - 4), 2))
    colour = rng.choice(["red", "green", "blue", "yellow"])
    draw = ImageDraw.Draw(picture)
    (draw.ellipse if seed % 2 else draw.rectangle)((box[0][0], box[1][0], box[0][1], box[1][1]), fill=colour)
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


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
        "error_kinds": dict(collections.Counter(e.split(" ", 1)[0].split("(", 1)[0] for e in errors)),
        "first_errors": errors[:3], "p50_ms": round(pick(0.50), 1), "p90_ms": round(pick(0.90), 1),
        "p99_ms": round(pick(0.99), 1), "mean_ms": round(statistics.fmean(latencies) * 1000, 1),
        "requests_per_s": round(total / wall, 1), "wall_s": round(wall, 2),
    }  # fmt: skip


# -------------------------------------------------------------------------------------------------
# --abuse: attackers beside the well-behaved load


def post_bytes(path: str, payload: dict) -> bytes:
    body = json.dumps(payload).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


async def until_closed(reader: asyncio.StreamReader, began: asyncio.Event | None = None) -> bytes:
    out = b""
    try:
        while chunk := await reader.read(65536):
            out += chunk
            if began is not None:
                began.set()
    except ConnectionError:
        pass
    return out


def status_of(raw: bytes) -> str:
    parts = raw.split(b" ", 2)
    return parts[1].decode("latin-1") if len(parts) > 1 and raw.startswith(b"HTTP/") else "closed"


async def abandoned(port: int, done: asyncio.Event, most: int) -> dict:
    """Long generations whose clients hang up after 50 ms, 8 at a time, until ``done`` (or ``most``)."""
    count = 0

    async def one(i: int) -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        body = {"prime": "def ", "length": 10_000, "seed": i, "stream": i % 2 == 1}
        writer.write(post_bytes("/v1/generate", body))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()  # gone, without reading a byte

    async def client(first: int) -> None:
        nonlocal count
        i = first
        while not done.is_set() and count < most:
            count += 1
            with contextlib.suppress(OSError):  # the server may refuse a connection: go on
                await one(i)
            i += 8
            await asyncio.sleep(0.05)

    await asyncio.gather(*(client(k) for k in range(8)))
    return {"abandoned": count}


async def half_open(port: int, count: int, hold: float) -> dict:
    """Sockets that send part of a request line and stall; how the server ends them, and when."""

    async def one() -> tuple[str, float | None]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
        started = time.perf_counter()
        try:
            raw = await asyncio.wait_for(until_closed(reader), hold)
            return status_of(raw), time.perf_counter() - started
        except TimeoutError:
            return "still open", None
        finally:
            writer.close()

    found = await asyncio.gather(*(one() for _ in range(count)))
    seconds = sorted(t for _, t in found if t is not None)
    return {
        "half_open": count,
        "outcomes": dict(collections.Counter(status for status, _ in found)),
        "closed_after_s": round(seconds[len(seconds) // 2], 2) if seconds else None,
    }


async def mixed_bodies(port: int, rounds: int, big: int) -> dict:
    """Length headers that lie or are missing, and bodies past the limit."""

    async def send(head: str, body_chunks: int, piece: bytes, tail: bytes = b"") -> tuple[str, int]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        began = asyncio.Event()
        answer = asyncio.ensure_future(until_closed(reader, began))
        sent = 0
        try:
            writer.write(head.encode())
            for _ in range(body_chunks):
                if began.is_set():  # answered: a client that kept writing would only reset the connection
                    break
                writer.write(piece)
                await writer.drain()
                sent += len(piece)
            writer.write(tail)
            await writer.drain()
        except OSError:  # the server closed the connection while we sent: what it should do
            pass
        try:
            raw = await asyncio.wait_for(answer, 15)
        except TimeoutError:
            raw = b"timeout"
        writer.close()
        return status_of(raw), sent

    base = "POST /v1/score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    both = base + "Content-Length: 20\r\nTransfer-Encoding: chunked\r\n\r\n"
    piece = b"10000\r\n" + b"x" * 65536 + b"\r\n"
    small = b'{"text": "the cat sat on it"}'
    kinds = {
        "length 20 + chunked 20 MB": (both, big // 65536, piece, b"0\r\n\r\n"),
        "length 20 + chunked 30 B": (both, 1, f"{len(small):x}\r\n".encode() + small + b"\r\n", b"0\r\n\r\n"),
        "chunked, no length": (base + "Transfer-Encoding: chunked\r\n\r\n", 16, piece, b"0\r\n\r\n"),
        "length 50 MB": (base + "Content-Length: 50000000\r\n\r\n", 16, b"x" * 65536),
    }
    out = {}
    for name, (head, chunks, body, *tail) in kinds.items():
        results = [await send(head, chunks, body, *tail) for _ in range(rounds)]
        out[name] = {
            "answers": dict(collections.Counter(status for status, _ in results)),
            "most_sent_mb": round(max(sent for _, sent in results) / 1e6, 2),
        }
    return out


def memory_mb(pid: int, field: str = "VmHWM") -> float | None:
    """The server's peak (VmHWM) or present (VmRSS) resident memory, from /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


async def under_abuse(url: str, port: int, args: argparse.Namespace) -> tuple[dict, dict]:
    done = asyncio.Event()

    async def well_behaved() -> dict:
        try:
            return await load(url, "generate", args.requests, args.concurrency, args.length)
        finally:
            done.set()

    found = await asyncio.wait_for(
        asyncio.gather(
            well_behaved(),
            abandoned(port, done, args.abandoned),
            half_open(port, args.half_open, 15),
            mixed_bodies(port, 3, 20_000_000),
        ),
        timeout=args.abuse_seconds,
    )
    row, gone, half, bodies = found
    return row, {**gone, **half, "bodies": bodies}


# -------------------------------------------------------------------------------------------------
# --mixed: three tasks from one server


MIXED = ("generate", "classify", "caption")


def percentiles(latencies: list[float]) -> dict:
    latencies = sorted(latencies)
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return {"p50_ms": round(pick(0.50), 1), "p90_ms": round(pick(0.90), 1), "p99_ms": round(pick(0.99), 1)}


async def mixed_load(
    url: str, total: int, concurrency: int, length: int, pictures: list[bytes]
) -> list[dict]:
    """``total`` requests taking turns over :data:`MIXED`, ``concurrency`` in flight; a row per endpoint."""
    import httpx2

    latencies: dict[str, list[float]] = {kind: [] for kind in MIXED}
    errors: dict[str, list[str]] = {kind: [] for kind in MIXED}
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx2.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        queue = iter(range(total))

        async def one(i: int) -> tuple[str, httpx2.Response]:
            kind = MIXED[i % len(MIXED)]
            if kind == "generate":
                body = {"model": "lm", "prime": "def ", "length": length, "seed": i, "temperature": 0.8}
                return kind, await client.post("/v1/generate", json=body)
            if kind == "classify":
                return kind, await client.post("/v1/classify", json={"model": "clf", "texts": SENTENCES})
            picture = pictures[i % len(pictures)]
            headers = {"content-type": "image/png"}
            return kind, await client.post("/v1/caption?model=cap", content=picture, headers=headers)

        async def worker() -> None:
            for i in queue:
                kind = MIXED[i % len(MIXED)]
                started = time.perf_counter()
                try:
                    kind, response = await one(i)
                    if response.status_code != 200:
                        errors[kind].append(f"{response.status_code} {response.text[:100]}")
                except Exception as exc:  # any failure counts as an error, and the run goes on
                    errors[kind].append(repr(exc)[:100])
                latencies[kind].append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return [
        {"kind": kind, "requests": len(latencies[kind]), "concurrency": concurrency,
         "errors": len(errors[kind]), "first_errors": errors[kind][:3], **percentiles(latencies[kind]),
         "requests_per_s": round(len(latencies[kind]) / wall, 1), "wall_s": round(wall, 2)}
        for kind in MIXED
    ]  # fmt: skip


def in_process_mixed(runs: dict[str, Path], length: int, pictures: list[bytes], count: int = 20) -> dict:
    """Milliseconds per call of each endpoint's library method, one at a time, no HTTP."""
    import rnnkit as library

    lm, classifier, captioner = (library.load(runs[name]) for name in ("lm", "clf", "cap"))
    calls = {
        "generate": lambda i: lm.generate("def ", length, temperature=0.8, seed=i),
        "classify": lambda i: classifier.classify(SENTENCES),
        "caption": lambda i: captioner.caption([pictures[i % len(pictures)]]),
    }
    out = {}
    for kind, call in calls.items():
        call(0)  # warm up
        started = time.perf_counter()
        for i in range(count):
            call(i)
        out[kind] = round((time.perf_counter() - started) / count * 1000, 2)
    return out


def mixed_run(url: str, floors: dict, pictures: list[bytes], args: argparse.Namespace) -> None:
    """The ``--mixed`` load and its report; exits with status 1 when any request failed."""
    print(f"mixed load: {args.requests} requests taking turns over {', '.join(MIXED)}, "
          f"{args.concurrency} in flight, one server")  # fmt: skip
    rows = asyncio.run(mixed_load(url, args.requests, args.concurrency, args.length, pictures))
    print(
        f"{'endpoint':9} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'req/s':>8}"
    )
    for row in rows:
        cells = [row[k] for k in ("requests", "errors", "p50_ms", "p90_ms", "p99_ms", "requests_per_s")]
        print(
            f"{row['kind']:9} "
            + " ".join(f"{c:>{w}}" for c, w in zip(cells, (8, 6, 8, 8, 8, 8), strict=True))
        )
        if row["errors"]:
            print(f"  first errors: {row['first_errors']}")
    total = sum(r["errors"] for r in rows)
    print(f"errors: {total} of {sum(r['requests'] for r in rows)}; wall {rows[0]['wall_s']} s")
    print(json.dumps({"machine": machine(), "in_process_ms": floors, "rows": rows}))
    if total:
        sys.exit(1)  # a failed request is a failed check, not just a figure


def print_row(label: str, row: dict) -> None:
    print(f"{label:22} {row['requests']:>8} {row['concurrency']:>5} {row['errors']:>6} {row['p50_ms']:>8} "
          f"{row['p99_ms']:>8} {row['requests_per_s']:>8}", flush=True)  # fmt: skip
    if row["errors"]:
        print(f"  errors: {row['error_kinds']}; first: {row['first_errors']}")


def abuse_run(url: str, port: int, server: subprocess.Popen, args: argparse.Namespace) -> None:
    print(f"well-behaved: POST /v1/generate of {args.length} characters, {args.concurrency} in flight")
    print(f"{'run':22} {'requests':>8} {'conc':>5} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
    alone = asyncio.run(load(url, "generate", args.requests, args.concurrency, args.length))
    print_row("alone", alone)
    before = memory_mb(server.pid)
    beside, attacks = asyncio.run(under_abuse(url, port, args))
    print_row("beside the abuse", beside)
    print(f"abandoned generations (10,000 characters, hung up after 50 ms): {attacks['abandoned']}")
    print(f"half-sent heads: {attacks['half_open']}, ended by the server as {attacks['outcomes']} "
          f"after {attacks['closed_after_s']} s (median)")  # fmt: skip
    for name, result in attacks["bodies"].items():
        print(f"{name:26} answers {result['answers']}, at most {result['most_sent_mb']} MB sent")
    peak = memory_mb(server.pid)
    print(f"server peak memory (VmHWM): {before} MB before the abuse, {peak} MB after")
    print(json.dumps({"machine": machine(), "alone": alone, "beside_abuse": beside, "attacks": attacks,
                      "server_peak_mb_before": before, "server_peak_mb": peak}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a trained run folder (default: train a tiny one)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--length", type=int, help="characters per generate request (100; 20 with --abuse)")
    parser.add_argument("--kinds", default="healthz,generate,score")
    parser.add_argument("--workers", type=int, default=1, help="rnnkit serve --workers")
    parser.add_argument("--abuse", action="store_true", help="the generate load alone, then beside attackers")
    parser.add_argument("--abandoned", type=int, default=400, help="--abuse: most abandoned generations")
    parser.add_argument("--half-open", type=int, default=64, help="--abuse: sockets sending half a request")
    parser.add_argument("--abuse-seconds", type=float, default=120, help="--abuse: give up after this long")
    parser.add_argument("--mixed", action="store_true", help="a language model, a classifier and a captioner")
    parser.add_argument("--classifier", type=Path, help="--mixed: a classifier run (default: train one)")
    parser.add_argument("--captioner", type=Path, help="--mixed: a captioner run (default: train one)")
    args = parser.parse_args()
    if args.length is None:
        args.length = 20 if args.abuse else 100
    work = Path(tempfile.mkdtemp(prefix="rnnkit-serve-load-"))
    run = args.run or train_small(work)
    served = [str(run)]
    if args.mixed:
        runs = {"lm": run, "clf": args.classifier or train_classifier(work)}
        runs["cap"] = args.captioner or train_captioner(work)
        served = [f"{name}={path}" for name, path in runs.items()]
        pictures = [draw_picture(k) for k in range(16)]
        print(f"# {machine()}; models {', '.join(served)}")
        floors = in_process_mixed(runs, args.length, pictures)  # before the server starts, as below
        print(f"in-process, one at a time (ms per call): {floors}")
    else:
        print(f"# {machine()}; model {run}")
        floor = in_process(run, args.length, 50)
        print(f"in-process generation of {args.length} chars, one at a time: {floor * 1000:.1f} ms each")
    port = free_port()
    serve = ["serve", *served, "--port", str(port), "--workers", str(args.workers)]
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
        if args.abuse:
            abuse_run(url, port, server, args)
            return
        if args.mixed:
            mixed_run(url, floors, pictures, args)
            return
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
