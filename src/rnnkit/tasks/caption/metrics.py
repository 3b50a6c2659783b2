"""Captioning's scores: corpus BLEU (sacrebleu), the captions a model writes, two baselines that need
no RNN, and a trained captioner's evaluation on the pictures its run held out."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.nn import functional as F

from rnnkit.data.shapes import words_right
from rnnkit.data.vocab import TokenTable
from rnnkit.tasks.caption.data import Split, load_split, normalised, prepare
from rnnkit.tasks.caption.model import Captioner

if TYPE_CHECKING:  # annotations only: the loaded captioner sits above this module
    from rnnkit.tasks.caption.task import LoadedCaptioner


def bleu(hypotheses: list[str], references: list[list[str]]) -> dict[str, float]:
    """Corpus BLEU-1..4 (sacrebleu, 0-100) of the hypotheses against every reference of each picture."""
    from sacrebleu.metrics import BLEU

    width = max(len(r) for r in references)
    streams = [[refs[i] if i < len(refs) else refs[0] for refs in references] for i in range(width)]
    return {f"bleu{n}": BLEU(max_ngram_order=n).corpus_score(hypotheses, streams).score for n in range(1, 5)}


@torch.no_grad()
def describe(model: Captioner, images: Tensor, vocab: TokenTable, max_words: int, beam: int = 1,
             batch_size: int = 64) -> list[str]:  # fmt: skip
    """A caption for each picture (greedy, or beam search with ``beam`` > 1)."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[str] = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size].to(device)
        if beam > 1:
            out += [vocab.decode(ids) for ids in model.beams(chunk, beam, max_words)]
        else:
            out += [vocab.decode(ids) for ids in model.greedy(chunk, max_words)]
    model.train(was)
    return out


@torch.no_grad()
def picture_vectors(model: Captioner, images: Tensor, batch_size: int = 128) -> Tensor:
    model.eval()
    device = next(model.parameters()).device
    return torch.cat(
        [
            model.features(images[i : i + batch_size].to(device)).cpu()
            for i in range(0, len(images), batch_size)
        ]
    )


def baselines(model: Captioner, train: Split, test: Split) -> dict[str, list[str]]:
    """Two captions per test picture that need no RNN: the most common training caption, and the first
    caption of the training picture nearest by the CNN's picture vector (cosine)."""
    common = Counter(normalised(c) for refs in train.references for c in refs).most_common(1)[0][0]
    a = F.normalize(picture_vectors(model, test.images), dim=-1)
    b = F.normalize(picture_vectors(model, train.images), dim=-1)
    nearest = (a @ b.T).argmax(-1).tolist()
    return {
        "most_common": [common] * len(test.names),
        "nearest_picture": [normalised(train.references[j][0]) for j in nearest],
    }


@dataclass
class CaptionEvaluation:
    """A trained captioner's evaluation: ``scores`` is what ``rnnkit caption eval --json`` prints; the
    pictures' names and the captions written for them, in split order, are kept for a page of pictures."""

    scores: dict
    names: list[str]
    captions: list[str]


def evaluate_captions(
    loaded: LoadedCaptioner,
    images: Path,
    captions: Path,
    *,
    split: str = "test",
    beam: int = 1,
    with_baselines: bool = False,
    shape_words: bool = False,
) -> CaptionEvaluation:
    """Corpus BLEU-1..4 of the captions a trained captioner writes for the pictures its run held out
    (``split``: test or val), against every reference caption of each picture.

    The pictures are split again from the captions file with the run's seed and fractions, so the test
    pictures are the ones training never saw. ``with_baselines`` also scores the most common training
    caption and the nearest training picture's caption; ``shape_words`` counts the captions whose every
    colour and shape word (and, second, size word) is right, for ``make-shapes`` data. The loaded run's
    config is left as it is.
    """
    config = loaded.config
    config = replace(config, data=replace(config.data, images=str(images), captions=str(captions)))
    found, train_names, val_names, test_names = prepare(config)
    names = test_names if split == "test" else val_names
    part = load_split(images, names, found, config.model.image_size)
    started = time.perf_counter()
    hyps = describe(loaded.model, part.images, loaded.vocab, config.data.max_words, beam)
    seconds = time.perf_counter() - started
    refs = [[normalised(r) for r in rs] for rs in part.references]
    result: dict = bleu(hyps, refs)
    result |= {"pictures": len(names), "split": split, "beam": beam, "checkpoint": loaded.checkpoint}
    result["seconds"] = round(seconds, 2)
    if shape_words:
        pairs = list(zip(hyps, refs, strict=True))
        result["shape_words_right"] = sum(words_right(h, r) for h, r in pairs) / len(pairs)
        sized = sum(words_right(h, r, sizes=True) for h, r in pairs)
        result["shape_and_size_words_right"] = sized / len(pairs)
    if with_baselines:
        train = load_split(images, train_names, found, config.model.image_size)
        for name, texts in baselines(loaded.model, train, part).items():
            result[name] = bleu(texts, refs)
    result["examples"] = [{"image": n, "caption": h} for n, h in zip(names[:5], hyps[:5], strict=False)]
    return CaptionEvaluation(result, names, hyps)
