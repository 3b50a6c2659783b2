"""What a new user meets in the first hour (issue: first hour): each command says what it is doing, how
long it will take and what to do next, and the rough edges a first try found are gone."""

from __future__ import annotations

import json
import logging

import pytest
from tests.helpers import ensemble_args, sentiment_file, text_corpus

from rnnkit.cli import main
from rnnkit.data.corpus import read_chunks, resolve_sources
from rnnkit.data.files import read_text_file
from rnnkit.errors import DataError
from rnnkit.tasks.classify import format_confusion

TINY = ["--preset", "tiny", "--precision", "fp32", "--device", "cpu", "--sample-length", "0"]


@pytest.fixture(scope="module")
def english_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("first")
    source = text_corpus(root / "english.txt", 12_000)
    assert (
        main(["train", str(source), "--out", str(root / "run"), *TINY, "--max-steps", "10", "--quiet"]) == 0
    )
    return root


def test_a_training_says_its_budget_and_what_to_run_next(tmp_path, capsys):
    source = text_corpus(tmp_path / "t.txt", 12_000)
    assert main(["train", str(source), "--out", str(tmp_path / "r"), *TINY, "--max-steps", "4"]) == 0
    said = capsys.readouterr().err.splitlines()
    assert "preset tiny, with your flags: lstm 1x32, dropout 0, batch 8x16, lr 0.002, 4 steps" in said
    assert "budget: at most 4 steps" in said
    assert said[-1] == f"next: rnnkit sample {tmp_path / 'r'}   (or rnnkit eval {tmp_path / 'r'} FILE; " + (
        f"rnnkit serve {tmp_path / 'r'})"
    )


def test_help_shows_what_each_preset_sets_and_how_long_it_trains(capsys):
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # the help box wraps lines
    text = text.replace("│ ", "").replace(" │", "")
    for preset, budget in (("shakespeare", "5 min"), ("poetry", "15 min"), ("demo", "2 min")):
        described = text.split(f"{preset} (lstm", 1)[1].split(")")[0]
        assert described.endswith(f", {budget}"), (preset, described)  # "5 min", never "15 min"
    assert "On --resume, the run's total, not extra time." in text


def test_resuming_a_finished_run_says_the_budget_is_spent(english_run, capsys):
    assert main(["train", "--resume", str(english_run / "run")]) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "nothing to train: this run has already used its budget (at step 10 " in said
    assert "give a larger --max-steps or --max-minutes" in said


def test_eval_counts_unknown_characters_and_warns_above_five_percent(english_run, tmp_path, capsys):
    lyrics = tmp_path / "lyrics.txt"
    lyrics.write_text("the cat 窗外的麻雀在电线杆上多嘴 sat\n" * 50, encoding="utf-8")
    assert main(["eval", str(english_run / "run"), str(lyrics), "--json"]) == 0
    found = capsys.readouterr()
    row = json.loads(found.out)
    assert row["unknown_distinct"] == 12  # 窗外的麻雀在电线杆上多嘴, the only characters not in English
    assert row["unknown_chars"] == 12 * 50  # occurrences, not distinct characters
    assert row["unknown_share"] == pytest.approx(600 / len(lyrics.read_text()))
    assert "are unknown to this model" in found.err
    assert main(["eval", str(english_run / "run"), str(english_run / "english.txt")]) == 0
    found = capsys.readouterr()
    assert "(0.0%)" in found.out and "unknown to this model" not in found.err


def test_the_confusion_matrix_keeps_numbers_apart():
    text = format_confusion(["0", "1"], [[700, 212], [31, 1000]])
    assert text.splitlines() == ["gold \\ predicted    0     1", "0                 700   212",
                                 "1                  31  1000"]  # fmt: skip
    for line in text.splitlines()[1:]:
        assert len(line.split()) == 3  # a label and two counts, never glued


def test_a_corpus_folder_skips_hidden_and_binary_files_and_says_so(tmp_path, caplog):
    (tmp_path / "docs" / ".git").mkdir(parents=True)
    (tmp_path / "docs" / ".git" / "index").write_bytes(b"DIRC\0\0\0\2" * 100)
    (tmp_path / "docs" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" * 10)
    (tmp_path / "docs" / "a.md").write_text("# a page\n" * 20)
    caplog.set_level(logging.INFO, logger="rnnkit")
    docs = resolve_sources([str(tmp_path / "docs")])
    assert [d.path.name for d in docs] == ["a.md"]
    assert any("skipped 1 hidden and 1 binary files" in r.getMessage() for r in caplog.records)
    with pytest.raises(DataError, match=r"logo\.png: looks binary"):
        resolve_sources([str(tmp_path / "docs")], strict=True)


def test_byte_order_marks_are_dropped_wherever_a_reader_meets_them(tmp_path):
    joined = tmp_path / "joined.txt"
    joined.write_bytes("\ufefffirst file\n".encode() + "\ufeffsecond file\n".encode())
    assert read_text_file(joined) == "first file\nsecond file\n"
    (doc,) = resolve_sources([str(joined)])
    assert "".join(read_chunks(doc)) == "first file\nsecond file\n"
    table = tmp_path / "t.tsv"
    table.write_bytes("\ufefflabel\tsentence\n1\tgood\n".encode() + "\ufeff0\tbad\n".encode())
    assert "\ufeff" not in read_text_file(table)


def test_an_ensemble_whose_members_get_too_few_steps_is_warned_about(tmp_path, capsys):
    train = sentiment_file(tmp_path / "train.tsv", rows=120)
    assert main(ensemble_args(train, tmp_path / "ens", "--members", "2")) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "trained only" in line]
    assert len(warned) == 2 and "member 1 trained only 30 steps" in warned[0]
    assert "give a larger --max-minutes or fewer --members" in warned[0]


@pytest.mark.parametrize("value", ["6", "0", "4"])
def test_poem_forms_take_five_or_seven_characters_a_line(english_run, capsys, value):
    code = main(["sample", str(english_run / "run"), "--line-chars", value, "--length", "5"])
    err = capsys.readouterr().err
    assert code == 2 and "5 or 7 characters a line" in err and err.count("\n") == 1


def test_inspect_writes_its_report_into_the_run_folder(english_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = english_run / "run"
    assert main(["inspect", str(run), str(english_run / "english.txt"), "--max-chars", "300"]) == 0
    assert (run / "report.html").read_text().startswith("<!doctype html>")
    assert list(tmp_path.iterdir()) == []  # nothing written where the command was run
    (run / "report.html").unlink()


@pytest.mark.parametrize("group", ["classify", "tag", "forecast", "speech", "caption"])
def test_each_train_help_states_the_budget_its_config_sets(group, capsys):
    from rnnkit.tasks import caption, classify, forecast, speech, tag

    configs = {"classify": classify.ClassifierConfig, "tag": tag.TaggerConfig,
               "forecast": forecast.ForecastConfig, "speech": speech.SpeechConfig,
               "caption": caption.CaptionConfig}  # fmt: skip
    config = configs[group]()
    assert main([group, "train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert f"(0: no limit; default {config.train.max_minutes:g})" in text


def test_the_poem_form_help_says_what_its_defaults_are(capsys):
    assert main(["sample", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    lines_help = text.split("--lines <int>", 1)[1].split(" --checkpoint", 1)[0]
    assert "default: the acrostic's length, else 4" in lines_help and "[default: 0]" not in lines_help
    chars_help = text.split("--line-chars <int>", 1)[1].split(" --lines <int>", 1)[0]
    assert "5 or 7" in chars_help and "[default: 0]" not in chars_help
