"""Captioning's scores: corpus BLEU (sacrebleu), the captions a model writes, and two baselines that
need no RNN."""

from __future__ import annotations

from collections import Counter

import torch
from torch import Tensor
from torch.nn import functional as F

from rnnkit.tasks.caption.data import Split, WordVocab, normalised
from rnnkit.tasks.caption.model import Captioner


def bleu(hypotheses: list[str], references: list[list[str]]) -> dict[str, float]:
    """Corpus BLEU-1..4 (sacrebleu, 0-100) of the hypotheses against every reference of each picture."""
    from sacrebleu.metrics import BLEU

    width = max(len(r) for r in references)
    streams = [[refs[i] if i < len(refs) else refs[0] for refs in references] for i in range(width)]
    return {f"bleu{n}": BLEU(max_ngram_order=n).corpus_score(hypotheses, streams).score for n in range(1, 5)}


@torch.no_grad()
def describe(model: Captioner, images: Tensor, vocab: WordVocab, max_words: int, beam: int = 1,
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
