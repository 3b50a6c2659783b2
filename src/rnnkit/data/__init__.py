"""Vocabularies (character/byte streams and token tables), corpus readers and batching."""

from rnnkit.data.batching import StreamBatcher
from rnnkit.data.corpus import Document, EncodedCorpus, encode_corpus, read_chunks, resolve_sources
from rnnkit.data.vocab import Specials, TokenTable, Vocabulary

__all__ = [
    "Document",
    "EncodedCorpus",
    "Specials",
    "StreamBatcher",
    "TokenTable",
    "Vocabulary",
    "encode_corpus",
    "read_chunks",
    "resolve_sources",
]
