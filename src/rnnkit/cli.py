"""The command line: a thin typer front end over the library.

Every flag maps to a field of a dataclass config; errors print one line, ``rnnkit: error: ...``, and
exit with a code per kind (2 usage, 3 data, 4 checkpoint, 5 training diverged, 130 interrupted).
``--debug`` (anywhere on the line) shows the traceback instead.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

try:  # typer >= 0.20 vendors click; older releases use the click package
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as click_exceptions

from rnnkit.errors import DataError, RnnkitError, UsageError
from rnnkit.train.rundir import refuse_if_busy

app = typer.Typer(
    name="rnnkit",
    help="Recurrent neural networks: train a char-RNN on any text and let it write.\n\n"
    "Quick start:  rnnkit train --preset demo --out runs/demo   then   rnnkit sample runs/demo",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
log = logging.getLogger("rnnkit")


class _ConsoleHandler(logging.Handler):
    """Log lines through the rich stderr console: they print above a live progress bar, unwrapped."""

    def emit(self, record: logging.LogRecord) -> None:
        from rnnkit.console import stderr

        try:
            stderr.print(self.format(record), markup=False, highlight=False, soft_wrap=True)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def _setup_logging(quiet: bool = False) -> None:
    handler = _ConsoleHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, handlers=[handler], force=True)


# -------------------------------------------------------------------------------------------------
# train

Opt = typer.Option

# options that several commands take, declared once
ForceOpt = Annotated[bool, Opt(help="Replace an existing run folder.")]
CellOpt = Annotated[str | None, Opt(help="lstm, gru or rnn.")]
DropoutOpt = Annotated[float | None, Opt(help="Dropout probability.")]
LrOpt = Annotated[float | None, Opt(help="Peak learning rate (AdamW).")]
MaxStepsOpt = Annotated[int | None, Opt(help="Stop after this many steps (0: no limit).")]
ThreadsOpt = Annotated[int | None, Opt(help="CPU threads (0: torch's default).")]
CheckpointOpt = Annotated[str, Opt(help="best or last.")]
TrustBackboneOpt = Annotated[
    str,
    Opt(
        "--backbone",
        help="The external backbone (package.module:factory) the run was trained with: a run folder never "
        "names code that loading imports, so you name it yourself, and only if you trust it.",
    ),
]
EncodingOpt = Annotated[str, Opt(help="Text encoding of the files.")]
OutOpt = Annotated[Path | None, Opt("--out", "-o", help="Run folder.")]
NumLayersOpt = Annotated[int | None, Opt(help="Stacked layers.")]


def minutes_opt(default: float) -> Any:
    """``--max-minutes`` of a task's train command, its default (the task config's) in the help;
    tests/test_first_hour.py checks each against the config."""
    return Annotated[
        float | None,
        Opt(
            help=f"Stop after this many minutes of training (0: no limit; default {default:g}). On --resume, "
            "the run's total, not extra time.",
            show_default=False,
        ),
    ]


EvalIntervalOpt = Annotated[int | None, Opt(help="Evaluate and checkpoint every N steps.")]
SeedOpt = Annotated[int | None, Opt(help="Random seed.")]
ResumeOpt = Annotated[Path | None, Opt(help="Continue this run folder.")]
QuietOpt = Annotated[bool, Opt("--quiet", "-q", help="Warnings only.")]


def _presets_help() -> str:
    from rnnkit.tasks.lm import presets_help

    return presets_help()


@app.command(
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


@app.command(
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


@app.command(
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


# -------------------------------------------------------------------------------------------------
# shared by the task command groups (classify, tag, forecast)


def _train_task(
    flags: dict,
    set_: list[str] | None,
    *,
    data: Path | None,
    out: Path | None,
    resume: Path | None,
    force: bool,
    quiet: bool,
    saved: Callable[[Path], Any],
    fresh: Callable[[], Any],
    base: dict,
    missing: str,
    name: str,
    report: Callable[[dict], str],
) -> None:
    """New run or ``--resume``: build the config from the flags, train (each rank under ``torchrun``),
    report; exit 130 when stopped."""
    from rnnkit.config import override
    from rnnkit.tasks import TASKS
    from rnnkit.train.distributed import from_environment
    from rnnkit.train.run import train

    assignments = [f"{k}={json.dumps(v)}" for k, v in flags.items() if v is not None] + list(set_ or [])
    if resume is not None:
        if data is not None or (out is not None and out != resume):
            raise UsageError("--resume: give the run folder only, no DATA or other --out")
        refuse_if_busy(resume)
        config = override(saved(resume), assignments)
        target = resume
    else:
        if data is None or any(v is None for v in base.values()):
            raise UsageError(missing)
        config = override(fresh(), [f"{k}={json.dumps(v)}" for k, v in base.items()] + assignments)
        target = out if out is not None else Path("runs") / f"{name}-{data.stem}"
    with from_environment(config.train.device) as place:
        if place.world_size > 1:
            config = override(config, [f"train.device={json.dumps(place.device)}"])
            if place.rank:
                _setup_logging(quiet=True)  # rank 0 speaks for the group
        progress = not quiet and sys.stderr.isatty() and place.rank == 0
        resuming = resume is not None
        summary = train(TASKS[name], config, target, force=force, resume=resuming, progress=progress)
    if place.rank:
        return
    log.log(logging.WARNING if quiet else logging.INFO, "%s; saved in %s", report(summary), target)
    if summary.get("stopped") not in (None, "done"):
        raise typer.Exit(130)
    log.info("next: %s", NEXT_STEPS[name].format(run=target))


NEXT_STEPS = {
    "classify": "rnnkit classify eval {run} TEST.csv   (echo 'some text' | rnnkit classify predict {run})",
    "tag": "rnnkit tag eval {run} TEST_FILE   (echo 'some text' | rnnkit tag predict {run})",
    "forecast": "rnnkit forecast eval {run}   (the test span against the naive baselines, and a plot)",
    "speech": "rnnkit speech eval {run} WAV_FOLDER   (rnnkit speech transcribe {run} FILE.wav)",
    "caption": "rnnkit caption eval {run} IMAGES CAPTIONS.csv   (rnnkit caption predict {run} PICTURE)",
}
"""What to run after each task's ``train`` (the language model's is in :func:`train`)."""


def _budget_flags(batch_size, lr, max_steps, max_minutes, eval_interval, seed, device=None, threads=None):
    """The training flags every task's train command has, as dotted config keys (None: keep the default)."""
    return {
        "train.batch_size": batch_size,
        "train.lr": lr,
        "train.max_steps": max_steps,
        "train.max_minutes": max_minutes,
        "train.eval_interval": eval_interval,
        "train.checkpoint_interval": eval_interval,
        "train.seed": seed,
        "train.device": device,
        "train.threads": threads,
    }


