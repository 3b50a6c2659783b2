"""``rnnkit train | sample | eval``: the char-RNN language model, the main job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rnnkit.cli.options import (
    CONFIG_FLAGS,
    CheckpointOpt,
    ConfigValues,
    EncodingOpt,
    ForceOpt,
    Opt,
    ResumeOpt,
    SetOpt,
    _train_task,
    config_flags,
)
from rnnkit.console import setup_logging
from rnnkit.errors import UsageError
from rnnkit.tasks.lm import presets_help, saved_config
from rnnkit.tasks.lm.budget import starting_config
from rnnkit.tasks.lm.task import sample_streams, score_files, train_report

lm_app = typer.Typer()


@lm_app.command(
    epilog="Examples:\n\n"
    "  rnnkit train --preset demo --out runs/demo\n\n"
    "  rnnkit train ../shared/data/tinyshakespeare/input.txt --preset shakespeare --out runs/shakespeare\n\n"
    "  rnnkit train poetry.txt --preset poetry --out runs/poetry --max-minutes 15\n\n"
    "  rnnkit train input.txt --max-minutes 45   (--preset auto: sized for the budget)\n\n"
    "  rnnkit train jay.txt --preset lyrics --cell gru --hidden-size 384 --out runs/jay\n\n"
    "  rnnkit train --resume runs/shakespeare --max-minutes 30\n\n"
    "  torchrun --nproc-per-node 2 -m rnnkit train ../shared/data/tinyshakespeare/input.txt --out runs/ddp"
    "   (DDP; see docs/scaling.md)\n\n",
)
@config_flags("lm", preset=True)
def train(
    data: Annotated[
        list[str] | None,
        typer.Argument(
            help="Text files, folders, globs, chinese-poetry JSON files, or python-stdlib (the default).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[Path | None, Opt("--out", "-o", help="Run folder for checkpoints and metrics.")] = None,
    preset: Annotated[
        str,
        Opt(
            help="Starting configuration; each flag below overrides it, and a flag's default is the "
            "preset's. Default: auto when --max-minutes is given, else small. The presets: " + presets_help(),
            show_default=False,
        ),
    ] = "",
    values: ConfigValues = CONFIG_FLAGS,
    resume: ResumeOpt = None,
    force: ForceOpt = False,
    set_: SetOpt = None,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress bar or samples; warnings only.")] = False,
) -> None:
    """Train a character language model (a char-RNN) on text and save it to a run folder."""

    name = preset or ("auto" if values.get("train.max_minutes") is not None else "small")
    _train_task(
        "lm", values, set_, data=data, fresh=lambda: starting_config(name, values, set_, data and list(data)),
        base={"data.sources": list(data) if data else None}, default_out=Path("runs") / name,
        saved=saved_config, out=out, resume=resume, force=force, quiet=quiet, report=train_report,
        checkpoint_at_eval=False,
    )  # fmt: skip


@lm_app.command(
    epilog="Examples:\n\n"
    "  rnnkit sample runs/shakespeare --prime 'ROMEO:' --length 500 --temperature 0.8\n\n"
    "  rnnkit sample runs/poetry --acrostic 春夏秋冬 --line-chars 7\n\n"
    "  rnnkit sample runs/poetry --line-chars 5 --lines 8 --top-p 0.9 --seed 3\n\n"
    "  rnnkit sample runs/code --prime 'def ' --beam 4 --length 80\n\n",
)
def sample(
    run: Annotated[Path, typer.Argument(help="A run folder made by rnnkit train.")],
    prime: Annotated[
        str,
        Opt(
            help="Text to start from (the model reads it first). An empty prime starts as after a line "
            "break, or from the first token when the vocabulary has no line break."
        ),
    ] = "\n",
    length: Annotated[int, Opt(help="Characters to generate.")] = 500,
    temperature: Annotated[float, Opt(help="Lower is safer, higher is wilder; 0 is greedy.")] = 0.8,
    top_k: Annotated[int, Opt(help="Sample among the k most likely characters only (0: all).")] = 0,
    top_p: Annotated[float, Opt(help="Nucleus sampling: the smallest set with this much probability.")] = 1.0,
    seed: Annotated[int | None, Opt(help="Random seed for reproducible output.")] = None,
    num_samples: Annotated[int, Opt(help="Independent samples to write.")] = 1,
    stop: Annotated[str | None, Opt(help="Stop a sample when it produces this string.")] = None,
    greedy: Annotated[
        bool, Opt(help="Always take the most likely character (same as --temperature 0).")
    ] = False,
    beam: Annotated[int, Opt(help="Beam search with this many beams (0: sample).")] = 0,
    acrostic: Annotated[str, Opt(help="藏头诗: line i starts with the i-th of these characters.")] = "",
    line_chars: Annotated[
        int | None,
        Opt(
            help="Poem form: characters per line, 5 or 7 (五言, 七言); 5 when only --lines or --acrostic "
            "is given.",
            show_default=False,
        ),
    ] = None,
    lines: Annotated[
        int | None,
        Opt(
            help="Poem form: number of lines (4: 绝句, 8: 律诗); default: the acrostic's length, else 4.",
            show_default=False,
        ),
    ] = None,
    checkpoint: CheckpointOpt = "best",
    device: Annotated[str, Opt(help="cpu, cuda or auto.")] = "cpu",
    precision: Annotated[
        str,
        Opt(
            help="Weights while writing: fp32, bf16, int8 (CPU only; smaller and faster, slightly less "
            "exact) or auto (bf16 where the hardware has it natively, else fp32)."
        ),
    ] = "fp32",
) -> None:
    """Generate text from a trained model, streaming it to standard output."""
    from rnnkit.generate import SamplingConfig
    from rnnkit.tasks import load_run
    from rnnkit.train.trainer import resolve_device

    setup_logging()
    if length < 0 or num_samples < 1:
        raise UsageError("--length must be 0 or more and --num-samples at least 1")
    config = SamplingConfig(
        temperature=0.0 if greedy else temperature, top_k=top_k, top_p=top_p, precision=precision
    )
    loaded = load_run(run, checkpoint, device=str(resolve_device(device)), task="lm")
    streams = sample_streams(
        loaded, prime, length, config, num_samples=num_samples, seed=seed, stop=stop, beam=beam,
        line_chars=line_chars, lines=lines, acrostic=acrostic,
    )  # fmt: skip
    for index, pieces in enumerate(streams):
        if num_samples > 1:
            print(f"--- sample {index + 1} ---")
        for text in pieces:
            print(text, end="", flush=True)
        print(flush=True)


@lm_app.command(
    name="eval",
    epilog="Examples:\n\n"
    "  rnnkit eval runs/shakespeare ../shared/data/tinyshakespeare/input.txt\n\n"
    "  rnnkit eval runs/poetry poems/*.txt --json\n\n",
)
def eval_(
    run: Annotated[Path, typer.Argument(help="A run folder made by rnnkit train.")],
    files: Annotated[list[Path], typer.Argument(help="Text files to score.")],
    json_: Annotated[bool, Opt("--json", help="One JSON object per file instead of a table.")] = False,
    checkpoint: CheckpointOpt = "best",
    device: Annotated[str, Opt(help="cpu, cuda or auto.")] = "cpu",
    encoding: EncodingOpt = "utf-8",
    errors: Annotated[str, Opt(help="strict or replace.")] = "strict",
) -> None:
    """Nats per character, bits per character and perplexity of text under a trained model."""
    from rnnkit.tasks import load_run
    from rnnkit.train.trainer import resolve_device

    setup_logging()
    loaded = load_run(run, checkpoint, device=str(resolve_device(device)), task="lm")
    rows = score_files(loaded, [str(f) for f in files], encoding, errors)
    if json_:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return
    from rich.table import Table

    from rnnkit.console import stdout

    table = Table(title=f"{run} ({loaded.checkpoint})")
    for column in ("file", "chars", "nats/char", "bits/char", "perplexity", "unknown"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["file"],
            f"{row['chars']:,}",
            f"{row['nats_per_char']:.4f}",
            f"{row['bits_per_char']:.4f}",
            f"{row['perplexity']:.3f}",
            f"{row['unknown_chars']:,} ({100 * row['unknown_share']:.1f}%)",
        )
    stdout.print(table)
