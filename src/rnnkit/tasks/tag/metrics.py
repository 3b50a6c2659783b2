"""The tagger's scores: word segmentation for ``segmented`` data, entities (seqeval) for ``conll``; a
trained tagger's scores on a tagged file, and its tags for raw lines of text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rnnkit.data.seqlabel import entity_scores, read_sentences, segmentation_scores, tags_to_words
from rnnkit.errors import DataError

if TYPE_CHECKING:  # annotations only: the loaded tagger sits above this module
    from rnnkit.tasks.tag.task import LoadedTagger


def score(fmt: str, tags: list[str], gold: list[list[int]], pred: list[list[int]]) -> dict[str, float]:
    """Word-segmentation scores for ``segmented`` data, entity scores (seqeval) for ``conll``."""
    names = lambda rows: [[tags[t] for t in row] for row in rows]  # noqa: E731
    if fmt == "segmented":
        return segmentation_scores(names(gold), names(pred))
    return entity_scores(names(gold), names(pred))


def score_file(loaded: LoadedTagger, path: Path, fmt: str = "", encoding: str = "utf-8") -> dict:
    """:func:`score` of a trained tagger on a tagged file (``fmt``: conll or segmented; empty: the
    format the run was trained on), with the sentence count and the scoring used. A tag the model
    never saw is a one-line error rather than a score that silently counts it wrong."""
    fmt = fmt or loaded.config.data.format
    sentences = read_sentences(path, fmt, encoding)
    unknown = sorted({t for s in sentences.tags for t in s} - set(loaded.tags))
    if unknown:
        raise DataError(f"{path}: tags the model never saw: {', '.join(unknown[:5])}")
    index = {t: i for i, t in enumerate(loaded.tags)}
    pred = loaded.tag(sentences.tokens)
    gold = [[index[t] for t in s] for s in sentences.tags]
    found: dict = score(fmt, loaded.tags, gold, [[index[t] for t in s] for s in pred])
    scoring = "sighan-words" if fmt == "segmented" else "seqeval-entities"
    return found | {"sentences": len(gold), "scoring": scoring}


@dataclass
class TaggedLine:
    """A raw line as the tagger read it: its tokens and their tags, and for a word-segmentation model
    the words the tags mark (None for a conll model)."""

    tokens: list[str]
    tags: list[str]
    words: list[str] | None


def tag_lines(loaded: LoadedTagger, lines: list[str]) -> list[TaggedLine]:
    """Tag raw lines of text the way the run tokenised its training data: a character model reads each
    character that is not white space, a word model the words between white space."""
    chars = loaded.inputs.kind == "char"
    sentences = [[c for c in line if not c.isspace()] if chars else line.split() for line in lines]
    segmented = loaded.config.data.format == "segmented"
    return [
        TaggedLine(tokens, tags, tags_to_words(tokens, tags) if segmented else None)
        for tokens, tags in zip(sentences, loaded.tag(sentences), strict=True)
    ]


def entities_of(tokens: list[str], tags: list[str], joiner: str = " ") -> list[dict]:
    """The entities that ``tags`` mark on ``tokens``, found as seqeval finds them when it scores (BIO,
    BIOES, IOB): each ``{"type", "text", "start", "end"}``, ``start`` and ``end`` token indices (end
    exclusive) and ``text`` the tokens joined by ``joiner``."""
    from seqeval.metrics.sequence_labeling import get_entities

    return [
        {"type": kind, "text": joiner.join(tokens[start : last + 1]), "start": start, "end": last + 1}
        for kind, start, last in get_entities(list(tags))
    ]


def tag_texts(loaded: LoadedTagger, texts: list[str]) -> list[dict]:
    """:func:`tag_lines` of raw texts as plain data: each ``{"tokens", "tags"}`` plus ``"words"`` for a
    word-segmentation run or ``"entities"`` (:func:`entities_of`) for a conll run: what ``rnnkit tag
    predict``, the server's ``/v1/tag`` and ``model.tag_texts`` give. A text is read as one sentence
    (line breaks count as white space)."""
    joiner = "" if loaded.inputs.kind == "char" else " "
    out = []
    for line in tag_lines(loaded, list(texts)):
        found: dict = {"tokens": line.tokens, "tags": line.tags}
        if line.words is not None:
            found["words"] = line.words
        else:
            found["entities"] = entities_of(line.tokens, line.tags, joiner)
        out.append(found)
    return out
