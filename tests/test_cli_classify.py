"""``rnnkit classify``: train, eval and predict end to end, truncation, bigrams, pre-training and
ensembles with their resumes (``cli/classify.py``)."""

from __future__ import annotations

import io
import json
import random
import shutil

import torch
from tests.helpers import ensemble_args, sentiment_file

from rnnkit.cli import main
from rnnkit.data.table import read_table
from rnnkit.tasks.classify import load_classifier, scores


def test_cli_trains_evaluates_and_predicts(tmp_path, capsys, monkeypatch):
    train = sentiment_file(tmp_path / "train.tsv")
    test = sentiment_file(tmp_path / "test.tsv", rows=100, seed=1)
    args = ["classify", "train", str(train), "--text-column", "sentence", "--label-column", "label"]
    args += ["--out", str(tmp_path / "run"), "--max-steps", "120", "--eval-interval", "60", "--quiet"]
    args += ["--hidden-size", "16", "--embedding-size", "16", "--batch-size", "16", "--lr", "1e-2"]
    args += ["--device", "cpu", "--set", "train.precision=fp32"]
    assert main(args) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["classify", "eval", str(tmp_path / "run"), str(test), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy"] > 0.9 and result["macro_f1"] > 0.9 and result["labels"] == ["0", "1"]
    assert sum(map(sum, result["confusion"])) == 100

    monkeypatch.setattr("sys.stdin", io.StringIO("a really lovely story\nthe plot was awful\n\n"))
    assert main(["classify", "predict", str(tmp_path / "run")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["1", "0"]
    assert all(0.5 <= float(line.split("\t")[1]) <= 1 for line in lines)

    code = main(["classify", "eval", str(tmp_path / "run"), str(tmp_path / "missing.tsv")])
    err = capsys.readouterr().err
    assert code == 3 and err.startswith("rnnkit: error:") and "no such file" in err and err.count("\n") == 1


def test_cli_tail_truncation_reads_the_verdict_at_the_end(tmp_path, capsys, monkeypatch):
    rng = random.Random(0)
    lines = ["label\tsentence"]
    for _ in range(300):  # the verdict is the last word, after 6 to 12 words of filler
        label = rng.randint(0, 1)
        words = [rng.choice(["the", "movie", "was", "plot", "and", "it"]) for _ in range(rng.randint(6, 12))]
        lines.append(f"{label}\t{' '.join(words)} {'good' if label else 'bad'}")
    (tmp_path / "t.tsv").write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    args = ["classify", "train", str(tmp_path / "t.tsv"), "--text-column", "sentence", "--label-column"]
    args += ["label", "--out", str(run), "--max-steps", "80", "--eval-interval", "40", "--quiet", "--lr"]
    args += ["1e-2", "--hidden-size", "16", "--embedding-size", "16", "--batch-size", "16", "--device", "cpu"]
    args += ["--max-tokens", "4", "--truncate", "tail", "--ema", "0.9"]
    assert main(args) == 0, capsys.readouterr().err
    loaded = load_classifier(run)
    assert loaded.inputs.truncate == "tail" and loaded.config.train.ema == 0.9
    assert loaded.inputs.tokens("a b c d e f g") == ["d", "e", "f", "g"]
    capsys.readouterr()
    assert main(["classify", "eval", str(run), str(tmp_path / "t.tsv"), "--text-column", "sentence",
                 "--label-column", "label", "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["accuracy"] > 0.9  # the first 4 words say nothing
    monkeypatch.setattr("sys.stdin", io.StringIO("it was the plot and the movie good\nthe movie was bad\n"))
    assert main(["classify", "predict", str(run)]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == ["1", "0"]


def test_cli_chinese_characters_read_their_bigrams(tmp_path, capsys, monkeypatch):
    rng = random.Random(0)
    filler = list("这部电影的故事演员画面音乐")
    lines = ["label,review"]
    for _ in range(300):  # the label is in a bigram: 不好 (bad) or 很好 (good), and 好 is in both
        label = rng.randint(0, 1)
        text = [rng.choice(filler) for _ in range(rng.randint(2, 8))]
        at = rng.randrange(len(text) + 1)
        text[at:at] = list("很好" if label else "不好")
        lines.append(f"{label},{''.join(text)}")
    (tmp_path / "zh.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    args = ["classify", "train", str(tmp_path / "zh.csv"), "--text-column", "review", "--label-column"]
    args += ["label", "--out", str(run), "--max-steps", "80", "--eval-interval", "40", "--quiet", "--lr"]
    args += ["1e-2", "--hidden-size", "16", "--embedding-size", "16", "--batch-size", "16", "--device", "cpu"]
    args += ["--bigram-size", "8"]
    assert main(args) == 0, capsys.readouterr().err
    saved = json.loads(next(run.glob("ckpt-*/config.json")).read_text(encoding="utf-8"))
    assert saved["tokens"] == "char" and "不\t好" in saved["bigrams"] and "很\t好" in saved["bigrams"]
    capsys.readouterr()
    assert main(["classify", "eval", str(run), str(tmp_path / "zh.csv"), "--text-column", "review",
                 "--label-column", "label", "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["accuracy"] > 0.9
    monkeypatch.setattr("sys.stdin", io.StringIO("电影很好\n电影不好\n"))
    assert main(["classify", "predict", str(run)]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == ["1", "0"]


def test_cli_pretrains_then_classifies_and_resumes_a_stopped_pretraining(tmp_path, capsys):
    train = sentiment_file(tmp_path / "train.tsv")
    run = tmp_path / "run"
    args = ["classify", "train", str(train), "--text-column", "sentence", "--label-column", "label"]
    args += ["--out", str(run), "--max-steps", "40", "--eval-interval", "20", "--quiet", "--lr", "1e-2"]
    args += ["--hidden-size", "16", "--embedding-size", "16", "--batch-size", "16", "--device", "cpu"]
    args += ["--set", "pretrain.steps=6", "--set", "pretrain.eval_interval=3"]
    assert main(args) == 0, capsys.readouterr().err
    lm_steps = [json.loads(x)["step"] for x in (run / "pretrain" / "metrics.jsonl").read_text().splitlines()]
    assert max(lm_steps) == 6 and json.loads((run / "manifest.json").read_text())["last"] == "ckpt-000040"
    pretrained = json.loads(next((run / "pretrain").glob("ckpt-*/config.json")).read_text())
    assert pretrained["stage"] == "pretrain" and pretrained["vocab"][:2] == ["<pad>", "<unk>"]

    # as if stopped during the pre-training: only its checkpoints are left
    for path in run.iterdir():
        if path.name != "pretrain":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert main([*args, "--force", "--max-steps", "2"]) == 0  # still a run folder --force may replace
    shutil.rmtree(run / "ckpt-000002")
    for name in ("manifest.json", "metrics.jsonl"):
        (run / name).unlink()
    capsys.readouterr()
    resume = [
        "classify",
        "train",
        "--resume",
        str(run),
        "--quiet",
        "--set",
        "pretrain.steps=9",
        "--max-steps",
        "40",
    ]
    assert main(resume) == 0, capsys.readouterr().err
    lm_steps = [json.loads(x)["step"] for x in (run / "pretrain" / "metrics.jsonl").read_text().splitlines()]
    assert max(lm_steps) == 9 and 3 in lm_steps  # continued from step 6, not started again
    assert json.loads((run / "manifest.json").read_text())["last"] == "ckpt-000040"


def test_cli_ensemble_averages_its_members_and_scores_itself_on_the_val_file(tmp_path, capsys):
    train = sentiment_file(tmp_path / "train.tsv")
    val = sentiment_file(tmp_path / "val.tsv", rows=60, seed=2)
    test = sentiment_file(tmp_path / "test.tsv", rows=100, seed=1)
    run = tmp_path / "run"
    more = ["--members", "3", "--val", str(val), "--seed", "7", "--max-steps", "100"]
    assert main(ensemble_args(train, run, *more)) == 0
    report = capsys.readouterr().err
    assert "3 members, 300 steps in all" in report and "the ensemble's" in report
    seeds = [
        json.loads(next((run / f"member-{i}").glob("ckpt-*/config.json")).read_text()) for i in (1, 2, 3)
    ]
    assert [c["config"]["train"]["seed"] for c in seeds] == [7, 8, 9]
    assert all(c["config"]["members"] == 1 for c in seeds)

    table = read_table(test, "sentence", "label")
    ensemble = load_classifier(run)
    singles = [load_classifier(run / f"member-{i}").predict(table.texts) for i in (1, 2, 3)]
    assert not torch.allclose(singles[0], singles[1])  # different seeds: different models
    assert torch.allclose(ensemble.predict(table.texts), sum(singles) / 3, atol=1e-6)
    assert ensemble.checkpoint.count("member-") == 3

    assert main(["classify", "eval", str(run), str(test), "--text-column", "sentence",
                 "--label-column", "label", "--json"]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    gold = [int(y) for y in table.labels]
    expected = scores(gold, ensemble.predict(table.texts).argmax(-1).tolist(), 2)["accuracy"]
    assert result["accuracy"] == expected > 0.9


def figures(run) -> list[dict]:
    """A run's logged losses and accuracies, without its timings."""
    timings = ("elapsed", "tokens_per_s")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in timings} for r in records]


def test_cli_ensemble_resumes_from_the_member_it_stopped_in(tmp_path, capsys):
    train = sentiment_file(tmp_path / "train.tsv")
    run = tmp_path / "run"
    assert main(ensemble_args(train, run, "--members", "2")) == 0, capsys.readouterr().err
    first = (run / "member-1" / "metrics.jsonl").read_text()
    second = figures(run / "member-2")
    # as if killed in the second member before its first checkpoint
    shutil.rmtree(run / "member-2")
    (run / "member-2").mkdir()
    (run / "member-2" / "metrics.jsonl").write_text('{"step": 15}\n')
    assert main(["classify", "eval", str(run), str(train), "--text-column", "sentence",
                 "--label-column", "label", "--json"]) == 0  # fmt: skip
    out, err = capsys.readouterr()
    assert json.loads(out)["checkpoint"].startswith("member-1/") and "1 of 2 members trained" in err

    assert main(["classify", "train", "--resume", str(run), "--quiet"]) == 0, capsys.readouterr().err
    assert (run / "member-1" / "metrics.jsonl").read_text() == first  # not trained again
    assert figures(run / "member-2") == second  # trained afresh with its seed: the same run again
    assert main(["plot", str(run)]) != 0  # an ensemble has no curves of its own: its members do
    assert f"rnnkit plot {run}/member-1" in capsys.readouterr().err
    assert main(["classify", "train", "--resume", str(run), "--set", "members=3"]) == 2
    assert "members cannot change" in capsys.readouterr().err

    # a longer budget: each member goes on from its last checkpoint
    before = figures(run / "member-1")
    assert main(["classify", "train", "--resume", str(run), "--quiet", "--max-steps", "40"]) == 0
    for name in ("member-1", "member-2"):
        assert json.loads((run / name / "manifest.json").read_text())["last"] == "ckpt-000040"
    after = figures(run / "member-1")
    assert after[: len(before)] == before and after[-1]["step"] == 40  # continued, not started again
    assert main(ensemble_args(train, run, "--members", "2", "--force", "--max-steps", "2")) == 0
    assert not (run / "member-1" / "ckpt-000030").exists()  # --force replaced the ensemble


def test_a_broken_ensemble_record_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "ensemble.json").write_text('{"task": "classify", "members": ["../x"], "config": {}}')
    code = main(["classify", "predict", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code != 0 and "ensemble.json" in err and err.count("\n") == 1
