"""Sequence tagging: tag conversions, readers, scores, bigrams and batch shapes (the CRF:
tests/test_crf.py; the CLI: tests/test_cli_tag.py)."""

from __future__ import annotations

import random
import zipfile

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.data.seqlabel import (
    entity_scores,
    read_conll,
    read_segmented,
    segmentation_scores,
    tags_to_words,
    words_to_tags,
)
from rnnkit.errors import DataError

# -------------------------------------------------------------------------------------------------
# tags and readers


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="上海体育局报讯日前a1", min_size=1, max_size=5), min_size=1, max_size=12))
def test_words_to_tags_and_back(words):
    chars = [c for w in words for c in w]
    tags = words_to_tags(words)
    assert len(tags) == len(chars) and set(tags) <= {"B", "M", "E", "S"}
    assert tags_to_words(chars, tags) == words


def test_ill_formed_tags_still_give_words():
    assert tags_to_words(list("abcd"), ["M", "M", "B", "B"]) == ["ab", "c", "d"]


def test_conll_tolerates_tab_only_breaks_prefixes_crlf_and_zip(tmp_path):
    text = "en:John\tB-PER\r\nen:lives\tO\r\n\t\r\nen:in\tO\r\nen:Paris\tB-LOC\r\n\r\n"
    path = tmp_path / "a.conll"
    path.write_text(text)
    sents = read_conll(path)
    assert sents.tokens == [["John", "lives"], ["in", "Paris"]]
    assert sents.tags == [["B-PER", "O"], ["O", "B-LOC"]]
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("inner.txt", text)
    assert read_conll(archive).tokens == sents.tokens


def test_bad_conll_names_file_and_line(tmp_path):
    path = tmp_path / "b.conll"
    path.write_text("John\tB-PER\nlives\n")
    with pytest.raises(DataError, match=r"b\.conll:2: expected 'token<TAB>tag'"):
        read_conll(path)
    (tmp_path / "e.conll").write_text("\n\n")
    with pytest.raises(DataError, match="empty"):
        read_conll(tmp_path / "e.conll")


def test_byte_order_marks_on_any_line_are_dropped(tmp_path):
    # as in WNUT-17's emerging.dev.conll: a BOM glued to a token, and a line holding only a BOM
    conll = tmp_path / "bom.conll"
    conll.write_text("\ufeffJohn\tB-PER\nDubbz\ufeff\tB-person\n\ufeff\nParis\tB-LOC\n\ufeff\n", "utf-8")
    sents = read_conll(conll)
    assert sents.tokens == [["John", "Dubbz"], ["Paris"]]
    assert sents.tags == [["B-PER", "B-person"], ["B-LOC"]]
    segmented = tmp_path / "bom.txt"
    segmented.write_text("\ufeff上海  体育局\n\ufeff\n召开\ufeff  会议\n", "utf-8")
    assert read_segmented(segmented).tokens == [list("上海体育局"), list("召开会议")]


def test_real_files_read(shared_data):
    sxu = read_segmented(shared_data / "seqlabel/cws_sxu/test.txt")
    assert len(sxu.tokens) == 3654
    wnut = read_conll(shared_data / "seqlabel/ner_wnut17/wnut17train.conll")
    assert len(wnut.tokens) == 3394
    dev = read_conll(shared_data / "seqlabel/ner_wnut17/emerging.dev.conll")  # two stray BOMs inside
    assert len(dev.tokens) == 1009 and not any("\ufeff" in w for sentence in dev.tokens for w in sentence)
    wiki = read_conll(shared_data / "seqlabel/ner_wikiann_en/dev")
    assert len(wiki.tokens) == 10000 and not any(w.startswith("en:") for w in wiki.tokens[0])
    msra = read_conll(shared_data / "seqlabel/ner_msra_zh/dh_msra.zip")
    assert len(msra.tokens) == 55289 and {"B-PER", "I-LOC", "O"} <= {t for s in msra.tags[:2000] for t in s}


def test_segmentation_scores_sighan_example():
    gold = [words_to_tags(["上海", "体育局", "召开"])]
    pred = [words_to_tags(["上海", "体育", "局", "召开"])]
    result = segmentation_scores(gold, pred)
    assert result["precision"] == pytest.approx(2 / 4) and result["recall"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))


def test_entity_scores_follow_seqeval():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
    result = entity_scores(gold, pred)
    assert result["precision"] == pytest.approx(2 / 3) and result["recall"] == pytest.approx(2 / 3)


# -------------------------------------------------------------------------------------------------
# bigrams, batch shapes and scoring


def test_bigram_keys_cover_both_edges():
    from rnnkit.data.table import BOUNDARY, bigram_keys

    keys = bigram_keys(["上", "海", "市"], "char")
    assert keys == [f"{BOUNDARY}\t上", "上\t海", "海\t市", f"市\t{BOUNDARY}"]
    assert bigram_keys([], "char") == [f"{BOUNDARY}\t{BOUNDARY}"]


