"""The captioning task for the trainer, the loaded captioner and its registry entry (``SPEC``)."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from rnnkit.config import from_dict
from rnnkit.data.buckets import BucketStream, pad
from rnnkit.data.items import a_list
from rnnkit.data.vocab import END_ID, START_ID, TokenTable
from rnnkit.errors import CheckpointError, DataError, UsageError
from rnnkit.tasks.caption.config import TASK, CaptionConfig, CaptionModelConfig
from rnnkit.tasks.caption.data import (
    Split,
    build_words,
    caption_ids,
    load_image,
    load_split,
    normalised,
    prepare,
    word_table,
)
from rnnkit.tasks.caption.metrics import CaptionEvaluation, bleu, describe
from rnnkit.tasks.caption.model import Captioner
from rnnkit.train.build import build_checked
from rnnkit.train.checkpoint import (
    load_weights,
    task_config,
)
from rnnkit.train.rundir import no_symlink
from rnnkit.train.task import Setup, Task, TaskSpec

log = logging.getLogger("rnnkit")


# -------------------------------------------------------------------------------------------------
# the trainer's task


class CaptionTask(Task):
    name = TASK
    unit = "pictures"
    selection = ("val_bleu4", "max")

    def __init__(
        self, config: CaptionConfig, train: Split, val: Split, vocab: TokenTable, world_size: int = 1
    ) -> None:
        self.config, self.train, self.val, self.vocab = config, train, val, vocab
        limit = config.data.max_words
        captioned = [(i, c) for i, refs in enumerate(train.references) for c in refs]
        self.pairs = [(i, caption_ids(vocab, c)[:limit]) for i, c in captioned]
        self.pairs = [(i, ids) for i, ids in self.pairs if ids]
        if not self.pairs:
            raise DataError(f"{config.data.captions}: no training caption has a word")
        # the words each picture's captions use (<pad>, <start>, <end> and <unk> left out)
        self.bags = torch.zeros(len(train.references), len(vocab))
        for i, refs in enumerate(train.references):
            for caption in refs:
                self.bags[i, caption_ids(vocab, caption)] = 1.0
        self.bags[:, vocab.special_ids] = 0.0
        t = config.train
        words = [len(ids) for _, ids in self.pairs]
        self.stream = BucketStream(words, t.batch_size * world_size, t.seed, min_rows=world_size)

    def next_batch(self):
        where = f"{self.config.train.seed}-{self.stream.epoch}-{self.stream.index}"
        rows = self.stream.next_rows()
        flips = [False] * len(rows)
        if self.config.data.flip:  # drawn for the global batch: each row's flip is the same on any rank
            rng = random.Random(where)
            flips = [rng.random() < 0.5 for _ in rows]
        mine = self.shard(list(zip(rows, flips, strict=True)))
        pictures = [self.pairs[r][0] for r, _ in mine]
        images = self.train.images[pictures]
        if self.config.data.flip:
            flipped = torch.tensor([f for _, f in mine])
            images = torch.where(flipped[:, None, None, None], images.flip(-1), images)
        inputs, lengths = pad([[START_ID, *self.pairs[r][1]] for r, _ in mine])
        targets, _ = pad([[*self.pairs[r][1], END_ID] for r, _ in mine])
        bags = self.bags[pictures]
        words = lambda rows: sum(len(self.pairs[r][1]) + 1 for r in rows)  # noqa: E731 (with <end>)
        shares = torch.tensor(
            [self.share(words(r for r, _ in mine), words(rows)), self.share(len(mine), len(rows))]
        )
        return (images, inputs, lengths, targets, bags, shares), False

    def data_state(self) -> dict:
        return self.stream.state()

    def load_data_state(self, state: dict) -> None:
        self.stream.load_state(state)

    def training_loss(self, model: nn.Module, batch, carry):
        images, inputs, lengths, targets, bags, shares = batch
        logits, found = model(images, inputs, lengths, words=True)
        mask = torch.arange(inputs.shape[1], device=lengths.device)[None] < lengths[:, None]
        loss = F.cross_entropy(logits.float()[mask], targets[mask], reduction="sum")
        loss = loss / int(lengths.sum()) * shares[0]
        if found is not None:
            bag = F.binary_cross_entropy_with_logits(found.float(), bags)
            loss = loss + self.config.model.word_loss * bag * shares[1]
        return loss, None, int(images.shape[0])

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        hyps = describe(cast(Captioner, model), self.val.images, self.vocab, self.config.data.max_words)
        refs = [[normalised(r) for r in refs] for refs in self.val.references]
        found = bleu(hyps, refs)
        return {"val_bleu4": found["bleu4"], "val_bleu1": found["bleu1"]}

    def on_evaluate(self, model: nn.Module, step: int) -> None:
        return None

    def checkpoint_extras(self) -> dict:
        return {"vocab": self.vocab.tokens}


# -------------------------------------------------------------------------------------------------
# training and loading


def prepare_task(config: CaptionConfig, setup: Setup) -> CaptionTask:
    """Read the captions and split the pictures, build the vocabulary (or read back a resumed run's,
    whose backbone the caller must name) and load the pictures."""
    d, size = config.data, config.model.image_size
    captions, train_names, val_names, test_names = prepare(config)
    if setup.resumed is not None:
        saved = from_dict(CaptionConfig, setup.resumed.config["config"])
        trust_backbone(saved.model, config.model.backbone, setup.out)
        vocab = saved_vocab(setup.resumed)
    else:
        vocab = build_words([c for n in train_names for c in captions.captions[n]], d.min_count)
    train = load_split(Path(d.images), train_names, captions, size)
    val = load_split(Path(d.images), val_names, captions, size)
    task = CaptionTask(config, train, val, vocab, world_size=setup.world_size)
    log.info(
        "data: %d training, %d validation, %d test pictures; %d training captions; vocabulary of %d words",
        len(train_names), len(val_names), len(test_names), len(task.pairs), len(vocab),
    )  # fmt: skip
    return task


@dataclass
class LoadedCaptioner:
    """A trained captioner, as ``rnnkit.load(run_dir)`` returns it.

    Methods:

    - ``caption(images, beam=1) -> list[str]``: a caption for each picture, given by its path or its
      content (bytes of a PNG or JPEG, decoded in memory; an unreadable one is a one-line
      :class:`DataError`); greedy, or batched beam search with ``beam`` > 1. What ``rnnkit caption
      predict`` prints and the server's ``/v1/caption`` gives. ``describe`` is the same method.

    Attributes: ``model``, ``vocab``, ``config``, ``checkpoint``.
    """

    model: Captioner
    vocab: TokenTable
    config: CaptionConfig
    checkpoint: str

    def caption(self, images: list[Path | bytes], beam: int = 1) -> list[str]:
        """A caption of each picture: :func:`~rnnkit.tasks.caption.metrics.describe` of them, read at the
        model's size."""
        if beam < 1:
            raise UsageError(f"beam: expected 1 or more, got {beam}")
        if not a_list(images, "caption", "pictures (paths or bytes)"):
            return []
        pictures = torch.stack([load_image(image, self.config.model.image_size) for image in images])
        return describe(self.model, pictures, self.vocab, self.config.data.max_words, beam)

    describe = caption


