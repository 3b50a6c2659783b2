"""``rnnkit tag``: segmenting and entity tagging end to end, with and without the CRF and bigrams
(``cli/tag.py``)."""

from __future__ import annotations

import io
import json
import random

from rnnkit.cli import main


def segmented_file(path, sentences: int, seed: int):
    rng = random.Random(seed)
    words = ["上海", "体育局", "召开", "会议", "我们", "今天", "学习", "了", "的", "新", "工作", "人民"]
    path.write_text(
        "\n".join("  ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) for _ in range(sentences))
    )
    return path


def test_cli_segments_after_training(tmp_path, capsys, monkeypatch):
    train = segmented_file(tmp_path / "train.txt", 400, 0)
    test = segmented_file(tmp_path / "test.txt", 60, 1)
    args = ["tag", "train", str(train), "--format", "segmented", "--out", str(tmp_path / "run")]
    args += ["--max-steps", "150", "--eval-interval", "75", "--hidden-size", "32", "--embedding-size", "16"]
    args += ["--lr", "1e-2", "--quiet", "--device", "cpu", "--set", "train.precision=fp32"]
    assert main(args) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["tag", "eval", str(tmp_path / "run"), str(test), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["f1"] > 0.9 and result["scoring"] == "sighan-words"
    monkeypatch.setattr("sys.stdin", io.StringIO("上海体育局召开会议\n"))
    assert main(["tag", "predict", str(tmp_path / "run")]) == 0
    assert capsys.readouterr().out.strip() == "上海  体育局  召开  会议"


def test_cli_tags_entities_with_and_without_crf(tmp_path, capsys):
    rng = random.Random(0)
    names, places = ["john", "mary", "li"], ["paris", "beijing", "rome"]
    lines = []
    for _ in range(300):
        sentence = [(rng.choice(names), "B-PER"), ("went", "O"), ("to", "O"), (rng.choice(places), "B-LOC")]
        lines += [f"{w}\t{t}" for w, t in sentence] + [""]
    (tmp_path / "ner.conll").write_text("\n".join(lines))
    for crf in ("--crf", "--no-crf"):
        run = tmp_path / f"run{crf}"
        args = ["tag", "train", str(tmp_path / "ner.conll"), "--out", str(run), "--max-steps", "80", crf]
        args += [
            "--hidden-size",
            "16",
            "--embedding-size",
            "16",
            "--lr",
            "1e-2",
            "--quiet",
            "--device",
            "cpu",
        ]
        assert main(args) == 0, capsys.readouterr().err
        capsys.readouterr()
        assert main(["tag", "eval", str(run), str(tmp_path / "ner.conll"), "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["f1"] > 0.95 and result["scoring"] == "seqeval-entities"


def test_cli_bigram_size_zero_trains_without_bigrams(tmp_path, capsys):
    train = segmented_file(tmp_path / "train.txt", 200, 0)
    for size, has in (("0", False), ("8", True)):
        run = tmp_path / f"run{size}"
        args = ["tag", "train", str(train), "--format", "segmented", "--out", str(run), "--max-steps", "5"]
        args += ["--hidden-size", "8", "--embedding-size", "8", "--bigram-size", size, "--quiet"]
        assert main(args) == 0, capsys.readouterr().err
        saved = json.loads((run / "ckpt-000005" / "config.json").read_text())
        assert bool(saved["bigrams"]) is has and saved["config"]["model"]["bigram_size"] == int(size)
        assert main(["tag", "predict", str(run), str(train)]) == 0
        assert capsys.readouterr().out.count("\n") >= 200
