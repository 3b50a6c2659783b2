import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.data.table import BOUNDARY, TEXT_SPECIALS
from rnnkit.data.vocab import END_ID, PAD_ID, START_ID, UNK, Specials, TokenTable, Vocabulary
from rnnkit.errors import CheckpointError, DataError


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


# -------------------------------------------------------------------------------------------------
# token tables

WORDS = Specials(pad="<pad>", start="<start>", end="<end>", unk="<unk>")
CHARS = Specials(pad="<pad>", start="<s>", end="</s>")


def test_token_table_orders_by_count_then_token_after_the_specials():
    docs = [["b", "a", "c", "a"], ["c", "d", "b", "a"]]  # a 3, b 2, c 2, d 1
    table = TokenTable.build(docs, TEXT_SPECIALS)
    assert table.tokens == ["<pad>", "<unk>", "a", "b", "c", "d"]
    assert TokenTable.build(docs, TEXT_SPECIALS, min_count=2).tokens == ["<pad>", "<unk>", "a", "b", "c"]
    assert TokenTable.build(docs, TEXT_SPECIALS, max_size=4).tokens == ["<pad>", "<unk>", "a", "b"]
    assert TokenTable.build(docs, TEXT_SPECIALS, max_size=1).tokens == ["<pad>", "<unk>"]
    assert TokenTable.build(["dcb", "ba"], CHARS, order="token").tokens == ["<pad>", "<s>", "</s>", *"abcd"]
    with pytest.raises(ValueError, match="order"):
        TokenTable.build(docs, TEXT_SPECIALS, order="random")


def test_token_table_names_its_special_ids():
    text = TokenTable.build([["x"]], TEXT_SPECIALS)
    assert (text.pad_id, text.start_id, text.end_id, text.unk_id) == (0, None, None, 1)
    words = TokenTable.build([["x"]], WORDS)
    assert (words.pad_id, words.start_id, words.end_id, words.unk_id) == (0, 1, 2, 3)
    chars = TokenTable.build(["x"], CHARS)
    assert (chars.pad_id, chars.start_id, chars.end_id, chars.unk_id) == (0, 1, 2, None)
    for table in (words, chars):  # the decoders' named ids are these tables' ids
        assert (table.pad_id, table.start_id, table.end_id) == (PAD_ID, START_ID, END_ID)
    assert words.special_ids == [0, 1, 2, 3] and text.special_ids == [0, 1]


def test_token_table_encodes_unknowns_as_unk_or_names_them_when_it_has_none():
    words = TokenTable.build([["a", "red", "circle"]], WORDS, sep=" ")
    assert words.encode(["a", "zebra", "red"]) == [4, 3, 6]
    chars = TokenTable.build(["one"], CHARS)
    assert chars.encode("eon") == [3, 5, 4]
    with pytest.raises(DataError) as caught:
        chars.encode("two!", what="transcript 'two!'")
    message = str(caught.value)
    assert message.startswith("transcript 'two!': ") and "\n" not in message
    assert all(repr(ch) in message for ch in "tw!") and "'o'" not in message


def test_token_table_decode_leaves_out_pad_start_and_end_but_keeps_unk():
    words = TokenTable(["<pad>", "<start>", "<end>", "<unk>", "a", "red"], WORDS, sep=" ")
    assert words.decode([1, 4, 5, 3, 2, 0, 0]) == "a red <unk>"
    chars = TokenTable(["<pad>", "<s>", "</s>", "e", "n", "o"], CHARS)
    assert chars.decode(np.array([1, 5, 4, 3, 2])) == "one"
    assert chars.decode(chars.encode("none")) == "none"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.text(min_size=1, max_size=3), max_size=6), max_size=6), st.integers(1, 3))
def test_token_table_round_trips_through_its_token_list(docs, min_count):
    table = TokenTable.build(docs, WORDS, min_count)
    again = TokenTable(json.loads(json.dumps(table.tokens)), WORDS)  # as config.json keeps it
    flat = [t for doc in docs for t in doc]  # at most 3 characters: never the name of a special
    assert again.tokens == table.tokens and again.encode(flat) == table.encode(flat)
    for token, i in zip(flat, table.encode(flat), strict=True):
        assert table.tokens[i] == (token if flat.count(token) >= min_count else "<unk>")


