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
from tests.helpers import text_corpus, tiny_config
from torch import nn

from rnnkit.cli import main
from rnnkit.errors import UsageError
from rnnkit.tasks import TASKS
from rnnkit.train.config import TrainConfig, declared_flags, tensorboard_installed
from rnnkit.train.metricslog import MetricsSink
from rnnkit.train.run import run
from rnnkit.train.task import Task
from rnnkit.train.tensorboard import TENSORBOARD_DIR, as_markdown
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
    assert tensorboard_installed() and TASKS[task].config().train.tensorboard is True  # on by default
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
