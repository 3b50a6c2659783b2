"""Sentence classification: the table reader, tokens, batching, pooling, metrics, truncation,
pre-training and ensembles (the CLI: tests/test_cli_classify.py)."""

from __future__ import annotations

import random

import pytest
import torch
from tests.helpers import sentiment_file
from torch.nn import functional as F

from rnnkit.data.buckets import bucket_batches, pad
from rnnkit.data.table import TEXT_SPECIALS, choose_tokens, read_table, tokenize
from rnnkit.data.vocab import TokenTable
from rnnkit.errors import DataError
from rnnkit.tasks.classify import ClassifierModelConfig, SequenceClassifier, cut, scores


def write(path, text: str, newline: str = "\n"):
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return path


# -------------------------------------------------------------------------------------------------
# reading tables


def test_csv_with_header_quotes_crlf_and_embedded_newlines(tmp_path):
    path = write(
        tmp_path / "a.csv",
        'label,review\n1,"good, really ""good"""\n0,"bad\nand worse"\n1,fine\n',
        newline="\r\n",
    )
    table = read_table(path, "review", "label")
    assert table.texts == ['good, really "good"', "bad\r\nand worse", "fine"]
    assert table.labels == ["1", "0", "1"]
    by_number = read_table(path, 1, 0)  # the header is found by itself: "label" is no label
    assert by_number.texts == table.texts and by_number.labels == table.labels


def test_tsv_without_header_keeps_nel_characters_inside_sentences(tmp_path):
    path = write(tmp_path / "imdb.txt", "A slow\u0085 movie.  \t0\nLoved it.\t1\nMeh.\t0\n")
    table = read_table(path, 0, 1)
    assert table.texts == ["A slow\u0085 movie.", "Loved it.", "Meh."] and table.labels == ["0", "1", "0"]


def test_empty_texts_are_skipped_and_counted(tmp_path):
    table = read_table(write(tmp_path / "e.csv", "label,review\n1,\n0,bad\n1,good\n"), "review", "label")
    assert table.texts == ["bad", "good"] and table.skipped_empty == 1


@pytest.mark.parametrize(
    ("content", "columns", "message"),
    [
        (
            "label,review\n1,good\n0\n",
            ("review", "label"),
            "a.csv:3: expected at least 2 comma-separated columns",
        ),
        ("label,review\n1,good\n", ("text", "label"), "no column named 'text'"),
        ("1,good\n0,bad\n", ("review", "label"), r"no column named .review. .*\(columns: 1, good\)"),
        ("", (1, 0), "the file is empty"),
        ("label,review\n,good\n0,bad\n", ("review", "label"), "a.csv:2: empty label"),
    ],
)
def test_unparsable_tables_name_file_line_and_expectation(tmp_path, content, columns, message):
    with pytest.raises(DataError, match=message):
        read_table(write(tmp_path / "a.csv", content), *columns)


def test_binary_missing_and_non_utf8_tables(tmp_path):
    (tmp_path / "b.csv").write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(DataError, match="looks binary"):
        read_table(tmp_path / "b.csv", 1, 0)
    with pytest.raises(DataError, match="no such file"):
        read_table(tmp_path / "none.csv", 1, 0)
    (tmp_path / "l.csv").write_bytes("label,review\n1,café\n".encode("latin-1"))
    with pytest.raises(DataError, match="not valid utf-8 at byte"):
        read_table(tmp_path / "l.csv", 1, 0)
    assert read_table(tmp_path / "l.csv", 1, 0, encoding="latin-1").texts == ["café"]


