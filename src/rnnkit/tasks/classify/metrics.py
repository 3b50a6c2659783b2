"""Accuracy, macro-F1 and the confusion matrix; class probabilities of encoded rows; a trained
classifier's scores on a labelled file, and its most likely label for each text."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
from torch import Tensor, nn

from rnnkit.data.items import a_list
from rnnkit.data.table import read_table
from rnnkit.errors import DataError
from rnnkit.tasks.classify.data import Encoded

if TYPE_CHECKING:  # annotations only: the loaded models sit above this module
    from rnnkit.tasks.classify.ensemble import LoadedEnsemble
    from rnnkit.tasks.classify.task import LoadedClassifier


def format_confusion(labels: list[str], matrix: list[list[int]]) -> str:
    """The confusion matrix as a text table: a row per gold label, a column per predicted one, each
    column as wide as its widest label or count, two spaces apart."""
    head = "gold \\ predicted"
    first = max(len(head), *(len(x) for x in labels))
    widths = [max(len(label), *(len(str(row[j])) for row in matrix)) for j, label in enumerate(labels)]
    lines = [head.ljust(first) + "".join("  " + x.rjust(w) for x, w in zip(labels, widths, strict=True))]
    for label, row in zip(labels, matrix, strict=True):
        lines.append(
            label.ljust(first) + "".join("  " + str(v).rjust(w) for v, w in zip(row, widths, strict=True))
        )
    return "\n".join(lines)


def confusion(gold: list[int], pred: list[int], classes: int) -> list[list[int]]:
    """``matrix[g][p]``: how many rows of gold class g were predicted as p."""
    matrix = [[0] * classes for _ in range(classes)]
    for g, p in zip(gold, pred, strict=True):
        matrix[g][p] += 1
    return matrix


def scores(gold: list[int], pred: list[int], classes: int) -> dict:
    """Accuracy, macro-F1 (the unweighted mean of the per-class F1) and the confusion matrix."""
    matrix = confusion(gold, pred, classes)
    f1s = []
    for c in range(classes):
        tp = matrix[c][c]
        fp = sum(matrix[g][c] for g in range(classes)) - tp
        fn = sum(matrix[c]) - tp
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    accuracy = sum(matrix[c][c] for c in range(classes)) / max(len(gold), 1)
    return {"accuracy": accuracy, "macro_f1": sum(f1s) / classes, "confusion": matrix}


@torch.no_grad()
def predict_encoded(model: nn.Module, rows: Encoded, batch_size: int = 128) -> Tensor:
    """Class probabilities ``(N, C)`` in the order of ``rows``; batches by length for speed."""
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(rows.ids)), key=lambda i: len(rows.ids[i]))
    classes = cast(nn.Linear, model.head).out_features  # every classifier ends in its linear head
    out = torch.empty(len(rows.ids), classes)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        ids, lengths, bigrams = rows.batch(chunk)
        bigrams = bigrams if bigrams is None else bigrams.to(device)
        out[chunk] = torch.softmax(model(ids.to(device), lengths, bigrams).float(), dim=-1).cpu()
    return out


def score_file(
    loaded: LoadedClassifier | LoadedEnsemble, path: Path, text_column: str, label_column: str, encoding: str
) -> dict:
    """:func:`scores` of a trained classifier (or ensemble) on a labelled file, with its row count."""
    table = read_table(path, text_column, label_column, encoding=encoding)
    index = {label: i for i, label in enumerate(loaded.labels)}
    unknown = sorted(set(table.labels) - set(index))
    if unknown:
        raise DataError(f"{path}: labels the model never saw: {', '.join(unknown[:5])}")
    pred = loaded.predict(table.texts).argmax(-1).tolist()
    return scores([index[y] for y in table.labels], pred, len(loaded.labels)) | {"rows": len(table.texts)}


def classify_texts(loaded: LoadedClassifier | LoadedEnsemble, texts: list[str]) -> list[dict]:
    """Each text's most likely label and every label's probability (in the order of ``loaded.labels``),
    from one :meth:`predict` of them all: what ``rnnkit classify predict``, the server's ``/v1/classify``
    and ``model.classify`` give."""
    if not a_list(texts, "classify", "texts"):
        return []
    probabilities = loaded.predict(list(texts))
    labels = loaded.labels
    return [
        {
            "label": labels[int(row.argmax())],
            "probabilities": {label: float(p) for label, p in zip(labels, row.tolist(), strict=True)},
        }
        for row in probabilities
    ]
