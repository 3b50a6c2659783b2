"""The corpus of a run: encoded once into the run folder (with its vocabulary), or read back on resume."""

from __future__ import annotations

import logging
from pathlib import Path

from rnnkit.config import to_dict
from rnnkit.data.corpus import EncodedCorpus
from rnnkit.data.vocab import Vocabulary
from rnnkit.errors import CheckpointError
from rnnkit.tasks.lm.config import LMConfig

log = logging.getLogger("rnnkit")


def _encode(config: LMConfig, staging: Path) -> EncodedCorpus:
    """Encode the corpus into ``staging/data`` (and the run's ``config.json`` beside it).

    Bad input (a missing, empty or undecodable file, a corpus too small for one batch, a model too large
    for memory) therefore leaves no trace, and ``--force`` replaces an old run only once the new one is
    known to start.
    """
    from rnnkit.data.corpus import encode_corpus, resolve_sources
    from rnnkit.train.checkpoint import atomic_write_json

    d = config.data
    docs = resolve_sources(d.sources, strict=d.strict_folders)
    corpus = encode_corpus(
        docs,
        staging / "data",
        vocab_kind=d.vocab,
        max_vocab=d.max_vocab or None,
        val_fraction=d.val_fraction,
        split=d.resolved_split(),
        encoding=d.encoding,
        errors=d.errors,
    )
    info = {**corpus.to_dict(), "vocab": corpus.vocab.to_dict()}
    atomic_write_json(staging / "data" / "corpus.json", info)
    atomic_write_json(staging / "config.json", to_dict(config))
    log.info(
        "corpus: %d files, %s training and %s validation tokens, vocabulary of %d",
        corpus.documents,
        f"{corpus.train_tokens:,}",
        f"{corpus.val_tokens:,}",
        len(corpus.vocab),
    )
    return corpus


def _saved_corpus(out: Path, loaded) -> EncodedCorpus:
    try:
        vocab = Vocabulary.from_dict(loaded.config["vocab"])
        return EncodedCorpus.load(out / "data", vocab, loaded.config["corpus"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{loaded.folder}: config.json does not describe the corpus ({exc})") from None
