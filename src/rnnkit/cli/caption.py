"""``rnnkit caption train | eval | predict | make-shapes``: image captioning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rnnkit.cli.options import (
    CONFIG_FLAGS,
    CheckpointOpt,
    ConfigValues,
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
from rnnkit.errors import UsageError

caption_app = typer.Typer(
    help="Image captioning (看图说话): a CNN's picture vector enters an RNN at its first step.",
    no_args_is_help=True,
)

TrustBackboneOpt = Annotated[
    str,
    Opt(
        "--backbone",
        help="The external backbone (package.module:factory) the run was trained with: a run folder never "
        "names code that loading imports, so you name it yourself, and only if you trust it.",
    ),
]


@caption_app.command(
    "train",
    epilog="Examples:\n\n"
    "  rnnkit caption make-shapes shapes --n 5000\n\n"
    "  rnnkit caption train shapes/images shapes/captions.csv --out runs/shapes --max-minutes 20\n\n"
    "  rnnkit caption train flickr8k_mini/images flickr8k_mini/captions.txt --out runs/flickr\n\n",
)
@config_flags("caption")
def caption_train(
    images: Annotated[Path | None, typer.Argument(help="The folder of pictures.", show_default=False)] = None,
    captions: Annotated[
        Path | None, typer.Argument(help="image,caption CSV (or Karpathy's JSON).", show_default=False)
    ] = None,
    out: OutOpt = None,
    values: ConfigValues = CONFIG_FLAGS,
    resume: ResumeOpt = None,
    force: ForceOpt = False,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a captioner; pictures are split into train, validation and test (never captions)."""
    from rnnkit.tasks import caption

    if (images is None) != (captions is None):
        raise UsageError("give both the folder of pictures and the captions file")
    _train_task(
        "caption", values, set_, data=images,
        base={"data.images": images and str(images), "data.captions": captions and str(captions)},
        default_out=images and Path("runs") / f"caption-{images.stem}", saved=caption.saved_caption_config,
        missing="give the folder of pictures and the captions file, or --resume RUN",
        out=out, resume=resume, force=force, quiet=quiet,
        report=lambda r: f"step {r['step']}, validation BLEU-4 {r.get('val_bleu4', float('nan')):.2f}",
    )  # fmt: skip


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
    from rnnkit.tasks import load_run
    from rnnkit.tasks.caption.metrics import evaluate_captions
    from rnnkit.tasks.caption.task import evaluation_grid

    setup_logging()
    if split not in ("test", "val") or beam < 1:
        raise UsageError("--split: test or val; --beam: 1 or more")
    loaded = load_run(run, checkpoint, task="caption", backbone=backbone)
    found = evaluate_captions(
        loaded, images, captions, split=split, beam=beam, with_baselines=baselines, shape_words=shape_words
    )
    result = found.scores
    if grid is not None:
        evaluation_grid(found, images, grid)
    if json_:
        print(json.dumps(result))
        return
    scores = " ".join(f"BLEU-{n} {result[f'bleu{n}']:.2f}" for n in range(1, 5))
    print(f"{captions} ({split}, {result['pictures']:,} pictures, beam {beam}): {scores}")
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

    setup_logging()
    if beam < 1:
        raise UsageError("--beam: 1 or more")
    loaded = load_run(run, checkpoint, task="caption", backbone=backbone)
    for path, text in zip(files, loaded.caption(files, beam), strict=True):
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

    setup_logging()
    if n < 3 or size < 16:
        raise UsageError("--n: 3 or more; --size: 16 or more")
    path = make_shapes(out, n, size, seed)
    print(f"{path}: {n:,} pictures, {2 * n:,} captions")
