"""Vocabularies, corpus readers and batching."""

from rnnkit.data.batching import StreamBatcher
from rnnkit.data.corpus import Document, EncodedCorpus, encode_corpus, read_chunks, resolve_sources
from rnnkit.data.vocab import Vocabulary

__all__ = [
    "Document",
    "EncodedCorpus",
    "StreamBatcher",
    "Vocabulary",
    "encode_corpus",
    "read_chunks",
    "resolve_sources",
]