def test_token_table_refuses_a_list_that_does_not_open_with_its_specials():
    with pytest.raises(ValueError, match="open with"):
        TokenTable(["<unk>", "<pad>", "a"], TEXT_SPECIALS)
    with pytest.raises(TypeError):
        TokenTable(["<pad>", "<unk>", 3], TEXT_SPECIALS)  # type: ignore[list-item]
    assert TokenTable.build([], TEXT_SPECIALS).tokens == ["<pad>", "<unk>"]


def test_a_word_named_like_a_special_keeps_its_own_last_id():
    # a tagger's corpus may hold the word "<unk>": the old tables gave it its own (last) id; so does this
    table = TokenTable(["<pad>", "<unk>", "a", "<unk>"], TEXT_SPECIALS)
    assert table.unk_id == 1 and table.encode(["<unk>", "zzz"]) == [3, 1]


def test_only_a_table_built_with_a_length_limit_has_one():
    assert TokenTable.build(["one"], CHARS, max_length=8).max_length == 8
    with pytest.raises(ValueError, match="max_length"):
        TokenTable.build([["a"]], WORDS).max_length  # noqa: B018


# what the old classes (TokenVocab, WordVocab, CharTable) wrote into a checkpoint's config.json, read
# back by each task as it loads a run: the same tokens, the same ids


def test_a_classifiers_saved_tables_read_back_with_the_same_ids():
    from rnnkit.tasks.classify.config import ClassifierDataConfig
    from rnnkit.tasks.classify.data import saved_inputs

    saved = {
        "vocab": ["<pad>", "<unk>", "the", "movie", "good", ",", "bad"],
        "labels": ["0", "1"],
        "tokens": "word",
        "bigrams": None,
    }
    inputs = saved_inputs(saved, ClassifierDataConfig())
    assert inputs.vocab.tokens == saved["vocab"] and inputs.bigrams is None
    assert inputs.encode(["The movie, dull."]).ids == [[2, 3, 5, 1, 1]]
    chars = saved_inputs(
        {**saved, "tokens": "char", "vocab": ["<pad>", "<unk>", "好", "不"],
         "bigrams": ["<pad>", "<unk>", f"{BOUNDARY}\t不", "不\t好", f"好\t{BOUNDARY}"]},
        ClassifierDataConfig(),
    )  # fmt: skip
    rows = chars.encode(["不好吗"])
    assert rows.ids == [[3, 2, 1]] and rows.bigrams == [[2, 3, 1, 1]]


def test_a_taggers_saved_tables_read_back_with_the_same_ids():
    from rnnkit.tasks.tag.task import saved_inputs

    saved = {
        "vocab": ["<pad>", "<unk>", "上", "海"],
        "bigrams": ["<pad>", "<unk>", f"{BOUNDARY}\t上", "上\t海", f"海\t{BOUNDARY}"],
        "tokens": "char",
        "tags": ["O", "B-LOC", "I-LOC"],
    }
    inputs, tags = saved_inputs(saved, "run")
    assert tags == saved["tags"] and inputs.bigrams is not None
    assert inputs.encode(list("上海北")) == ([2, 3, 1], [2, 3, 1, 1])
    with pytest.raises(CheckpointError, match="vocabulary"):
        saved_inputs({**saved, "vocab": ["a", "b"]}, "run")


def test_a_captioners_saved_words_read_back_with_the_same_ids():
    from rnnkit.tasks.caption.data import caption_ids
    from rnnkit.tasks.caption.task import saved_vocab

    saved = {"vocab": ["<pad>", "<start>", "<end>", "<unk>", "a", "red", "circle"]}
    vocab = saved_vocab(SimpleNamespace(config=saved, folder=Path("run")))
    assert vocab.tokens == saved["vocab"]
    assert caption_ids(vocab, "A red zebra, a circle!") == [4, 5, 3, 4, 6]
    assert vocab.decode([1, 4, 5, 3, 2, 0]) == "a red <unk>"


def test_a_speech_models_saved_characters_read_back_with_the_same_ids():
    from rnnkit.tasks.speech.task import saved_chars

    saved = {"chars": ["<pad>", "<s>", "</s>", "e", "n", "o", "t", "w"], "max_chars": 10, "norm": {}}
    chars, norm = saved_chars(SimpleNamespace(config=saved, folder=Path("run")))
    assert chars.tokens == saved["chars"] and chars.max_length == 10 and norm == {}
    assert chars.encode("two") == [6, 7, 5] and chars.decode([1, 5, 4, 3, 2, 0]) == "one"
    with pytest.raises(DataError, match="'z'"):
        chars.encode("zero")
