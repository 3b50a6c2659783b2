"""``rnnkit tag train | eval | predict``: sequence tagging."""

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
from rnnkit.errors import DataError

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
