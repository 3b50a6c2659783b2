"""``rnnkit train | sample | eval``: the char-RNN language model, the main job."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from rnnkit.cli.options import (
    CellOpt,
    CheckpointOpt,
    DropoutOpt,
    EncodingOpt,
    ForceOpt,
    LrOpt,
    MaxStepsOpt,
    Opt,
    ThreadsOpt,
    _setup_logging,
    log,
)
from rnnkit.errors import UsageError
from rnnkit.train.rundir import refuse_if_busy

lm_app = typer.Typer()


def _presets_help() -> str:
    from rnnkit.tasks.lm import presets_help

    return presets_help()


@lm_app.command(
    epilog="Examples:\n\n"
    "  rnnkit train --preset demo --out runs/demo\n\n"
    "  rnnkit train ../shared/data/tinyshakespeare/input.txt --preset shakespeare --out runs/shakespeare\n\n"
    "  rnnkit train poetry.txt --preset poetry --out runs/poetry --max-minutes 15\n\n"
    "  rnnkit train jay.txt --preset lyrics --cell gru --hidden-size 384 --out runs/jay\n\n"
    "  rnnkit train --resume runs/shakespeare --max-minutes 30\n\n"
    "  torchrun --nproc-per-node 2 -m rnnkit train ../shared/data/tinyshakespeare/input.txt --out runs/ddp"
    "   (DDP; see docs/scaling.md)\n\n",
)
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
            "preset's. The presets: " + _presets_help()
        ),
    ] = "small",
    resume: Annotated[
        Path | None, Opt(help="Continue the run in this folder from its last checkpoint.")
    ] = None,
    force: ForceOpt = False,
    cell: CellOpt = None,
    hidden_size: Annotated[int | None, Opt(help="Units per recurrent layer.")] = None,
    num_layers: Annotated[int | None, Opt(help="Stacked recurrent layers.")] = None,
    embedding_size: Annotated[int | None, Opt(help="Size of the character embedding.")] = None,
    dropout: DropoutOpt = None,
    vocab: Annotated[str | None, Opt(help="char or byte.")] = None,
    max_vocab: Annotated[int | None, Opt(help="Keep the N most frequent characters (0: all).")] = None,
    val_fraction: Annotated[float | None, Opt(help="Fraction of the text held out for validation.")] = None,
    split: Annotated[str | None, Opt(help="tail, files or auto.")] = None,
    encoding: Annotated[str | None, Opt(help="Text encoding of the input files.")] = None,
    errors: Annotated[str | None, Opt(help="strict or replace: what to do with undecodable bytes.")] = None,
    strict: Annotated[
        bool | None,
        Opt(
            "--strict/--skip-binary",
            help="In a folder, stop at the first binary file instead of skipping it (hidden files and "
            "folders such as .git are always skipped; the skipped files are counted in the log).",
        ),
    ] = None,
    seq_len: Annotated[int | None, Opt(help="Truncated-BPTT length in steps.")] = None,
    batch_size: Annotated[int | None, Opt(help="Parallel sequences per batch.")] = None,
    lr: LrOpt = None,
    schedule: Annotated[str | None, Opt(help="cosine, linear or constant decay after warm-up.")] = None,
    warmup_steps: Annotated[int | None, Opt(help="Linear warm-up steps.")] = None,
    weight_decay: Annotated[float | None, Opt(help="AdamW weight decay on matrices.")] = None,
    grad_clip: Annotated[float | None, Opt(help="Clip the gradient norm to this (0: off).")] = None,
    max_steps: MaxStepsOpt = None,
    max_minutes: Annotated[
        float | None,
        Opt(
            help="Stop after this many minutes of training (0: no limit); default: the preset's (see "
            "--preset). On --resume, the run's total, not extra time."
        ),
    ] = None,
    eval_interval: Annotated[int | None, Opt(help="Evaluate, sample and checkpoint every N steps.")] = None,
    checkpoint_interval: Annotated[int | None, Opt(help="Write the last checkpoint every N steps.")] = None,
    sample_length: Annotated[
        int | None, Opt(help="Characters of the sample printed at each evaluation.")
    ] = None,
    seed: Annotated[int | None, Opt(help="Random seed (weights, dropout, samples).")] = None,
    precision: Annotated[str | None, Opt(help="auto, fp32 or bf16.")] = None,
    device: Annotated[str | None, Opt(help="auto, cpu, cuda or cuda:N.")] = None,
    threads: ThreadsOpt = None,
    on_nan: Annotated[str | None, Opt(help="abort or rollback when the loss diverges.")] = None,
    set_: Annotated[
        list[str] | None,
        Opt("--set", help="Any config field by dotted key, e.g. --set train.beta2=0.95 (repeatable)."),
    ] = None,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress bar or samples; warnings only.")] = False,
) -> None:
    """Train a character language model (a char-RNN) on text and save it to a run folder."""
    from rnnkit.config import override
    from rnnkit.tasks import lm
    from rnnkit.train.distributed import from_environment
    from rnnkit.train.run import run as run_task

    _setup_logging(quiet)
    flags = {
        "model.cell": cell,
        "model.hidden_size": hidden_size,
        "model.num_layers": num_layers,
        "model.embedding_size": embedding_size,
        "model.dropout": dropout,
        "data.vocab": vocab,
        "data.max_vocab": max_vocab,
        "data.val_fraction": val_fraction,
        "data.split": split,
        "data.encoding": encoding,
        "data.errors": errors,
        "data.strict_folders": strict,
        "train.seq_len": seq_len,
        "train.batch_size": batch_size,
        "train.lr": lr,
        "train.schedule": schedule,
        "train.warmup_steps": warmup_steps,
        "train.weight_decay": weight_decay,
        "train.grad_clip": grad_clip,
        "train.max_steps": max_steps,
        "train.max_minutes": max_minutes,
        "train.eval_interval": eval_interval,
        "train.checkpoint_interval": checkpoint_interval,
        "train.sample_length": sample_length,
        "train.seed": seed,
        "train.precision": precision,
        "train.device": device,
        "train.threads": threads,
        "train.on_nan": on_nan,
    }
    assignments = [f"{k}={json.dumps(v)}" for k, v in flags.items() if v is not None] + list(set_ or [])
    if resume is not None:
        if data or (out is not None and out != resume):
            raise UsageError("--resume: give the run folder only, no DATA or other --out")
        refuse_if_busy(resume)
        config = override(lm.saved_config(resume), assignments)
        target = resume
    else:
        config = lm.get_preset(preset)
        if data:
            assignments.insert(0, "data.sources=" + json.dumps(list(data)))
        config = override(config, assignments)
        target = out if out is not None else Path("runs") / config.preset
    with from_environment(config.train.device) as place:
        if place.world_size > 1:
            config = override(config, [f"train.device={json.dumps(place.device)}"])
            if place.rank:
                _setup_logging(quiet=True)  # rank 0 speaks for the group
        summary = run_task(
            lm.SPEC,
            config,
            target,
            force=force,
            resume=resume is not None,
            progress=not quiet and sys.stderr.isatty() and place.rank == 0,
        )
    if place.rank:
        return
    stopped = summary.get("stopped")
    val = summary.get("val_loss")
    figure = (
        f", validation {val:.4f} nats/char ({val / 0.6931471805599453:.3f} bits)" if val is not None else ""
    )
    log.log(
        logging.WARNING if quiet else logging.INFO, "step %d%s; saved in %s", summary["step"], figure, target
    )
    if stopped in (None, "done"):
        log.info("next: rnnkit sample %s   (or rnnkit eval %s FILE; rnnkit serve %s)", target, target, target)
    if stopped not in (None, "done"):
        log.warning(
            "stopped by %s at step %d; continue with: rnnkit train --resume %s",
            stopped,
            summary["step"],
            target,
        )
        raise typer.Exit(130)


# -------------------------------------------------------------------------------------------------
# sample


@lm_app.command(
    epilog="Examples:\n\n"
    "  rnnkit sample runs/shakespeare --prime 'ROMEO:' --length 500 --temperature 0.8\n\n"
    "  rnnkit sample runs/poetry --acrostic 春夏秋冬 --line-chars 7\n\n"
    "  rnnkit sample runs/poetry --line-chars 5 --lines 8 --top-p 0.9 --seed 3\n\n"
    "  rnnkit sample runs/code --prime 'def ' --beam 4 --length 80\n\n",
)
def sample(
    run: Annotated[Path, typer.Argument(help="A run folder made by rnnkit train.")],
    prime: Annotated[str, Opt(help="Text to start from (the model reads it first).")] = "\n",
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
) -> None:
    """Generate text from a trained model, streaming it to standard output."""
    from rnnkit.generate import PoemForm, SamplingConfig, beam_search
    from rnnkit.generate import sample as sample_ids
    from rnnkit.tasks import load_run
    from rnnkit.train.trainer import resolve_device

    _setup_logging()
    if length < 0 or num_samples < 1:
        raise UsageError("--length must be 0 or more and --num-samples at least 1")
    config = SamplingConfig(temperature=0.0 if greedy else temperature, top_k=top_k, top_p=top_p)
    loaded = load_run(run, checkpoint, device=str(resolve_device(device)), task="lm")
    vocab = loaded.vocab
    missing = vocab.missing(prime)
    if missing:
        shown = ", ".join(f"{ch!r} (U+{ord(ch):04X})" for ch in missing)
        log.warning(
            "warning: the model's vocabulary lacks these prime characters: %s; read as unknown", shown
        )
    form = None
    if acrostic or line_chars is not None or lines is not None:
        form = PoemForm(
            vocab, line_chars=5 if line_chars is None else line_chars, lines=lines, acrostic=acrostic
        )
    banned = [vocab.unk_id] if vocab.unk_id is not None else []
    prime_ids = vocab.encode(prime).tolist()
    if not prime_ids:
        raise UsageError("--prime: give at least one character")
    out = sys.stdout
    for index in range(num_samples):
        if num_samples > 1:
            out.write(f"--- sample {index + 1} ---\n")
        if beam:
            ids = beam_search(loaded.model, prime_ids, length, beam, form=form, banned=banned)
            text = vocab.decode(ids)
            if stop and stop in text:
                text = text[: text.index(stop) + len(stop)]
            out.write(prime + text if form is None else text)
        else:
            decode = vocab.decoder()
            written = ""
            if form is None:
                out.write(prime)
            seed_i = None if seed is None else seed + index
            for token in sample_ids(
                loaded.model, prime_ids, length, config, seed=seed_i, form=form, banned=banned
            ):
                piece = decode(int(token[0]))
                out.write(piece)
                out.flush()
                if stop:
                    written += piece
                    if written.endswith(stop):
                        break
            out.write(decode.flush())
        out.write("\n")
        out.flush()


# -------------------------------------------------------------------------------------------------
# eval


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
    from rnnkit.data.corpus import read_chunks, resolve_sources
    from rnnkit.tasks import load_run
    from rnnkit.tasks.lm import UNKNOWN_WARNING, score_text
    from rnnkit.train.trainer import resolve_device

    _setup_logging()
    loaded = load_run(run, checkpoint, device=str(resolve_device(device)), task="lm")
    rows = []
    for doc in resolve_sources([str(f) for f in files]):
        row = score_text(loaded, "".join(read_chunks(doc, encoding, errors)), doc.name)
        rows.append(row)
        if row["unknown_share"] > UNKNOWN_WARNING:
            log.warning(
                "warning: %s: %.1f%% of its characters (%s distinct) are unknown to this model; its "
                "figures say little about this text",
                doc.name, 100 * row["unknown_share"], f"{row['unknown_distinct']:,}",
            )  # fmt: skip
    if json_:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return
    from rich.table import Table

    from rnnkit.console import stdout

    table = Table(
        "file",
        "chars",
        "nats/char",
        "bits/char",
        "perplexity",
        "unknown",
        title=f"{run} ({loaded.checkpoint})",
    )
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
