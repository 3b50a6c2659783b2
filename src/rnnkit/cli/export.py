"""``rnnkit export``: a trained char-RNN or classifier as an ONNX file (``rnnkit.export``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rnnkit.cli.options import CheckpointOpt, Opt
from rnnkit.console import setup_logging

export_app = typer.Typer()


@export_app.command(
    epilog="Examples:\n\n"
    "  rnnkit export runs/shakespeare --format onnx --out runs/lm-onnx   # step.onnx, export.json\n\n"
    "  rnnkit export runs/sst2 --out runs/sst2-onnx                      # classifier.onnx, export.json\n\n"
    "Running them with onnxruntime: docs/export.md.\n\n",
)
def export(
    run: Annotated[Path, typer.Argument(help="A run folder of a char-RNN (rnnkit train) or classifier.")],
    out: Annotated[
        Path,
        Opt("--out", "-o", help="Folder to write the .onnx file and its export.json into (made if needed)."),
    ],
    format: Annotated[str, Opt("--format", help="onnx (the one format for now).")] = "onnx",
    checkpoint: CheckpointOpt = "best",
    force: Annotated[bool, Opt(help="Replace the files an earlier export left in --out.")] = False,
) -> None:
    """Export a model for other runtimes: a char-RNN's one-step function, or a classifier, as ONNX."""
    from rnnkit.export import export_run

    setup_logging()
    exported = export_run(run, out, format=format, checkpoint=checkpoint, force=force)
    print(exported.summary())