def saved_caption_config(run_dir: Path) -> CaptionConfig:
    """The config to resume a run with; an external backbone is left for the caller to name again
    (see :func:`trust_backbone`)."""
    config = task_config(run_dir, "last", TASK, CaptionConfig, "a captioner")[1]
    config.model.backbone = ""
    return config


def saved_vocab(loaded) -> TokenTable:
    try:
        return word_table(loaded.config["vocab"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{loaded.folder}: config.json lacks the vocabulary ({exc})") from None


def trust_backbone(model: CaptionModelConfig, given: str, where: Path) -> None:
    """A checkpoint never names code that loading runs: a run trained with an external ``backbone``
    (code that its config names) is rebuilt only when the caller names that same backbone itself."""
    if model.backbone and given != model.backbone:
        raise CheckpointError(
            f"{where}: trained with the external backbone {model.backbone!r}; loading never imports code "
            "that a run folder names: pass --backbone with that value yourself if you trust it"
        )


def load_captioner(
    run_dir: Path, which: str = "best", device: str = "cpu", backbone: str = ""
) -> LoadedCaptioner:
    """A trained captioner; ``backbone``: the external backbone it was trained with, named by the caller
    (see :func:`trust_backbone`)."""
    loaded, config = task_config(run_dir, which, TASK, CaptionConfig, "a captioner")
    vocab = saved_vocab(loaded)
    trust_backbone(config.model, backbone, loaded.folder)
    config.model.backbone_weights = ""  # the checkpoint holds every weight; the file is not needed again
    model = build_checked(lambda: Captioner(len(vocab), config.model), checkpoint=loaded)
    load_weights(model, loaded)
    model.to(device).eval()
    return LoadedCaptioner(model, vocab, config, loaded.name)


def picture_grid(paths: list[Path], texts: list[str], out: Path, columns: int = 4) -> None:
    """A PNG page of pictures, each with its caption underneath."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    rows = (len(paths) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, path, text in zip(axes.flat, paths, texts, strict=False):
        with Image.open(path) as image:
            ax.imshow(image.convert("RGB"))
        ax.set_title("\n".join(_wrap(text, 34)), fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(no_symlink(out), dpi=100)
    plt.close(fig)


def evaluation_grid(found: CaptionEvaluation, images: Path, out: Path, count: int = 12) -> None:
    """:func:`picture_grid` of the first ``count`` pictures of an evaluation (``images``: their folder)
    and the captions the model wrote for them: what ``rnnkit caption eval --grid`` saves."""
    paths = [images / name for name in found.names[:count]]
    picture_grid(paths, found.captions[:count], out)


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines or [""]


SPEC = TaskSpec(
    name=TASK,
    config=CaptionConfig,
    prepare=prepare_task,
    build_model=lambda task: Captioner(len(task.vocab), task.config.model),
    load=load_captioner,
    loaded=LoadedCaptioner,
)
"""The captioner in the registry (``rnnkit.tasks.TASKS["caption"]``)."""
