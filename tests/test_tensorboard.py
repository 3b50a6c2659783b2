"""``--tensorboard`` (issue #19): every train command writes the numbers of metrics.jsonl, at the same
steps, and the char-RNN's samples into RUN_DIR/tensorboard/; read back here with TensorBoard's own
event reader. A resumed run goes on in the same folder without doubling back; ``--no-tensorboard``
writes nothing there."""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util.tensor_util import make_ndarray
from tests.helpers import ensemble_args, sentiment_file, text_corpus, tiny_config
from torch import nn

from rnnkit.cli import main
from rnnkit.errors import UsageError
from rnnkit.tasks import TASKS
from rnnkit.train.config import TrainConfig, declared_flags
from rnnkit.train.metricslog import MetricsSink
from rnnkit.train.run import run
from rnnkit.train.task import Task
from rnnkit.train.tensorboard import TENSORBOARD_DIR, as_markdown, tensorboard_available
from rnnkit.train.trainer import Trainer

TRAIN_COMMANDS = (
    ["train"],
    *([task, "train"] for task in ("classify", "tag", "forecast", "speech", "caption")),
)


def events(run_dir: Path) -> EventAccumulator:
    """Everything TensorBoard reads from the run's event files (all of them, nothing sampled away)."""
    reader = EventAccumulator(str(run_dir / TENSORBOARD_DIR), size_guidance={"scalars": 0, "tensors": 0})
    return reader.Reload()


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def expected_scalars(records: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """What TensorBoard must hold: each number of each record as group/key at the record's step."""
    found: dict[str, list[tuple[int, float]]] = {}
    for record in records:
        group = "train" if "train_loss" in record else "val"
        for key, value in record.items():
            if key != "step":
                found.setdefault(f"{group}/{key}", []).append((record["step"], value))
    return found


def assert_same_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """TensorBoard's scalars are metrics.jsonl's: the same tags, steps and values (TensorBoard keeps
    float32: equal to a relative 1e-6)."""
    wanted, reader = expected_scalars(metrics(run_dir)), events(run_dir)
    assert sorted(reader.Tags()["scalars"]) == sorted(wanted)
    for tag, points in wanted.items():
        got = [(e.step, e.value) for e in reader.Scalars(tag)]
        assert [step for step, _ in got] == [step for step, _ in points], tag
        for (_, value), (_, want) in zip(got, points, strict=True):
            assert value == pytest.approx(want, rel=1e-6, abs=1e-6), tag
    return wanted


def test_the_char_rnn_writes_metrics_jsonls_numbers_and_its_samples(tmp_path, caplog):
    config = tiny_config(text_corpus(tmp_path / "text.txt", 6_000), max_steps=12, eval_interval=6)
    config.train.log_interval, config.train.sample_length, config.train.tensorboard = 3, 30, True
    with caplog.at_level(logging.INFO, logger="rnnkit"):
        run(TASKS["lm"], config, tmp_path / "run")
    wanted = assert_same_scalars(tmp_path / "run")
    assert [step for step, _ in wanted["train/train_loss"]] == [3, 6, 9, 12]
    assert [step for step, _ in wanted["val/val_loss"]] == [6, 12]
    assert {"train/lr", "train/tokens_per_s", "train/grad_norm", "val/val_bpc"} <= set(wanted)
    samples = {r.args[0]: r.args[1] for r in caplog.records if r.msg.startswith("sample at step")}
    assert sorted(samples) == [6, 12] and all(len(text) == 30 for text in samples.values())
    texts = events(tmp_path / "run").Tensors("sample/text_summary")
    assert [e.step for e in texts] == [6, 12]
    for event in texts:
        stored = make_ndarray(event.tensor_proto).item().decode("utf-8")
        assert stored == as_markdown(samples[event.step])
        assert "\n".join(line[4:] for line in stored.split("\n")) == samples[event.step]


def seasonal_csv(path: Path, months: int = 96) -> Path:
    rows = [
        f"{1949 + i // 12}-{i % 12 + 1:02d},{(100 + 2 * i) * (1 + 0.2 * math.sin(i / 2)):.3f}"
        for i in range(months)
    ]
    path.write_text("Month,Passengers\n" + "\n".join(rows) + "\n")
    return path


def forecast(tmp_path: Path, name: str, *flags: str) -> Path:
    args = ["forecast", "train", str(seasonal_csv(tmp_path / "air.csv")), "--column", "Passengers"]
    args += ["--out", str(tmp_path / name), "--window", "12", "--hidden-size", "8", "--device", "cpu"]
    assert main([*args, "--quiet", *flags]) == 0
    return tmp_path / name


def test_a_forecaster_writes_its_metrics_too_and_no_tensorboard_writes_nothing(tmp_path):
    both = ["--max-steps", "12", "--eval-interval", "6", "--set", "train.log_interval=4"]
    run_dir = forecast(tmp_path, "on", "--tensorboard", *both)
    wanted = assert_same_scalars(run_dir)
    assert [step for step, _ in wanted["train/train_loss"]] == [4, 8, 12]
    assert [step for step, _ in wanted["val/val_rmse"]] == [6, 12]  # the task's own metric
    assert events(run_dir).Tags()["tensors"] == []  # a forecaster has no texts
    off = forecast(tmp_path, "off", "--no-tensorboard", *both)
    assert metrics(off) and not (off / TENSORBOARD_DIR).exists()
    saved = json.loads(max(off.glob("ckpt-*/config.json")).read_text())  # the setting is saved
    assert saved["config"]["train"]["tensorboard"] is False


class Crash(Exception):
    pass


def test_a_resumed_run_goes_on_in_the_same_event_files_without_doubling_back(tmp_path):
    config = tiny_config(text_corpus(tmp_path / "text.txt", 6_000), max_steps=16, eval_interval=8)
    config.train.log_interval, config.train.checkpoint_interval, config.train.tensorboard = 2, 8, True

    def crash(trainer: Trainer) -> None:
        if trainer.step == 13:  # before step 13 is logged
            raise Crash

    with pytest.raises(Crash):
        run(TASKS["lm"], config, tmp_path / "run", on_step=crash)
    crashed = events(tmp_path / "run")  # closed on the crash: everything up to step 12 is on disk
    assert [e.step for e in crashed.Scalars("train/train_loss")] == [2, 4, 6, 8, 10, 12]
    before = {e.step: e.value for e in crashed.Scalars("train/elapsed")}
    run(TASKS["lm"], config, tmp_path / "run", resume=True)  # from the checkpoint at step 8
    assert len(list((tmp_path / "run" / TENSORBOARD_DIR).glob("events.out.tfevents.*"))) == 2
    wanted = assert_same_scalars(tmp_path / "run")  # steps 10 and 12 once each, the resumed run's
    assert [step for step, _ in wanted["train/train_loss"]] == [2, 4, 6, 8, 10, 12, 14, 16]
    after = dict(wanted["train/elapsed"])
    assert all(after[step] == pytest.approx(before[step]) for step in (2, 4, 6, 8))


@pytest.mark.parametrize("words", TRAIN_COMMANDS, ids=" ".join)
def test_every_train_command_has_the_flag(words, capsys, monkeypatch):
    task = "lm" if words == ["train"] else words[0]
    assert ("train.tensorboard", "--tensorboard/--no-tensorboard") in {
        (flag.key, flag.decls) for flag in declared_flags(TASKS[task].config)
    }
    assert tensorboard_available() and TASKS[task].config().train.tensorboard is None  # automatic
    monkeypatch.setenv("COLUMNS", "200")
    assert main([*words, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert re.search(r"--tensorboard\s*--no-tensorboard", text), text
    assert "RUN_DIR/tensorboard/" in text and "on by default where the tensorboard package is" in text


def test_without_the_package_asking_for_it_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "torch.utils.tensorboard", None)  # import fails
    with pytest.raises(UsageError, match=r"^--tensorboard: the tensorboard package is not installed.*--no-"):
        MetricsSink(tmp_path, tensorboard=True)
    MetricsSink(tmp_path, tensorboard=False).record({"step": 1, "loss": 2.0}, "train")
    assert metrics(tmp_path) == [{"step": 1, "loss": 2.0}] and not (tmp_path / TENSORBOARD_DIR).exists()


def test_only_the_rank_that_writes_opens_event_files(tmp_path):
    config = TrainConfig(tensorboard=True, max_steps=1)
    for rank, opened in ((1, False), (0, True)):
        trainer = Trainer(nn.Linear(2, 2), Task(), config, tmp_path, rank=rank)
        with trainer.open_sink():
            assert (trainer.sink is not None) is opened
        assert trainer.sink is None and (tmp_path / TENSORBOARD_DIR).exists() is opened


def test_force_replaces_a_run_that_holds_event_files(tmp_path, capsys):
    """The event folder is rnnkit's own: --force may replace a run folder holding it (the run folder's
    list of what rnnkit writes, train/rundir.py's OURS, must name it)."""
    args = ["--max-steps", "2", "--eval-interval", "2", "--tensorboard"]
    run_dir = forecast(tmp_path, "run", *args)
    assert (run_dir / TENSORBOARD_DIR).is_dir()
    assert (
        main(
            [
                "forecast",
                "train",
                str(tmp_path / "air.csv"),
                "--column",
                "Passengers",
                "--out",
                str(run_dir),
                "--force",
                "--device",
                "cpu",
                "--quiet",
                *args,
            ]
        )
        == 0
    ), capsys.readouterr().err
    assert len(list((run_dir / TENSORBOARD_DIR).glob("events.out.tfevents.*"))) == 1  # the old ones went


# -------------------------------------------------------------------------------------------------
# the automatic default (review #19, finding 8): decided when training starts, never pinned in a config


def without_the_package(monkeypatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "torch.utils.tensorboard", None)  # import fails
    assert not tensorboard_available()


def saved_setting(run_dir: Path):
    return json.loads(max(run_dir.glob("ckpt-*/config.json")).read_text())["config"]["train"]["tensorboard"]


def test_the_default_is_automatic_and_saved_as_such(tmp_path, monkeypatch, capsys):
    both = ["--max-steps", "4", "--eval-interval", "2"]
    on = forecast(tmp_path, "on", *both)  # the package is installed here: on
    assert saved_setting(on) is None and events(on).Tags()["scalars"]
    without_the_package(monkeypatch)
    capsys.readouterr()
    off = forecast(tmp_path, "off", *both)  # not installed: off, nothing to say
    assert metrics(off) and not (off / TENSORBOARD_DIR).exists() and saved_setting(off) is None
    assert "ensorboard" not in capsys.readouterr().err


def test_asking_for_it_on_the_command_line_without_the_package_is_a_one_line_error(
    tmp_path, monkeypatch, capsys
):
    both = ["--max-steps", "4", "--eval-interval", "2"]
    run_dir = forecast(tmp_path, "run", *both)  # saved: automatic
    without_the_package(monkeypatch)
    capsys.readouterr()
    args = ["forecast", "train", str(tmp_path / "air.csv"), "--column", "Passengers", "--window", "12"]
    args += ["--hidden-size", "8", "--device", "cpu", "--quiet", *both, "--tensorboard"]
    assert main([*args, "--out", str(tmp_path / "new")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--tensorboard: the tensorboard package is not installed" in err and "\n" not in err
    resume = ["forecast", "train", "--resume", str(run_dir), "--max-steps", "6", "--quiet", "--tensorboard"]
    assert main(resume) == 2  # a run saved as automatic: the flag is this command's request
    assert "the tensorboard package is not installed" in capsys.readouterr().err


def test_a_run_saved_with_true_resumes_without_the_package_with_one_warning(tmp_path, monkeypatch, capsys):
    """Runs saved before the setting was automatic hold ``true`` (the package was installed then): on a
    machine without it they go on without event files, and say so once."""
    run_dir = forecast(tmp_path, "run", "--max-steps", "4", "--eval-interval", "2", "--tensorboard")
    assert saved_setting(run_dir) is True
    files = sorted((run_dir / TENSORBOARD_DIR).iterdir())
    without_the_package(monkeypatch)
    capsys.readouterr()
    assert main(["forecast", "train", "--resume", str(run_dir), "--max-steps", "8", "--quiet"]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "ensorboard" in line]
    assert len(said) == 1 and "not installed; going on without event files" in said[0], said
    assert max(r["step"] for r in metrics(run_dir)) == 8  # it trained on
    assert sorted((run_dir / TENSORBOARD_DIR).iterdir()) == files  # and wrote no event file


# -------------------------------------------------------------------------------------------------
# what docs/tensorboard.md says of rollbacks and ensembles (review #19, finding 9)


def test_a_rollback_starts_a_new_event_file_without_doubling_back(tmp_path, monkeypatch):
    import rnnkit.tasks.lm as lm

    real, calls = lm.LMTask.training_loss, {"n": 0}

    def poisoned(self, model, batch, carry):  # the 15th loss is NaN, as a diverging run's would be
        calls["n"] += 1
        loss, state, count = real(self, model, batch, carry)
        return (loss * float("nan") if calls["n"] == 15 else loss), state, count

    monkeypatch.setattr(lm.LMTask, "training_loss", poisoned)
    config = tiny_config(text_corpus(tmp_path / "text.txt", 6_000), max_steps=20, eval_interval=10)
    config.train.log_interval, config.train.on_nan, config.train.tensorboard = 2, "rollback", True
    assert run(TASKS["lm"], config, tmp_path / "run")["step"] == 20
    assert len(list((tmp_path / "run" / TENSORBOARD_DIR).glob("events.out.tfevents.*"))) == 2
    # steps 12 and 14 were logged, rolled back to 10 and trained again: each is there once, in
    # metrics.jsonl as in TensorBoard, with the rolled-back run's values (half the learning rate)
    wanted = assert_same_scalars(tmp_path / "run")
    assert [step for step, _ in wanted["train/train_loss"]] == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    lr = dict(wanted["train/lr"])
    assert lr[12] < lr[8] / 1.9


def test_each_ensemble_member_writes_its_own_event_files(tmp_path):
    run_dir = tmp_path / "ensemble"
    args = ensemble_args(sentiment_file(tmp_path / "s.tsv", rows=120), run_dir, "--members", "2")
    args[args.index("--max-steps") + 1] = "6"
    args[args.index("--eval-interval") + 1] = "3"
    assert main([*args, "--tensorboard", "--set", "train.log_interval=3"]) == 0
    for member in ("member-1", "member-2"):
        wanted = assert_same_scalars(run_dir / member)
        assert [step for step, _ in wanted["val/val_accuracy"]] == [3, 6]
    assert not (run_dir / TENSORBOARD_DIR).exists()
