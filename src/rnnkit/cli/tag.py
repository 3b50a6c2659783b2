"""``rnnkit tag train | eval | predict``: sequence tagging."""

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

tag_app = typer.Typer(
    help="Sequence tagging with a BiRNN (+CRF): named entities, Chinese word segmentation.",
    no_args_is_help=True,
)
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
@config_flags("tag")
def tag_train(
    data: Annotated[Path | None, typer.Argument(help="Training file.", show_default=False)] = None,
    format_: Format = "conll",
    out: OutOpt = None,
    values: ConfigValues = CONFIG_FLAGS,
    resume: ResumeOpt = None,
    force: ForceOpt = False,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a tagger on CoNLL-style or segmented text."""
    from rnnkit.tasks import tag

    _train_task(
        "tag", values, set_, data=data,
        base={"data.train": data and str(data), "data.format": format_},
        default_out=data and Path("runs") / f"tag-{data.stem}", saved=tag.saved_tagger_config,
        missing="give the training file, or --resume RUN",
        out=out, resume=resume, force=force, quiet=quiet,
        report=lambda r: f"step {r['step']}, validation F1 {r.get('val_f1', float('nan')):.4f}",
    )  # fmt: skip


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
    from rnnkit.tasks import load_run
    from rnnkit.tasks.tag.metrics import score_file

    setup_logging()
    loaded = load_run(run, checkpoint, task="tag")
    found = score_file(loaded, data, format_, encoding)
    if json_:
        print(json.dumps(found))
        return
    print(
        f"{data}: {found['sentences']:,} sentences, precision {found['precision']:.4f}, "
        f"recall {found['recall']:.4f}, F1 {found['f1']:.4f} ({found['scoring']})"
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
    from rnnkit.data.files import read_lines
    from rnnkit.tasks import load_run

    setup_logging()
    loaded = load_run(run, checkpoint, task="tag")
    for found in loaded.tag_texts(read_lines(files, encoding)):
        if "words" in found:
            print("  ".join(found["words"]))
        else:
            print("\n".join(f"{t}\t{g}" for t, g in zip(found["tokens"], found["tags"], strict=True)) + "\n")