def _read_lines(files: list[Path] | None, encoding: str) -> list[str]:
    """The non-empty lines of the files (``-`` or none: standard input), stripped."""
    from rnnkit.data.files import read_text_file

    lines: list[str] = []
    for path in files or [Path("-")]:
        text = sys.stdin.read() if str(path) == "-" else read_text_file(path, encoding)
        lines += [line.strip() for line in text.split("\n") if line.strip()]
    if not lines:
        raise DataError("no text given (empty input)")
    return lines


# -------------------------------------------------------------------------------------------------
# classify

classify_app = typer.Typer(
    help="Sentence classification (sentiment analysis) from the last output of a (bi)RNN.",
    no_args_is_help=True,
)
app.add_typer(classify_app, name="classify")

Column = Annotated[str, Opt(help="A column name (needs a header row) or a 0-based number.")]


@classify_app.command(
    "train",
    epilog="Examples:\n\n"
    "  rnnkit classify train sst2/train.tsv --val sst2/dev.tsv --text-column 1 --label-column 0 "
    "--out runs/sst2   (columns by number: SST-2's text column is 'sentence' in train.tsv, 'content' in "
    "dev.tsv)\n\n"
    "  rnnkit classify train ChnSentiCorp_htl_all.csv --text-column review --label-column label "
    "--out runs/hotel --max-minutes 10\n\n",
)
def classify_train(
    data: Annotated[
        Path | None, typer.Argument(help="Training file: CSV or TSV.", show_default=False)
    ] = None,
    text_column: Column = "1",
    label_column: Column = "0",
    out: OutOpt = None,
    val: Annotated[Path | None, Opt(help="Validation file (default: hold out --val-fraction).")] = None,
    val_fraction: Annotated[float | None, Opt(help="Share of the training rows held out.")] = None,
    tokens: Annotated[str | None, Opt(help="auto, char (Chinese) or word.")] = None,
    pool: Annotated[str | None, Opt(help="last (final states), mean, max or concat (all three).")] = None,
    cell: CellOpt = None,
    hidden_size: Annotated[int | None, Opt(help="Units per direction.")] = None,
    num_layers: NumLayersOpt = None,
    embedding_size: Annotated[int | None, Opt(help="Token embedding size.")] = None,
    bigram_size: Annotated[
        int | None, Opt(help="Embedding size of each character's two bigrams (0: none, the default).")
    ] = None,
    pretrain_minutes: Annotated[
        float | None,
        Opt(help="First train the embedding and RNN as language models on the texts (out of --max-minutes)."),
    ] = None,
    dropout: DropoutOpt = None,
    bidirectional: Annotated[
        bool | None, Opt("--bidirectional/--unidirectional", help="BiRNN or not.")
    ] = None,
    max_tokens: Annotated[int | None, Opt(help="Cut texts to this many tokens.")] = None,
    truncate: Annotated[
        str | None, Opt(help="What a cut text keeps: head, tail or both (first and last halves).")
    ] = None,
    ema: Annotated[
        float | None,
        Opt(help="Evaluate and save a moving average of the weights with this decay per step (0: off)."),
    ] = None,
    members: Annotated[
        int | None,
        Opt(
            help="Train an ensemble of this many classifiers (seeds SEED, SEED+1, ...) and average their "
            "probabilities; --max-minutes is shared out among them, --max-steps is each one's."
        ),
    ] = None,
    batch_size: Annotated[int | None, Opt(help="Texts per batch.")] = None,
    lr: LrOpt = None,
    max_steps: MaxStepsOpt = None,
    max_minutes: minutes_opt(10) = None,
    eval_interval: EvalIntervalOpt = None,
    seed: SeedOpt = None,
    encoding: Annotated[str | None, Opt(help="Text encoding of the files.")] = None,
    device: Annotated[str | None, Opt(help="auto, cpu or cuda.")] = None,
    threads: ThreadsOpt = None,
    resume: ResumeOpt = None,
    force: ForceOpt = False,
    set_: Annotated[
        list[str] | None, Opt("--set", help="Any config field by dotted key (repeatable).")
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a text classifier on labelled rows of a CSV/TSV file."""
    from rnnkit.tasks import classify

    _setup_logging(quiet)
    flags = {
        "data.val": str(val) if val else None,
        "data.val_fraction": val_fraction,
        "data.tokens": tokens,
        "data.max_tokens": max_tokens,
        "data.truncate": truncate,
        "data.encoding": encoding,
        "train.ema": ema,
        "members": members,
        "model.pool": pool,
        "model.cell": cell,
        "model.hidden_size": hidden_size,
        "model.num_layers": num_layers,
        "model.embedding_size": embedding_size,
        "model.bigram_size": bigram_size,
        "model.dropout": dropout,
        "model.bidirectional": bidirectional,
        "pretrain.minutes": pretrain_minutes,
        **_budget_flags(
            batch_size, lr, max_steps, max_minutes, eval_interval, seed, device=device, threads=threads
        ),
    }
    _train_task(
        flags,
        set_,
        data=data,
        out=out,
        resume=resume,
        force=force,
        quiet=quiet,
        saved=classify.saved_classifier_config,
        fresh=classify.ClassifierConfig,
        base={
            "data.train": data and str(data),
            "data.text_column": text_column,
            "data.label_column": label_column,
        },
        missing="give the training file (CSV or TSV), or --resume RUN",
        name="classify",
        report=_classify_report,
    )


def _classify_report(r: dict) -> str:
    nan = float("nan")
    if "members" not in r:
        return (
            f"step {r['step']}, validation accuracy {r.get('val_accuracy', nan):.4f}, "
            f"macro-F1 {r.get('val_macro_f1', nan):.4f}"
        )
    text = (
        f"{len(r['members'])} members, {r['step']} steps in all, mean of their best validation accuracies "
        f"{r['val_accuracy']:.4f}"
    )
    if "ensemble_val_accuracy" in r:
        text += (
            f", the ensemble's {r['ensemble_val_accuracy']:.4f} (macro-F1 {r['ensemble_val_macro_f1']:.4f})"
        )
    return text


@classify_app.command("eval")
def classify_eval(
    run: Annotated[
        Path, typer.Argument(help="A run folder made by rnnkit classify train (one model or an ensemble).")
    ],
    data: Annotated[Path, typer.Argument(help="A labelled CSV or TSV file.")],
    text_column: Column = "1",
    label_column: Column = "0",
    json_: Annotated[bool, Opt("--json", help="One JSON object instead of a table.")] = False,
    checkpoint: CheckpointOpt = "best",
    encoding: Annotated[str, Opt(help="Text encoding of the file.")] = "utf-8",
) -> None:
    """Accuracy, macro-F1 and the confusion matrix of a trained classifier on a labelled file."""
    from rnnkit.tasks import load_run
    from rnnkit.tasks.classify import format_confusion, score_file

    _setup_logging()
    loaded = load_run(run, checkpoint, task="classify")
    result = score_file(loaded, data, text_column, label_column, encoding)
    result |= {"labels": loaded.labels, "checkpoint": loaded.checkpoint}
    if json_:
        print(json.dumps(result, ensure_ascii=False))
        return
    accuracy, macro_f1 = result["accuracy"], result["macro_f1"]
    print(f"{data}: {result['rows']:,} rows, accuracy {accuracy:.4f}, macro-F1 {macro_f1:.4f}")
    print(format_confusion(loaded.labels, result["confusion"]))


@classify_app.command("predict")
def classify_predict(
    run: Annotated[Path, typer.Argument(help="A run folder made by rnnkit classify train.")],
    files: Annotated[
        list[Path] | None, typer.Argument(help="Text files, one text per line (default: stdin).")
    ] = None,
    checkpoint: CheckpointOpt = "best",
    encoding: EncodingOpt = "utf-8",
) -> None:
    """Label each line of the files (or of standard input): prints label, probability and the text."""
    from rnnkit.tasks import load_run

    _setup_logging()
    loaded = load_run(run, checkpoint, task="classify")
    lines = _read_lines(files, encoding)
    probs = loaded.predict(lines)
    best, at = probs.max(-1)
    for line, p, i in zip(lines, best.tolist(), at.tolist(), strict=True):
        print(f"{loaded.labels[i]}\t{p:.4f}\t{line}")


# -------------------------------------------------------------------------------------------------
# tag

tag_app = typer.Typer(
    help="Sequence tagging with a BiRNN (+CRF): named entities, Chinese word segmentation.",
    no_args_is_help=True,
)
app.add_typer(tag_app, name="tag")
Format = Annotated[
    str, Opt("--format", help="conll (token<TAB>tag lines) or segmented (words separated by spaces).")
]


@tag_app.command(
    "train",
    epilog="Examples:\n\n"
    "  rnnkit tag train cws_sxu/train.txt --format segmented --out runs/cws\n\n"
    "  rnnkit tag train msra_train.txt --format conll --out runs/ner --max-minutes 20\n\n"
    "  rnnkit tag train wnut17train.conll --val emerging.dev.conll --out runs/wnut --no-crf\n\n",
)
def tag_train(
    data: Annotated[Path | None, typer.Argument(help="Training file.", show_default=False)] = None,
    format_: Format = "conll",
    out: OutOpt = None,
    val: Annotated[Path | None, Opt(help="Validation file (default: hold out --val-fraction).")] = None,
    val_fraction: Annotated[float | None, Opt(help="Share of the training sentences held out.")] = None,
    tokens: Annotated[str | None, Opt(help="auto, char or word.")] = None,
    crf: Annotated[
        bool | None, Opt("--crf/--no-crf", help="CRF output layer (default) or a softmax.")
    ] = None,
    bidirectional: Annotated[
        bool | None, Opt("--bidirectional/--unidirectional", help="BiRNN or not.")
    ] = None,
    cell: CellOpt = None,
    hidden_size: Annotated[int | None, Opt(help="Units per direction.")] = None,
    num_layers: NumLayersOpt = None,
    embedding_size: Annotated[int | None, Opt(help="Token embedding size.")] = None,
    bigram_size: Annotated[
        int | None, Opt(help="Embedding size of each character's two bigrams (0: none; default 64).")
    ] = None,
    dropout: DropoutOpt = None,
    batch_size: Annotated[int | None, Opt(help="Sentences per batch.")] = None,
    lr: LrOpt = None,
    max_steps: MaxStepsOpt = None,
    max_minutes: minutes_opt(10) = None,
    eval_interval: EvalIntervalOpt = None,
    seed: SeedOpt = None,
    encoding: Annotated[str | None, Opt(help="Text encoding of the files.")] = None,
    device: Annotated[str | None, Opt(help="auto, cpu or cuda.")] = None,
    threads: ThreadsOpt = None,
    resume: ResumeOpt = None,
    force: ForceOpt = False,
    set_: Annotated[
        list[str] | None, Opt("--set", help="Any config field by dotted key (repeatable).")
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a tagger on CoNLL-style or segmented text."""
    from rnnkit.tasks import tag

    _setup_logging(quiet)
    flags = {
        "data.val": str(val) if val else None,
        "data.val_fraction": val_fraction,
        "data.tokens": tokens,
        "data.encoding": encoding,
        "model.crf": crf,
        "model.bidirectional": bidirectional,
        "model.cell": cell,
        "model.hidden_size": hidden_size,
        "model.num_layers": num_layers,
        "model.embedding_size": embedding_size,
        "model.dropout": dropout,
        "model.bigram_size": bigram_size,
        **_budget_flags(
            batch_size, lr, max_steps, max_minutes, eval_interval, seed, device=device, threads=threads
        ),
    }
    _train_task(
        flags,
        set_,
        data=data,
        out=out,
        resume=resume,
        force=force,
        quiet=quiet,
        saved=tag.saved_tagger_config,
        fresh=tag.TaggerConfig,
        base={"data.train": data and str(data), "data.format": format_},
        missing="give the training file, or --resume RUN",
        name="tag",
        report=lambda r: f"step {r['step']}, validation F1 {r.get('val_f1', float('nan')):.4f}",
    )


@tag_app.command("eval")
def tag_eval(
    run: Annotated[Path, typer.Argument(help="A run folder made by rnnkit tag train.")],
    data: Annotated[Path, typer.Argument(help="A tagged file in the run's format.")],
    format_: Format = "",
    json_: Annotated[bool, Opt("--json", help="One JSON object instead of a line.")] = False,
    checkpoint: CheckpointOpt = "best",
    encoding: Annotated[str, Opt(help="Text encoding of the file.")] = "utf-8",
) -> None:
    """Precision, recall and F1: entity-level (seqeval) for conll, word-level (SIGHAN) for segmented."""
    from rnnkit.data.seqlabel import read_sentences
    from rnnkit.tasks import load_run
    from rnnkit.tasks.tag import score

    _setup_logging()
    loaded = load_run(run, checkpoint, task="tag")
    fmt = format_ or loaded.config.data.format
    sentences = read_sentences(data, fmt, encoding)
    unknown = sorted({t for s in sentences.tags for t in s} - set(loaded.tags))
    if unknown:
        raise DataError(f"{data}: tags the model never saw: {', '.join(unknown[:5])}")
    index = {t: i for i, t in enumerate(loaded.tags)}
    pred = loaded.tag(sentences.tokens)
    gold = [[index[t] for t in s] for s in sentences.tags]
    found = score(fmt, loaded.tags, gold, [[index[t] for t in s] for s in pred])
    found |= {"sentences": len(gold), "scoring": "sighan-words" if fmt == "segmented" else "seqeval-entities"}
    if json_:
        print(json.dumps(found))
        return
    print(
        f"{data}: {len(gold):,} sentences, precision {found['precision']:.4f}, recall {found['recall']:.4f}, "
        f"F1 {found['f1']:.4f} ({found['scoring']})"
    )


@tag_app.command("predict")
def tag_predict(
    run: Annotated[Path, typer.Argument(help="A run folder made by rnnkit tag train.")],
    files: Annotated[
        list[Path] | None, typer.Argument(help="Raw text, one sentence per line (default: stdin).")
    ] = None,
    checkpoint: CheckpointOpt = "best",
    encoding: EncodingOpt = "utf-8",
) -> None:
    """Segment raw text into words (segmented models) or print token<TAB>tag lines (conll models)."""
    from rnnkit.data.seqlabel import tags_to_words
    from rnnkit.tasks import load_run

    _setup_logging()
    loaded = load_run(run, checkpoint, task="tag")
    lines = _read_lines(files, encoding)
    chars = loaded.inputs.kind == "char"
    sentences = [[c for c in line if not c.isspace()] if chars else line.split() for line in lines]
    tagged = loaded.tag(sentences)
    for tokens, tags in zip(sentences, tagged, strict=True):
        if loaded.config.data.format == "segmented":
            print("  ".join(tags_to_words(tokens, tags)))
        else:
            print("\n".join(f"{t}\t{g}" for t, g in zip(tokens, tags, strict=True)) + "\n")


# -------------------------------------------------------------------------------------------------
# forecast

forecast_app = typer.Typer(
    help="Time-series forecasting with an RNN, scored against naive baselines.", no_args_is_help=True
)
app.add_typer(forecast_app, name="forecast")


@forecast_app.command(
    "train",
    epilog="Examples:\n\n"
    "  rnnkit forecast train airline-passengers.csv --column Passengers --log --target seasonal-diff\n\n"
    "  rnnkit forecast train daily-min-temperatures.csv --column Temp --window 30 --out runs/temp\n\n"
    "  rnnkit forecast train sp500.csv --column Close --inputs Volume --target diff --out runs/sp500\n\n",
)
def forecast_train(
    data: Annotated[
        Path | None, typer.Argument(help="A CSV file with a header row.", show_default=False)
    ] = None,
    column: Annotated[str | None, Opt(help="The column to forecast (name or 0-based number).")] = None,
    out: OutOpt = None,
    inputs: Annotated[str | None, Opt(help="More input columns, comma-separated.")] = None,
    date_column: Annotated[str | None, Opt(help="The dates' column (auto or none).")] = None,
    window: Annotated[int | None, Opt(help="Past steps the network reads.")] = None,
    horizon: Annotated[int | None, Opt(help="Steps ahead to forecast.")] = None,
    season: Annotated[int | None, Opt(help="Steps per season (0: guess from the dates).")] = None,
    target: Annotated[str | None, Opt(help="level, diff or seasonal-diff.")] = None,
    log_: Annotated[bool | None, Opt("--log/--no-log", help="Model the logarithm of the values.")] = None,
    val_fraction: Annotated[
        float | None, Opt(help="Share of the series (before the test span) for validation.")
    ] = None,
    test_fraction: Annotated[
        float | None, Opt(help="Share of the series at its end held out for the test.")
    ] = None,
    cell: CellOpt = None,
    hidden_size: Annotated[int | None, Opt(help="Units per layer.")] = None,
    num_layers: NumLayersOpt = None,
    batch_size: Annotated[int | None, Opt(help="Windows per batch.")] = None,
    lr: LrOpt = None,
    max_steps: MaxStepsOpt = None,
    max_minutes: minutes_opt(2) = None,
    eval_interval: EvalIntervalOpt = None,
    seed: SeedOpt = None,
    resume: ResumeOpt = None,
    force: ForceOpt = False,
    set_: Annotated[
        list[str] | None, Opt("--set", help="Any config field by dotted key (repeatable).")
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a forecaster on one column of a CSV file (train, validation and test spans in time order)."""
    from rnnkit.tasks import forecast

    _setup_logging(quiet)
    flags = {
        "data.inputs": [c.strip() for c in inputs.split(",") if c.strip()] if inputs is not None else None,
        "data.date_column": date_column,
        "data.window": window,
        "data.horizon": horizon,
        "data.season": season,
        "data.target": target,
        "data.log": log_,
        "data.val_fraction": val_fraction,
        "data.test_fraction": test_fraction,
        "model.cell": cell,
        "model.hidden_size": hidden_size,
        "model.num_layers": num_layers,
        **_budget_flags(batch_size, lr, max_steps, max_minutes, eval_interval, seed),
    }
    _train_task(
        flags,
        set_,
        data=data,
        out=out,
        resume=resume,
        force=force,
        quiet=quiet,
        saved=forecast.saved_forecast_config,
        fresh=forecast.ForecastConfig,
        base={"data.path": data and str(data), "data.column": column},
        missing="give the CSV file and --column, or --resume RUN",
        name="forecast",
        report=lambda r: f"step {r['step']}, validation RMSE {r.get('val_rmse', float('nan')):.4g}",
    )


@forecast_app.command("eval")
def forecast_eval(
    run: Annotated[Path, typer.Argument(help="A run folder made by rnnkit forecast train.")],
    json_: Annotated[bool, Opt("--json", help="One JSON object instead of a table.")] = False,
    split: Annotated[str, Opt(help="test or val.")] = "test",
    plot: Annotated[
        Path | None, Opt(help="Where to save the PNG plot (default: RUN/forecast-SPLIT.png).")
    ] = None,
    checkpoint: CheckpointOpt = "best",
) -> None:
    """RMSE, MAE and MAPE on the test span, next to the naive and seasonal-naive forecasts; saves a plot."""
    from rnnkit.tasks import load_run
    from rnnkit.tasks.forecast import plot as save_plot

    _setup_logging()
    if split not in ("test", "val"):
        raise UsageError(f"--split: expected test or val, got {split!r}")
    loaded = load_run(run, checkpoint, task="forecast")
    result = loaded.evaluate(split)
    target = plot or run / f"forecast-{split}.png"
    d = loaded.config.data
    save_plot(result, target, f"{Path(d.path).name}: {d.column}, {split} span, horizon {d.horizon}")
    result.pop("_plot")
    result["plot"] = str(target)
    if json_:
        print(json.dumps(result))
        return
    print(f"{d.path} [{d.column}], {split} span: {result['windows']} windows, horizon {result['horizon']}")
    print(f"{'':16} {'RMSE':>10} {'MAE':>10} {'MAPE %':>8}")
    rows = [("rnnkit", result)] + [(k, v) for k, v in result.items() if k in ("naive", "seasonal_naive")]
    for name, row in rows:
        print(f"{name:16} {row['rmse']:>10.4g} {row['mae']:>10.4g} {row['mape']:>8.2f}")
    print(f"plot: {target}")


# -------------------------------------------------------------------------------------------------
# speech

speech_app = typer.Typer(
    help="Speech recognition with Listen, Attend and Spell (a pyramidal BiLSTM listener).",
    no_args_is_help=True,
)
app.add_typer(speech_app, name="speech")


@speech_app.command(
    "train",
    epilog="Examples:\n\n"
    "  rnnkit speech train fsdd/recordings --out runs/digits --max-minutes 20\n\n"
    "  rnnkit speech train fsdd/recordings --out runs/flat --no-pyramid   # the same layers, reduction 1\n\n"
    "  rnnkit speech train fsdd/recordings --out runs/no-theo --holdout-speaker theo\n\n",
)
def speech_train(
    wav_dir: Annotated[
        Path | None,
        typer.Argument(help="A folder of {digit}_{speaker}_{index}.wav files.", show_default=False),
    ] = None,
    out: OutOpt = None,
    holdout_speaker: Annotated[
        str | None, Opt(help="Test on all of this speaker's recordings; train on the others.")
    ] = None,
    pyramid_layers: Annotated[
        int | None, Opt(help="Pyramidal layers above the bottom one, each halving the sequence (default 3).")
    ] = None,
    pyramid: Annotated[
        bool | None,
        Opt(
            "--pyramid/--no-pyramid", help="Join neighbour pairs (default) or keep every frame (reduction 1)."
        ),
    ] = None,
    odd: Annotated[str | None, Opt(help="Odd lengths in the pyramid: pad or drop.")] = None,
    listener_size: Annotated[int | None, Opt(help="Units per direction in the listener.")] = None,
    speller_size: Annotated[int | None, Opt(help="Units of the speller LSTM.")] = None,
    ctc_weight: Annotated[float | None, Opt(help="Weight of a CTC loss on the listener (0: none).")] = None,
    augment: Annotated[bool | None, Opt("--augment/--no-augment", help="SpecAugment-style masking.")] = None,
    normalise: Annotated[str | None, Opt(help="Feature normalisation: utterance, global or none.")] = None,
    cell: CellOpt = None,
    dropout: DropoutOpt = None,
    batch_size: Annotated[int | None, Opt(help="Recordings per batch.")] = None,
    lr: LrOpt = None,
    max_steps: MaxStepsOpt = None,
    max_minutes: minutes_opt(10) = None,
    eval_interval: EvalIntervalOpt = None,
    seed: SeedOpt = None,
    threads: ThreadsOpt = None,
    resume: ResumeOpt = None,
    force: ForceOpt = False,
    set_: Annotated[
        list[str] | None, Opt("--set", help="Any config field by dotted key (repeatable).")
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a listener-speller on spoken digits (official split: index 0-4 is the test set)."""
    from rnnkit.tasks import speech

    _setup_logging(quiet)
    flags = {
        "data.holdout_speaker": holdout_speaker,
        "data.augment": augment,
        "features.normalise": normalise,
        "model.pyramid_layers": pyramid_layers,
        "model.pyramid": pyramid,
        "model.odd": odd,
        "model.listener_size": listener_size,
        "model.speller_size": speller_size,
        "model.ctc_weight": ctc_weight,
        "model.cell": cell,
        "model.dropout": dropout,
        **_budget_flags(batch_size, lr, max_steps, max_minutes, eval_interval, seed, threads=threads),
    }
    _train_task(
        flags,
        set_,
        data=wav_dir,
        out=out,
        resume=resume,
        force=force,
        quiet=quiet,
        saved=speech.saved_speech_config,
        fresh=speech.SpeechConfig,
        base={"data.wav_dir": wav_dir and str(wav_dir)},
        missing="give the folder of WAV files, or --resume RUN",
        name="speech",
        report=lambda r: f"step {r['step']}, validation accuracy {r.get('val_accuracy', float('nan')):.4f}",
    )


BeamOpt = Annotated[int, Opt(help="Beam width (1: greedy).")]
DecoderOpt = Annotated[str, Opt(help="attention (the speller) or ctc (needs a CTC head).")]


@speech_app.command("eval")
def speech_eval(
    run: Annotated[Path, typer.Argument(help="A run folder made by rnnkit speech train.")],
    wav_dir: Annotated[Path, typer.Argument(help="The folder of {digit}_{speaker}_{index}.wav files.")],
    json_: Annotated[bool, Opt("--json", help="One JSON object instead of a line.")] = False,
    split: Annotated[str, Opt(help="test (the run's test split), val or train.")] = "test",
    beam: BeamOpt = 1,
    decoder: DecoderOpt = "attention",
    checkpoint: CheckpointOpt = "best",
) -> None:
    """Word accuracy and character error rate on the run's test split (or held-out speaker)."""
    import time

    from rnnkit.tasks import load_run
    from rnnkit.tasks.speech import list_fsdd, scores, split_fsdd

    _setup_logging()
    if split not in ("test", "val", "train"):
        raise UsageError(f"--split: expected test, val or train, got {split!r}")
    if beam < 1 or decoder not in ("attention", "ctc"):
        raise UsageError("--beam: 1 or more; --decoder: attention or ctc")
    loaded = load_run(run, checkpoint, task="speech")
    d = loaded.config.data
    parts = split_fsdd(list_fsdd(wav_dir), d.holdout_speaker, d.val_fraction, loaded.config.train.seed)
    chosen = parts[("train", "val", "test").index(split)]
    started = time.perf_counter()
    hyps = loaded.transcribe([u.path for u in chosen], beam=beam, decoder=decoder)
    seconds = time.perf_counter() - started
    found = scores([u.text for u in chosen], hyps)
    wrong = [f"{u.path.name}: {h!r}" for u, h in zip(chosen, hyps, strict=True) if h != u.text]
    result = found | {
        "recordings": len(chosen), "split": split, "holdout_speaker": d.holdout_speaker or None,
        "decoder": decoder, "beam": beam, "checkpoint": loaded.checkpoint, "seconds": round(seconds, 3),
        "errors": wrong[:20],
    }  # fmt: skip
    if json_:
        print(json.dumps(result))
        return
    print(
        f"{wav_dir} ({split}, {len(chosen):,} recordings): accuracy {found['accuracy']:.4f}, "
        f"CER {found['cer']:.4f} ({decoder}, beam {beam}, {seconds:.1f} s)"
    )
    for line in wrong[:10]:
        print(f"  {line}")


@speech_app.command("transcribe")
def speech_transcribe(
    run: Annotated[Path, typer.Argument(help="A run folder made by rnnkit speech train.")],
    files: Annotated[list[Path], typer.Argument(help="WAV files (mono; other sample rates are resampled).")],
    beam: BeamOpt = 1,
    decoder: DecoderOpt = "attention",
    plot: Annotated[Path | None, Opt(help="Save the attention of the first file as a PNG here.")] = None,
    checkpoint: CheckpointOpt = "best",
) -> None:
    """Print what each recording says (one line per file; with several files, NAME<TAB>TEXT)."""
    from rnnkit.tasks import load_run
    from rnnkit.tasks.speech import plot_attention

    _setup_logging()
    if beam < 1 or decoder not in ("attention", "ctc"):
        raise UsageError("--beam: 1 or more; --decoder: attention or ctc")
    loaded = load_run(run, checkpoint, task="speech")
    texts = loaded.transcribe(files, beam=beam, decoder=decoder)
    for path, text in zip(files, texts, strict=True):
        print(text if len(files) == 1 else f"{path}\t{text}")
    if plot is not None:
        plot_attention(loaded, files[0], plot)
        log.info("attention plot: %s", plot)


# -------------------------------------------------------------------------------------------------
# caption

caption_app = typer.Typer(
    help="Image captioning (看图说话): a CNN's picture vector enters an RNN at its first step.",
    no_args_is_help=True,
)
app.add_typer(caption_app, name="caption")


@caption_app.command(
    "train",
    epilog="Examples:\n\n"
    "  rnnkit caption make-shapes shapes --n 5000\n\n"
    "  rnnkit caption train shapes/images shapes/captions.csv --out runs/shapes --max-minutes 20\n\n"
    "  rnnkit caption train flickr8k_mini/images flickr8k_mini/captions.txt --out runs/flickr\n\n",
)
def caption_train(
    images: Annotated[Path | None, typer.Argument(help="The folder of pictures.", show_default=False)] = None,
    captions: Annotated[
        Path | None, typer.Argument(help="image,caption CSV (or Karpathy's JSON).", show_default=False)
    ] = None,
    out: OutOpt = None,
    inject: Annotated[str | None, Opt(help="first-step (the tutorial's) or every-step.")] = None,
    image_size: Annotated[int | None, Opt(help="Pixels a side after scaling and cropping.")] = None,
    cnn_width: Annotated[int | None, Opt(help="Channels of the CNN's first stage.")] = None,
    grid_size: Annotated[
        int | None, Opt(help="Cells a side of the CNN grid the picture vector keeps (1: global average).")
    ] = None,
    word_loss: Annotated[
        float | None, Opt(help="Weight of the picture's bag-of-words loss that trains the CNN (0: off).")
    ] = None,
    backbone: Annotated[
        str | None, Opt(help="package.module:factory of another CNN (e.g. torchvision.models:resnet18).")
    ] = None,
    backbone_weights: Annotated[str | None, Opt(help="Its weights, a local state-dict file.")] = None,
    min_count: Annotated[int | None, Opt(help="Rarer words read as <unk>.")] = None,
    flip: Annotated[bool | None, Opt("--flip/--no-flip", help="Mirror training pictures at random.")] = None,
    cell: CellOpt = None,
    hidden_size: Annotated[int | None, Opt(help="Units of the RNN.")] = None,
    dropout: DropoutOpt = None,
    batch_size: Annotated[int | None, Opt(help="Captions per batch.")] = None,
    lr: LrOpt = None,
    max_steps: MaxStepsOpt = None,
    max_minutes: minutes_opt(10) = None,
    eval_interval: EvalIntervalOpt = None,
    seed: SeedOpt = None,
    threads: ThreadsOpt = None,
    resume: ResumeOpt = None,
    force: ForceOpt = False,
    set_: Annotated[
        list[str] | None, Opt("--set", help="Any config field by dotted key (repeatable).")
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a captioner; pictures are split into train, validation and test (never captions)."""
    from rnnkit.tasks import caption

    _setup_logging(quiet)
    if (images is None) != (captions is None):
        raise UsageError("give both the folder of pictures and the captions file")
    flags = {
        "data.min_count": min_count,
        "data.flip": flip,
        "model.inject": inject,
        "model.image_size": image_size,
        "model.cnn_width": cnn_width,
        "model.grid_size": grid_size,
        "model.word_loss": word_loss,
        "model.backbone": backbone,
        "model.backbone_weights": backbone_weights,
        "model.cell": cell,
        "model.hidden_size": hidden_size,
        "model.dropout": dropout,
        **_budget_flags(batch_size, lr, max_steps, max_minutes, eval_interval, seed, threads=threads),
    }
    _train_task(
        flags,
        set_,
        data=images,
        out=out,
        resume=resume,
        force=force,
        quiet=quiet,
        saved=caption.saved_caption_config,
        fresh=caption.CaptionConfig,
        base={"data.images": images and str(images), "data.captions": captions and str(captions)},
        missing="give the folder of pictures and the captions file, or --resume RUN",
        name="caption",
        report=lambda r: f"step {r['step']}, validation BLEU-4 {r.get('val_bleu4', float('nan')):.2f}",
    )


@caption_app.command("eval")
def caption_eval(
    run: Annotated[Path, typer.Argument(help="A run folder made by rnnkit caption train.")],
    images: Annotated[Path, typer.Argument(help="The folder of pictures.")],
    captions: Annotated[Path, typer.Argument(help="The captions file the run was trained with.")],
    json_: Annotated[bool, Opt("--json", help="One JSON object instead of a table.")] = False,
    beam: Annotated[int, Opt(help="Beam width (1: greedy).")] = 1,
    split: Annotated[str, Opt(help="test (the held-out pictures) or val.")] = "test",
    baselines: Annotated[
        bool, Opt(help="Also score the most common caption and the nearest picture's caption.")
    ] = False,
    shape_words: Annotated[
        bool, Opt(help="Also count captions with every colour/shape word right (make-shapes data).")
    ] = False,
    grid: Annotated[Path | None, Opt(help="Save a PNG page of the first 12 pictures and captions.")] = None,
    checkpoint: CheckpointOpt = "best",
    backbone: TrustBackboneOpt = "",
) -> None:
    """Corpus BLEU-1..4 (sacrebleu, 0-100) on the held-out pictures against all their captions."""
    import time

    from rnnkit.tasks import caption as cap
    from rnnkit.tasks import load_run

    _setup_logging()
    if split not in ("test", "val") or beam < 1:
        raise UsageError("--split: test or val; --beam: 1 or more")
    loaded = load_run(run, checkpoint, task="caption", backbone=backbone)
    config = loaded.config
    config.data.images, config.data.captions = str(images), str(captions)
    found, train_names, val_names, test_names = cap.prepare(config)
    names = test_names if split == "test" else val_names
    part = cap.load_split(images, names, found, config.model.image_size)
    started = time.perf_counter()
    hyps = cap.describe(loaded.model, part.images, loaded.vocab, config.data.max_words, beam)
    seconds = time.perf_counter() - started
    refs = [[cap.normalised(r) for r in rs] for rs in part.references]
    result = cap.bleu(hyps, refs)
    result |= {"pictures": len(names), "split": split, "beam": beam, "checkpoint": loaded.checkpoint}
    result["seconds"] = round(seconds, 2)
    if shape_words:
        from rnnkit.data.shapes import words_right

        result["shape_words_right"] = sum(words_right(h, r) for h, r in zip(hyps, refs, strict=True)) / len(
            hyps
        )
        result["shape_and_size_words_right"] = sum(
            words_right(h, r, sizes=True) for h, r in zip(hyps, refs, strict=True)
        ) / len(hyps)
    if baselines:
        train = cap.load_split(images, train_names, found, config.model.image_size)
        for name, texts in cap.baselines(loaded.model, train, part).items():
            result[name] = cap.bleu(texts, refs)
    result["examples"] = [{"image": n, "caption": h} for n, h in zip(names[:5], hyps[:5], strict=False)]
    if grid is not None:
        cap.picture_grid([images / n for n in names[:12]], hyps[:12], grid)
    if json_:
        print(json.dumps(result))
        return
    scores = " ".join(f"BLEU-{n} {result[f'bleu{n}']:.2f}" for n in range(1, 5))
    print(f"{captions} ({split}, {len(names):,} pictures, beam {beam}): {scores}")
    for name in ("most_common", "nearest_picture"):
        if name in result:
            print(
                f"  baseline {name}: "
                + " ".join(f"BLEU-{n} {result[name][f'bleu{n}']:.2f}" for n in range(1, 5))
            )
    if shape_words:
        print(f"  every colour and shape word right: {result['shape_words_right']:.4f}")


@caption_app.command("predict")
def caption_predict(
    run: Annotated[Path, typer.Argument(help="A run folder made by rnnkit caption train.")],
    files: Annotated[list[Path], typer.Argument(help="Pictures (PNG, JPEG...).")],
    beam: Annotated[int, Opt(help="Beam width (1: greedy).")] = 1,
    checkpoint: CheckpointOpt = "best",
    backbone: TrustBackboneOpt = "",
) -> None:
    """Print one caption per picture (with several pictures, NAME<TAB>CAPTION)."""
    from rnnkit.tasks import load_run

    _setup_logging()
    if beam < 1:
        raise UsageError("--beam: 1 or more")
    loaded = load_run(run, checkpoint, task="caption", backbone=backbone)
    for path, text in zip(files, loaded.describe(files, beam), strict=True):
        print(text if len(files) == 1 else f"{path}\t{text}")


@caption_app.command("make-shapes")
def caption_make_shapes(
    out: Annotated[Path, typer.Argument(help="Folder to write images/*.png and captions.csv into.")],
    n: Annotated[int, Opt("--n", help="Pictures to draw.")] = 5000,
    size: Annotated[int, Opt(help="Pixels a side.")] = 64,
    seed: Annotated[int, Opt(help="Random seed.")] = 0,
) -> None:
    """Draw a synthetic captioning set: one or two coloured shapes per picture, two captions each."""
    from rnnkit.data.shapes import make_shapes

    _setup_logging()
    if n < 3 or size < 16:
        raise UsageError("--n: 3 or more; --size: 16 or more")
    path = make_shapes(out, n, size, seed)
    print(f"{path}: {n:,} pictures, {2 * n:,} captions")


# -------------------------------------------------------------------------------------------------
# serve, inspect, plot


@app.command(
    epilog="Examples:\n\n"
    "  rnnkit serve runs/shakespeare                 # http://127.0.0.1:8000/ is the playground\n\n"
    "  rnnkit serve poems=runs/poetry code=runs/code --port 9000\n\n"
    "  rnnkit serve runs/shakespeare --host 0.0.0.0 --allow-host box.lan   # reachable as http://box.lan:8000/\n\n",
)
def serve(
    runs: Annotated[list[str], typer.Argument(help="Run folders to serve: PATH, or NAME=PATH.")],
    host: Annotated[str, Opt(help="Address to bind (0.0.0.0 exposes it to the network).")] = "127.0.0.1",
    port: Annotated[int, Opt(help="TCP port.")] = 8000,
    checkpoint: CheckpointOpt = "best",
    device: Annotated[str, Opt(help="cpu, cuda or auto.")] = "cpu",
    max_body: Annotated[int, Opt(help="Largest request body in bytes.")] = 1_000_000,
    workers: Annotated[int, Opt(help="Requests running the models at once; the rest wait their turn.")] = 1,
    allow_host: Annotated[
        list[str] | None,
        Opt(help="Also answer requests addressed to this host name (repeatable; loopback names always)."),
    ] = None,
) -> None:
    """Serve trained char models over HTTP: a JSON API (/v1/...), OpenAPI docs (/docs), a playground (/)."""
    from rnnkit.serve import ServeConfig, create_app
    from rnnkit.serve.server import serve as serve_app

    _setup_logging()
    if not 0 < port < 65536:
        raise UsageError(f"--port: expected 1..65535, got {port}")
    if workers < 1:
        raise UsageError(f"--workers: expected 1 or more, got {workers}")
    config = ServeConfig(runs=runs, checkpoint=checkpoint, device=device, max_body=max_body, workers=workers,
                         allowed_hosts=allow_host or [], host=host, port=port)  # fmt: skip
    serve_app(create_app(config), config)  # says where it listens once the port is bound


@app.command(
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
    from rnnkit.data.files import read_text_file
    from rnnkit.serve.report import write_report
    from rnnkit.tasks import load_run

    _setup_logging()
    if not 2 <= max_chars <= 100_000:
        raise UsageError(f"--max-chars: expected 2..100000, got {max_chars}")
    loaded = load_run(run, checkpoint, task="lm")
    text = read_text_file(file, encoding)[:max_chars]
    if len(text) < 2:
        raise DataError(f"{file}: needs at least two characters")
    model, vocab = loaded.model, loaded.vocab
    out = out or run / "report.html"
    data = write_report(model, vocab, text, out, name=run.name, layer=layer, state=state, top=top)
    best = [f"{f['name']}: unit {f['units'][0]['unit']} (r={f['units'][0]['r']:+.2f})"
            for f in data["features"] if f["units"]]  # fmt: skip
    print(f"{out}: {len(data['tokens']):,} tokens, layer {data['layer']}, state {data['state']}")
    for line in best:
        print(f"  {line}")


@app.command()
def plot(
    run: Annotated[Path, typer.Argument(help="Any run folder (its metrics.jsonl).")],
    out: Annotated[Path | None, Opt("--out", "-o", help="PNG to write (default RUN/curves.png).")] = None,
) -> None:
    """Training curves as a PNG: training and validation loss, and the other validation metrics."""
    from rnnkit.curves import plot_curves

    _setup_logging()
    target = out or run / "curves.png"
    drawn = plot_curves(run, target)
    print(f"{target}: {', '.join(drawn)}")


# -------------------------------------------------------------------------------------------------
# entry point


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns (and, as a script, exits with) the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    command = typer.main.get_command(app)
    if not args:
        args = ["--help"]
    try:
        result = command.main(args=args, prog_name="rnnkit", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click_exceptions.UsageError as exc:
        if debug:
            raise
        print(f"rnnkit: error: {exc.format_message()}", file=sys.stderr)
        return 2
    except (typer.Abort, KeyboardInterrupt):
        print("rnnkit: interrupted", file=sys.stderr)
        return 130
    except RnnkitError as exc:
        if debug:
            raise
        print(f"rnnkit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        return 0
    except OSError as exc:
        if debug:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"rnnkit: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