def test_real_files_parse(shared_data):
    dev = read_table(shared_data / "sentiment/sst2/dev.tsv", 1, 0)
    assert len(dev.texts) == 872 and set(dev.labels) == {"0", "1"}
    hotel = read_table(shared_data / "sentiment/chnsenticorp_htl/ChnSentiCorp_htl_all.csv", "review", "label")
    assert len(hotel.texts) == 7765 and hotel.skipped_empty == 1  # 7,766 rows, one empty review
    imdb = read_table(shared_data / "sentiment/uci_sentiment_labelled_sentences/imdb_labelled.txt", 0, 1)
    assert len(imdb.texts) == 1000 and imdb.labels.count("1") == 500
    assert choose_tokens(hotel.texts) == "char" and choose_tokens(dev.texts) == "word"


def test_tokens_and_vocabulary():
    assert tokenize("It's GOOD, isn't it?", "word") == ["it's", "good", ",", "isn't", "it", "?"]
    assert tokenize("房间 很大！", "char") == ["房", "间", "很", "大", "！"]
    vocab = TokenTable.build([["a", "b", "a"], ["c", "a"]], TEXT_SPECIALS, min_count=1)
    assert vocab.tokens[:3] == ["<pad>", "<unk>", "a"] and vocab.encode(["a", "zzz"]) == [2, 1]
    assert TokenTable.build([["a", "b", "a"]], TEXT_SPECIALS, min_count=2).tokens == ["<pad>", "<unk>", "a"]


# -------------------------------------------------------------------------------------------------
# batching, model, metrics


def test_bucket_batches_cover_every_row_once_and_group_lengths():
    rng = random.Random(0)
    lengths = [rng.randint(1, 200) for _ in range(1000)]
    batches = bucket_batches(lengths, 16, seed=3, pool_batches=10)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert batches == bucket_batches(lengths, 16, seed=3, pool_batches=10)
    assert batches != bucket_batches(lengths, 16, seed=4, pool_batches=10)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 40  # a random batch of 16 spans ~175 tokens


