"""``rnnkit serve | inspect | plot``: the top-level commands beyond the char-RNN's."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rnnkit.cli.options import (
    CheckpointOpt,
    EncodingOpt,
    Opt,
)
from rnnkit.console import setup_logging
from rnnkit.errors import UsageError

tools_app = typer.Typer()


@tools_app.command(
    epilog="Examples:\n\n"
    "  rnnkit serve runs/shakespeare                 # http://127.0.0.1:8000/ is the playground\n\n"
    "  rnnkit serve poems=runs/poetry code=runs/code --port 9000\n\n"
    "  rnnkit serve runs/shakespeare --host 0.0.0.0 --allow-host box.lan   # reachable as http://box.lan:8000/\n\n"
    "  rnnkit serve runs/shakespeare runs/sst2 runs/cws runs/digits runs/shapes   # any mix of tasks\n\n",
)
def serve(
    runs: Annotated[list[str], typer.Argument(help="Run folders to serve: PATH, or NAME=PATH.")],
    host: Annotated[str, Opt(help="Address to bind (0.0.0.0 exposes it to the network).")] = "127.0.0.1",
    port: Annotated[int, Opt(help="TCP port.")] = 8000,
    checkpoint: CheckpointOpt = "best",
    device: Annotated[str, Opt(help="cpu, cuda or auto.")] = "cpu",
    max_body: Annotated[int, Opt(help="Largest JSON request body in bytes.")] = 1_000_000,
    max_upload: Annotated[
        int, Opt(help="Largest file sent to /v1/transcribe or /v1/caption, in bytes.")
    ] = 5_000_000,
    max_audio_seconds: Annotated[
        float, Opt(help="Longest recording /v1/transcribe takes, in seconds.")
    ] = 20.0,
    max_pixels: Annotated[
        int, Opt(help="Most pixels (width x height) of a picture /v1/caption takes.")
    ] = 16_777_216,
    backbone: Annotated[
        str,
        Opt(help="The external backbone (module:function) the captioner runs were trained with, if any."),
    ] = "",
    workers: Annotated[int, Opt(help="Requests running the models at once; the rest wait their turn.")] = 1,
    allow_host: Annotated[
        list[str] | None,
        Opt(help="Also answer requests addressed to this host name (repeatable; loopback names always)."),
    ] = None,
) -> None:
    """Serve trained models of any task over HTTP: a JSON API (/v1/...), OpenAPI docs (/docs), a
    playground (/)."""
    from rnnkit.serve import ServeConfig, create_app
    from rnnkit.serve.server import serve as serve_app

    setup_logging()
    if not 0 < port < 65536:
        raise UsageError(f"--port: expected 1..65535, got {port}")
    if workers < 1:
        raise UsageError(f"--workers: expected 1 or more, got {workers}")
    config = ServeConfig(runs=runs, checkpoint=checkpoint, device=device, max_body=max_body, workers=workers,
                         allowed_hosts=allow_host or [], host=host, port=port, max_upload=max_upload,
                         max_audio_seconds=max_audio_seconds, max_pixels=max_pixels,
                         backbone=backbone)  # fmt: skip
    serve_app(create_app(config), config)  # says where it listens once the port is bound


@tools_app.command(
    epilog="Example:\n\n  rnnkit inspect runs/shakespeare ../shared/data/tinyshakespeare/input.txt "
    "--max-chars 3000   (writes runs/shakespeare/report.html)\n\n",
)
def inspect(
    run: Annotated[Path, typer.Argument(help="A run folder made by rnnkit train.")],
    file: Annotated[Path, typer.Argument(help="A text file to read through the model.")],
    out: Annotated[
        Path | None, Opt("--out", "-o", help="The HTML report to write (default: RUN/report.html).")
    ] = None,
    layer: Annotated[int, Opt(help="Which layer (-1: the top).")] = -1,
    state: Annotated[str, Opt(help="auto, h (output) or c (LSTM cell, tanh).")] = "auto",
    max_chars: Annotated[int, Opt(help="Read at most this many characters of the file.")] = 2000,
    top: Annotated[int, Opt(help="Units listed per feature.")] = 5,
    checkpoint: CheckpointOpt = "best",
    encoding: EncodingOpt = "utf-8",
) -> None:
    """Write a self-contained HTML page: each hidden unit's activation as colour over a text."""
    from rnnkit.serve.report import inspect_file
    from rnnkit.tasks import load_run

    setup_logging()
    if not 2 <= max_chars <= 100_000:
        raise UsageError(f"--max-chars: expected 2..100000, got {max_chars}")
    loaded = load_run(run, checkpoint, task="lm")
    out = out or run / "report.html"
    data = inspect_file(
        loaded, file, out, name=run.name, layer=layer, state=state, max_chars=max_chars, top=top,
        encoding=encoding,
    )  # fmt: skip
    print(f"{out}: {len(data['tokens']):,} tokens, layer {data['layer']}, state {data['state']}")
    for feature in data["features"]:
        if feature["units"]:
            best = feature["units"][0]
            print(f"  {feature['name']}: unit {best['unit']} (r={best['r']:+.2f})")


@tools_app.command()
def plot(
    run: Annotated[Path, typer.Argument(help="Any run folder (its metrics.jsonl).")],
    out: Annotated[Path | None, Opt("--out", "-o", help="PNG to write (default RUN/curves.png).")] = None,
) -> None:
    """Training curves as a PNG: training and validation loss, and the other validation metrics."""
    from rnnkit.curves import plot_curves

    setup_logging()
    target = out or run / "curves.png"
    drawn = plot_curves(run, target)
    print(f"{target}: {', '.join(drawn)}")
