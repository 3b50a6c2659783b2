"""``rnnkit classify train | eval | predict``: sentence classification."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rnnkit.cli.options import (
    CellOpt,
    CheckpointOpt,
    DropoutOpt,
    EncodingOpt,
    EvalIntervalOpt,
    ForceOpt,
    LrOpt,
    MaxStepsOpt,
    NumLayersOpt,
    Opt,
    OutOpt,
    QuietOpt,
    ResumeOpt,
    SeedOpt,
    ThreadsOpt,
    _budget_flags,
    _read_lines,
    _setup_logging,
    _train_task,
    minutes_opt,
)

classify_app = typer.Typer(
    help="Sentence classification (sentiment analysis) from the last output of a (bi)RNN.",
    no_args_is_help=True,
)

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