@pytest.mark.parametrize("pool", ["last", "mean", "max", "concat"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_padding_never_changes_a_prediction(pool, cell):
    torch.manual_seed(0)
    config = ClassifierModelConfig(
        cell=cell, embedding_size=8, hidden_size=6, num_layers=2, pool=pool, dropout=0
    )
    model = SequenceClassifier(30, 3, config).eval()
    rows = [[3, 4, 5, 6, 7, 8, 9], [10, 11], [12, 13, 14, 15]]
    ids, lengths = pad(rows)
    with torch.no_grad():
        together = model(ids, lengths)
        for i, row in enumerate(rows):
            alone = model(torch.tensor([row]), torch.tensor([len(row)]))
            torch.testing.assert_close(together[i : i + 1], alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pool", ["last", "mean"])
def test_padding_never_changes_a_prediction_with_bigrams(pool):
    from rnnkit.data.table import bigram_keys
    from rnnkit.tasks.classify import TextInputs

    texts = ["这部电影真的不错", "太差了", "还行吧，一般"]
    docs = [list(t) for t in texts]
    bigrams = TokenTable.build((bigram_keys(d, "char") for d in docs), TEXT_SPECIALS)
    inputs = TextInputs(TokenTable.build(docs, TEXT_SPECIALS), "char", 256, bigrams)
    rows = inputs.encode(texts)
    assert [len(b) for b in rows.bigrams] == [len(i) + 1 for i in rows.ids]  # (edge, c1) ... (cn, edge)
    torch.manual_seed(0)
    config = ClassifierModelConfig(embedding_size=8, hidden_size=6, bigram_size=4, pool=pool, dropout=0)
    model = SequenceClassifier(len(inputs.vocab), 2, config, len(inputs.bigrams)).eval()
    with torch.no_grad():
        together = model(*rows.batch([0, 1, 2]))
        for i in range(3):
            alone = model(*rows.batch([i]))
            torch.testing.assert_close(together[i : i + 1], alone, rtol=1e-5, atol=1e-6)
        with pytest.raises(ValueError, match="reads bigrams"):
            model(*rows.batch([0])[:2])


def test_last_pool_joins_forward_at_the_end_and_backward_at_the_start():
    torch.manual_seed(0)
    config = ClassifierModelConfig(embedding_size=8, hidden_size=5, pool="last", dropout=0)
    model = SequenceClassifier(20, 2, config).eval()
    ids, lengths = pad([[1, 2, 3, 4, 5], [6, 7]])
    with torch.no_grad():
        rep = model.represent(ids, lengths)
        out, _ = model.rnn(model.embedding(ids), lengths=lengths)  # (N, T, 2H): [forward; backward]
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(rep[b, :5], out[b, n - 1, :5])  # forward state at the own last token
        torch.testing.assert_close(rep[b, 5:], out[b, 0, 5:])  # backward state at the first token


def test_concat_pool_joins_last_mean_and_max():
    torch.manual_seed(0)
    models = {}
    for pool in ("concat", "last", "mean", "max"):
        config = ClassifierModelConfig(embedding_size=8, hidden_size=5, pool=pool, dropout=0)
        torch.manual_seed(0)  # the same embedding and RNN weights in every model
        models[pool] = SequenceClassifier(20, 2, config).eval()
    assert models["concat"].head.in_features == 3 * models["last"].head.in_features == 30
    ids, lengths = pad([[1, 2, 3, 4, 5], [6, 7]])
    with torch.no_grad():
        joined = models["concat"].represent(ids, lengths)
        parts = [models[p].represent(ids, lengths) for p in ("last", "mean", "max")]
    torch.testing.assert_close(joined, torch.cat(parts, dim=-1))


def test_scores_accuracy_macro_f1_and_confusion():
    result = scores([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], 3)
    assert result["accuracy"] == pytest.approx(0.6)
    assert result["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    f1 = [2 / 4, 4 / 5, 0.0]  # class 0: tp 1 fp 1 fn 1; class 1: tp 2 fp 1 fn 0; class 2: none right
    assert result["macro_f1"] == pytest.approx(sum(f1) / 3)


# -------------------------------------------------------------------------------------------------
# truncation


def test_cut_keeps_the_head_the_tail_or_both():
    tokens = [str(i) for i in range(10)]
    assert cut(tokens, 5) == ["0", "1", "2", "3", "4"]
    assert cut(tokens, 5, "tail") == ["5", "6", "7", "8", "9"]
    assert cut(tokens, 5, "both") == ["0", "1", "2", "8", "9"]
    assert cut(tokens, 10, "both") == tokens and cut(tokens[:3], 5, "tail") == tokens[:3]


# -------------------------------------------------------------------------------------------------
# language-model pre-training


@pytest.mark.parametrize("bidirectional", [True, False])
def test_pretraining_predicts_each_token_from_one_side_only(bidirectional):
    from rnnkit.tasks.classify import TextLanguageModel

    torch.manual_seed(0)
    config = ClassifierModelConfig(embedding_size=8, hidden_size=6, bidirectional=bidirectional, dropout=0)
    lm = TextLanguageModel(SequenceClassifier(20, 2, config), 20, unk_id=1).eval()
    ids = torch.tensor([[3, 4, 5, 6, 7, 8, 9]])
    lengths = torch.tensor([7])
    ahead, behind = lm.predictions(ids, lengths)
    assert ahead.shape == (1, 6, 20) and (behind is None) == (not bidirectional)
    for t in range(1, 6):  # change token t: what predicts it must not move
        changed = ids.clone()
        changed[0, t] = 15
        ahead2, behind2 = lm.predictions(changed, lengths)
        torch.testing.assert_close(ahead2[0, :t], ahead[0, :t])  # token t is predicted from steps < t
        assert not torch.allclose(ahead2[0, t:], ahead[0, t:])
        if bidirectional:
            torch.testing.assert_close(behind2[0, t:], behind[0, t:])  # ... and from steps > t backwards
    loss, count = lm(ids, lengths)
    assert count == 6 * (2 if bidirectional else 1) and loss.item() > 0


def test_pretraining_scores_rare_tokens_as_unknown():
    from rnnkit.tasks.classify import TextLanguageModel

    torch.manual_seed(0)
    config = ClassifierModelConfig(embedding_size=8, hidden_size=6, dropout=0)
    lm = TextLanguageModel(SequenceClassifier(20, 2, config), 10, unk_id=1).eval()  # predicts ids 0-9 only
    ids, lengths = torch.tensor([[3, 14, 5, 19, 7]]), torch.tensor([5])
    ahead, _ = lm.predictions(ids, lengths)
    expected = F.cross_entropy(ahead[0], torch.tensor([1, 5, 1, 7]), reduction="sum")  # 14, 19: <unk>
    loss, count = lm(ids, lengths)
    assert ahead.shape[-1] == 10 and count == 8
    _, behind = lm.predictions(ids, lengths)
    expected = expected + F.cross_entropy(behind[0], torch.tensor([3, 1, 5, 1]), reduction="sum")
    torch.testing.assert_close(loss, expected)


def test_pretraining_refuses_a_deep_birnn():
    from rnnkit.errors import UsageError
    from rnnkit.tasks.classify import TextLanguageModel

    config = ClassifierModelConfig(embedding_size=8, hidden_size=6, num_layers=2)
    with pytest.raises(UsageError, match="more than one layer"):
        TextLanguageModel(SequenceClassifier(20, 2, config), 20, unk_id=1)


def test_a_run_saved_before_weight_averaging_resumes_without_it():
    from rnnkit.config import from_dict, to_dict
    from rnnkit.tasks.classify import ClassifierConfig

    saved = to_dict(ClassifierConfig())
    assert saved["train"].pop("ema") == 0.995  # the default of a new classifier
    assert from_dict(ClassifierConfig, saved).train.ema == 0.0  # an older config.json: as it was trained


# -------------------------------------------------------------------------------------------------
# ensembles


def test_member_configs_share_the_time_budget_and_take_their_own_seeds():
    from rnnkit.tasks.classify import ClassifierConfig, member_config
    from rnnkit.train.config import TrainConfig

    train = TrainConfig(max_minutes=20, max_steps=700, seed=5)
    config = ClassifierConfig(members=4, train=train)
    config.pretrain.minutes = 2
    members = [member_config(config, i) for i in range(4)]
    assert [m.train.seed for m in members] == [5, 6, 7, 8]
    assert all(m.members == 1 and m.train.max_minutes == 5 and m.train.max_steps == 700 for m in members)
    assert all(m.pretrain.minutes == 0.5 for m in members) and config.train.seed == 5  # config unchanged
    with pytest.raises(ValueError, match="members"):
        ClassifierConfig(members=0)


def test_members_hold_out_their_own_validation_rows_without_a_val_file(tmp_path):
    from rnnkit.tasks.classify import ClassifierConfig, load_tables, member_config

    config = ClassifierConfig(members=3)
    config.data.train, config.data.text_column, config.data.label_column = (
        str(sentiment_file(tmp_path / "t.tsv")), "sentence", "label",
    )  # fmt: skip
    held = [set(load_tables(member_config(config, i))[1].texts) for i in range(3)]
    assert len(held[0]) == 40 and held[0] != held[1] and held[1] != held[2]


def test_classify_texts_names_the_most_likely_label_and_its_probability():
    from rnnkit.tasks.classify.metrics import classify_texts

    class Fixed:  # a stand-in classifier with known probabilities
        def __init__(self) -> None:
            self.labels = ["neg", "pos", "mixed"]

        def predict(self, texts):
            return torch.tensor([[0.2, 0.7, 0.1], [0.5, 0.1, 0.4], [0.3, 0.3, 0.4]])[: len(texts)]

    found = [(r["label"], r["probabilities"][r["label"]]) for r in classify_texts(Fixed(), ["a", "b", "c"])]
    assert [label for label, _ in found] == ["pos", "neg", "mixed"]
    assert [p for _, p in found] == pytest.approx([0.7, 0.5, 0.4])
