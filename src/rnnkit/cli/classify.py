"""``rnnkit classify train | eval | predict``: sentence classification."""

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
    OutOpt,
    QuietOpt,
    ResumeOpt,
    SetOpt,
    _train_task,
    config_flags,
)
from rnnkit.console import setup_logging

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
@config_flags("classify")
def classify_train(
    data: Annotated[
        Path | None, typer.Argument(help="Training file: CSV or TSV.", show_default=False)
    ] = None,
    text_column: Column = "1",
    label_column: Column = "0",
    out: OutOpt = None,
    values: ConfigValues = CONFIG_FLAGS,
    resume: ResumeOpt = None,
    force: ForceOpt = False,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a text classifier on labelled rows of a CSV/TSV file."""
    from rnnkit.tasks import classify

    _train_task(
        "classify", values, set_, data=data,
        base={"data.train": data and str(data), "data.text_column": text_column,
              "data.label_column": label_column},
        default_out=data and Path("runs") / f"classify-{data.stem}", saved=classify.saved_classifier_config,
        missing="give the training file (CSV or TSV), or --resume RUN",
        out=out, resume=resume, force=force, quiet=quiet, report=_classify_report,
    )  # fmt: skip


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

    setup_logging()
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
    from rnnkit.data.files import read_lines
    from rnnkit.tasks import load_run

    setup_logging()
    loaded = load_run(run, checkpoint, task="classify")
    lines = read_lines(files, encoding)
    for line, found in zip(lines, loaded.classify(lines), strict=True):
        print(f"{found['label']}\t{found['probabilities'][found['label']]:.4f}\t{line}")
