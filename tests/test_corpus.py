import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnkit.data.corpus import STDLIB, encode_corpus, held_out, read_chunks, resolve_sources, stdlib_files
from rnnkit.errors import DataError


def write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_crlf_is_normalised_even_across_chunk_boundaries(tmp_path, monkeypatch):
    import rnnkit.data.corpus as corpus

    monkeypatch.setattr(corpus, "CHUNK_BYTES", 3)
    doc = resolve_sources([str(write(tmp_path / "a.txt", b"ab\r\ncd\r\n\r\nef"))])[0]
    assert "".join(read_chunks(doc)) == "ab\ncd\n\nef"


def test_tail_split_holds_out_the_end_and_vocab_comes_from_train(tmp_path):
    text = "abcdefghij" * 10 + "XYZ" * 4  # the held-out tail has characters train never saw
    docs = resolve_sources([str(write(tmp_path / "t.txt", text.encode()))])
    corpus = encode_corpus(docs, tmp_path / "out", val_fraction=12 / 112)
    assert corpus.train_tokens == 100 and corpus.val_tokens == 12
    assert "X" not in corpus.vocab.tokens
    assert corpus.vocab.decode(corpus.tokens("train")) == "abcdefghij" * 10
    assert set(corpus.vocab.decode(corpus.tokens("val"))) == {"\ufffd"}


def test_files_split_holds_out_whole_files(tmp_path):
    # every file holds every character, so the vocabulary (counted on training files only) has them all,
    # whichever files the hash of their paths (under a random tmp_path) holds out
    for i in range(40):
        write(tmp_path / f"f{i:02d}.txt", f"file {i:02d} 0123456789\n".encode())
    docs = resolve_sources([str(tmp_path)])
    corpus = encode_corpus(docs, tmp_path / "out", val_fraction=0.25, split="files")
    train = corpus.vocab.decode(corpus.tokens("train"))
    val = corpus.vocab.decode(corpus.tokens("val"))
    lines = train.splitlines() + val.splitlines()
    assert sorted(lines) == sorted(f"file {i:02d} 0123456789" for i in range(40))
    assert not set(train.splitlines()) & set(val.splitlines())
    assert 3 <= len(val.splitlines()) <= 20


def test_poems_json_gives_one_couplet_per_line(tmp_path):
    poems = [
        {"title": "t", "author": "a", "paragraphs": ["床前明月光，疑是地上霜。", "舉頭望明月，低頭思故鄉。"]},
        {"title": "u", "author": "b", "paragraphs": ["白日依山盡，黃河入海流。"]},
    ]
    path = tmp_path / "p.json"
    path.write_text(json.dumps(poems, ensure_ascii=False), encoding="utf-8")
    text = "".join(read_chunks(resolve_sources([str(path)])[0]))
    assert text == "床前明月光，疑是地上霜。\n舉頭望明月，低頭思故鄉。\n\n白日依山盡，黃河入海流。\n\n"


def test_real_chinese_poetry_file_reads(shared_data):
    doc = resolve_sources([str(shared_data / "chinese-poetry" / "tang" / "tangshi300.json")])[0]
    text = "".join(read_chunks(doc))
    assert text.count("\n\n") > 300 and "，" in text


def test_python_stdlib_has_no_tests_and_is_sorted():
    docs = stdlib_files()
    names = [d.name for d in docs]
    assert names == sorted(names) and len(names) > 200
    assert not any("/test/" in f"/{n}" or n.split("/")[-1].startswith("test_") for n in names)
    assert resolve_sources([STDLIB]) == docs


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\x00\x01\x02binary\x00", "binary"),
        (b"ok then \xff\xfe broken", "not valid utf-8 at byte 8"),
    ],
)
def test_bad_files_give_a_clear_error(tmp_path, data, message):
    path = write(tmp_path / "bad.txt", data)
    with pytest.raises(DataError, match=message):
        encode_corpus(resolve_sources([str(path)]), tmp_path / "out")


def test_errors_replace_reads_non_utf8(tmp_path):
    path = write(tmp_path / "latin.txt", "café au lait".encode("latin-1"))
    corpus = encode_corpus(resolve_sources([str(path)]), tmp_path / "out", errors="replace", val_fraction=0)
    assert corpus.train_tokens == len("café au lait")
    corpus = encode_corpus(resolve_sources([str(path)]), tmp_path / "o2", encoding="latin-1", val_fraction=0)
    assert corpus.vocab.decode(corpus.tokens("train")) == "café au lait"


def test_missing_input_names_it(tmp_path):
    with pytest.raises(DataError, match=r"nope\.txt: no such file"):
        resolve_sources([str(tmp_path / "nope.txt")])
    with pytest.raises(DataError, match="matches no file"):
        resolve_sources([str(tmp_path / "*.zzz")])


def test_bad_poem_json_names_file_and_line(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('[\n{"paragraphs": ["a"]},\n{oops}\n]', encoding="utf-8")
    with pytest.raises(DataError, match=r"p.json: line 3"):
        list(read_chunks(resolve_sources([str(path)])[0]))
    path.write_text('[{"paragraphs": "not a list"}]', encoding="utf-8")
    with pytest.raises(DataError, match="poem 0"):
        list(read_chunks(resolve_sources([str(path)])[0]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_reader(tmp_path, data):
    path = write(tmp_path / "any.txt", data)
    try:
        corpus = encode_corpus(resolve_sources([str(path)]), tmp_path / "out", val_fraction=0)
    except DataError as exc:
        assert "any.txt" in str(exc)
    else:
        assert corpus.train_tokens == len(data.decode("utf-8").replace("\r\n", "\n"))
        assert np.all(np.asarray(corpus.tokens("train")) < len(corpus.vocab))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.text(alphabet="ab\ncdé猫", min_size=1, max_size=60), min_size=1, max_size=6),
    st.sampled_from([0.0, 0.1, 0.3, 0.5]),
    st.sampled_from(["tail", "files"]),
)
def test_train_and_validation_never_overlap(tmp_path_factory, texts, fraction, split):
    """Every character lands in exactly one of train and validation, in order, and nowhere twice."""
    tmp = tmp_path_factory.mktemp("split")
    for i, text in enumerate(texts):
        write(tmp / f"f{i}.txt", text.encode())
    docs = resolve_sources([str(tmp / f"f{i}.txt") for i in range(len(texts))])
    try:
        corpus = encode_corpus(docs, tmp / "out", val_fraction=fraction, split=split, vocab_kind="byte")
    except DataError as exc:
        assert "empty" in str(exc)
        return
    train = bytes(corpus.tokens("train").tolist()).decode()
    val = bytes(corpus.tokens("val").tolist()).decode()
    if split == "tail":
        whole = "".join(texts)
        assert train + val == whole and len(train) == int(len(whole) * (1 - fraction))
    else:
        joined = [t if t.endswith("\n") else t + "\n" for t in texts]
        assert sorted([train, val]) == sorted(
            [
                "".join(t for t, d in zip(joined, docs, strict=True) if held_out(d, fraction) == side)
                for side in (False, True)
            ]
        )
