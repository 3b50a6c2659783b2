"""``rnnkit caption train | eval | predict | make-shapes``: image captioning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rnnkit.cli.options import (
    CellOpt,
    CheckpointOpt,
    DropoutOpt,
    EvalIntervalOpt,
    ForceOpt,
    LrOpt,
    MaxStepsOpt,
    Opt,
    OutOpt,
    QuietOpt,
    ResumeOpt,
    SeedOpt,
    ThreadsOpt,
    TrustBackboneOpt,
    _budget_flags,
    _setup_logging,
    _train_task,
    minutes_opt,
)
from rnnkit.errors import UsageError

caption_app = typer.Typer(
    help="Image captioning (看图说话): a CNN's picture vector enters an RNN at its first step.",
    no_args_is_help=True,
)


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