def test_padding_never_changes_a_tagger_with_bigrams():
    from rnnkit.data.table import TEXT_SPECIALS, bigram_keys
    from rnnkit.data.vocab import TokenTable
    from rnnkit.tasks.tag import EncodedTags, Inputs, Tagger, TaggerModelConfig

    sentences = [list("上海体育局召开会议"), list("会议"), list("体育局")]
    vocab = TokenTable.build(sentences, TEXT_SPECIALS)
    bigrams = TokenTable.build((bigram_keys(s, "char") for s in sentences), TEXT_SPECIALS)
    inputs = Inputs(vocab, "char", bigrams)
    encoded = [inputs.encode(s) for s in sentences]
    rows = EncodedTags([e[0] for e in encoded], [[0] * len(s) for s in sentences], [e[1] for e in encoded])
    torch.manual_seed(0)
    model = Tagger(len(vocab), 4, TaggerModelConfig(hidden_size=8, embedding_size=8, bigram_size=4),
                   len(bigrams)).eval()  # fmt: skip
    ids, lengths, pairs = rows.batch([0, 1, 2])
    assert pairs.shape == (3, ids.shape[1] + 1)
    together = model.emissions(ids, lengths, pairs)
    for i in range(3):
        alone = model.emissions(*rows.batch([i]))
        n = len(sentences[i])
        torch.testing.assert_close(together[i, :n], alone[0, :n], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="bigram"):
        model.emissions(ids, lengths)


def test_one_epoch_sends_few_shapes_to_the_fused_kernel_under_bf16():
    """Under CPU bf16 autocast each new shape the fused RNN kernel sees can build and keep a oneDNN
    primitive (the tagger grew to 8.3 GB on a native-bf16 CPU): padded batches are a multiple of 8
    wide, and packed batches (whose shape is their whole pattern of lengths) run in fp32."""
    import collections

    import rnnkit.nn.recurrent as recurrent
    from rnnkit.data.buckets import padded_width
    from rnnkit.tasks.tag import EncodedTags, Tagger, TaggerConfig, TagTask

    rng = random.Random(0)
    lengths = [rng.randint(1, 90) for _ in range(400)] + [16] * 64  # some batches with no padding at all
    rows = [[rng.randrange(1, 20) for _ in range(n)] for n in lengths]
    data = EncodedTags(rows, [[rng.randrange(2) for _ in r] for r in rows])
    config = TaggerConfig()
    config.train.batch_size = 16
    task = TagTask(config, data, data, None, ["B", "I"])
    model = Tagger(20, 2, config.model, 0)
    recurrent.FUSED_SHAPES = collections.Counter()
    try:
        widths, batches = set(), -(-len(lengths) // 16)  # one epoch
        with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
            for _ in range(batches):
                (ids, batch_lengths, tags, bigrams, _share), _ = task.next_batch()
                widths.add(ids.shape[1])
                assert ids.shape[1] == padded_width(int(batch_lengths.max())) and tags.shape == ids.shape
                model.emissions(ids, batch_lengths, bigrams)
        seen = recurrent.FUSED_SHAPES
    finally:
        recurrent.FUSED_SHAPES = None
    assert widths <= set(range(8, 96 + 1, 8))  # at most 12 widths for sentences of up to 90 tokens
    bf16 = {key for key in seen if key[1] == "bfloat16"}
    assert bf16 and all(kind == "padded" for kind, _, _ in bf16)  # a packed call never runs in bf16
    assert len(bf16) <= len(widths)  # one padded shape per width (a full batch of one length)
    assert task.stream.epoch == 0 and task.stream.index == batches  # exactly one epoch was read
    assert sum(seen.values()) == batches  # every call counted, one a batch


class FindsPeople:
    """A stand-in tagger: john and mary are people, nothing else is tagged (segmented: words of two
    characters)."""

    def __init__(self, fmt: str = "conll", kind: str = "word") -> None:
        from types import SimpleNamespace

        self.tags = ["B", "M", "E", "S"] if fmt == "segmented" else ["O", "B-LOC", "B-PER"]
        self.config = SimpleNamespace(data=SimpleNamespace(format=fmt))
        self.inputs = SimpleNamespace(kind=kind)

    def tag(self, sentences):
        if self.config.data.format == "segmented":  # two-character words
            return [["B" if i % 2 == 0 else "E" for i in range(len(s))] for s in sentences]
        return [["B-PER" if w in ("john", "mary") else "O" for w in s] for s in sentences]


def test_score_file_scores_what_the_tagger_says_against_the_file(tmp_path):
    """score_file, directly: seqeval entities for conll (the run's format unless named), a tag the model
    never saw is a one-line error naming the file."""
    from rnnkit.tasks.tag.metrics import score_file

    (tmp_path / "gold.conll").write_text("john\tB-PER\nwent\tO\nto\tO\nparis\tB-LOC\n\nrome\tB-LOC\n")
    result = score_file(FindsPeople(), tmp_path / "gold.conll")
    assert result == {"precision": 1.0, "recall": 1 / 3, "f1": 0.5, "sentences": 2,
                      "scoring": "seqeval-entities"}  # fmt: skip
    (tmp_path / "orgs.conll").write_text("acme\tB-ORG\n")
    with pytest.raises(DataError, match=r"orgs.conll: tags the model never saw: B-ORG"):
        score_file(FindsPeople(), tmp_path / "orgs.conll")
    (tmp_path / "gold.txt").write_text("上海  体育局\n")  # B E B M E; the stand-in says B E B E B
    found = score_file(FindsPeople("segmented"), tmp_path / "gold.txt")  # 上海 right of 上海/体育/局
    assert found == {"precision": 1 / 3, "recall": 0.5, "f1": 0.4, "sentences": 1, "scoring": "sighan-words"}


def test_tag_lines_reads_raw_text_as_the_run_tokenised_it():
    from rnnkit.tasks.tag.metrics import tag_lines

    words = tag_lines(FindsPeople(), ["john  went home", ""])
    assert [(t.tokens, t.tags, t.words) for t in words] == [
        (["john", "went", "home"], ["B-PER", "O", "O"], None),
        ([], [], None),
    ]
    chars = tag_lines(FindsPeople("segmented", "char"), ["上海 体育局"])
    assert chars[0].tokens == list("上海体育局") and chars[0].words == ["上海", "体育", "局"]
