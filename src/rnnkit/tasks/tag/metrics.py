"""The tagger's scores: word segmentation for ``segmented`` data, entities (seqeval) for ``conll``."""

from __future__ import annotations

from rnnkit.data.seqlabel import entity_scores, segmentation_scores


def score(fmt: str, tags: list[str], gold: list[list[int]], pred: list[list[int]]) -> dict[str, float]:
    """Word-segmentation scores for ``segmented`` data, entity scores (seqeval) for ``conll``."""
    names = lambda rows: [[tags[t] for t in row] for row in rows]  # noqa: E731
    if fmt == "segmented":
        return segmentation_scores(names(gold), names(pred))
    return entity_scores(names(gold), names(pred))
