import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.data.vocab import UNK, Vocabulary


def test_char_vocab_orders_by_frequency_with_unknown_first():
    vocab = Vocabulary.from_text("aaabbc")
    assert vocab.tokens == [UNK, "a", "b", "c"]
    assert vocab.unk_id == 0


def test_max_vocab_keeps_the_most_frequent_and_maps_the_rest_to_unknown():
    vocab = Vocabulary.from_text("春春春夏夏秋", max_size=3)
    assert vocab.tokens == [UNK, "春", "夏"]
    assert vocab.encode("春秋").tolist() == [1, 0]
    assert vocab.decode([1, 0]) == "春" + UNK
    assert vocab.missing("春秋冬") == ["秋", "冬"]


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1))
def test_char_round_trip(text):
    vocab = Vocabulary.from_text(text)
    assert vocab.decode(vocab.encode(text)) == text


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_byte_round_trip_and_streaming_decoder(text):
    text = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates cannot be UTF-8
    vocab = Vocabulary.bytes()
    ids = vocab.encode(text)
    assert len(vocab) == 256 and ids.dtype == np.uint16
    assert vocab.decode(ids) == text
    decode = vocab.decoder()
    assert "".join(decode(int(i)) for i in ids) + decode.flush() == text


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1), st.text())
def test_unknown_characters_decode_to_the_unknown_mark(train, other):
    vocab = Vocabulary.from_text(train)
    decoded = vocab.decode(vocab.encode(other))
    assert len(decoded) == len(other)
    for a, b in zip(other, decoded, strict=True):
        assert b in (a, UNK)


def test_dict_round_trip():
    vocab = Vocabulary.from_text("hello, 世界\n")
    again = Vocabulary.from_dict(vocab.to_dict())
    assert again.tokens == vocab.tokens and again.kind == "char"
    assert again.encode("world").tolist() == vocab.encode("world").tolist()
