import json
import math
import os
import signal
from dataclasses import dataclass, field

import pytest
import torch
from tests.helpers import text_corpus, tiny_config, tiny_corpus

from rnnkit.errors import TrainingError, UsageError
from rnnkit.tasks.lm import SPEC as LM
from rnnkit.tasks.lm import LMTask, build_model
from rnnkit.train import TrainConfig, Trainer
from rnnkit.train.run import run
from rnnkit.train.task import Task
from rnnkit.train.trainer import WeightAverage, lr_factor


def weights(run_dir):
    from rnnkit.tasks.lm import load_lm

    return load_lm(run_dir, "last").model.state_dict()


def test_training_lowers_validation_loss_and_writes_metrics(tmp_path):
    source = text_corpus(tmp_path / "t.txt", 30_000)
    config = tiny_config(source, max_steps=120, eval_interval=60, lr=1e-2)
    summary = run(LM, config, tmp_path / "run")
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    vals = [x["val_loss"] for x in lines if "val_loss" in x]
    assert len(vals) == 2 and vals[-1] < vals[0] < math.log(len(set(source.read_text())) + 1) + 0.5
    train_lines = [x for x in lines if "train_loss" in x]
    assert {"step", "elapsed", "train_loss", "tokens_per_s"} <= set(train_lines[0])
    assert summary["step"] == 120 and summary["val_loss"] == pytest.approx(vals[-1])


def interrupt_at(step):
    def hook(trainer):
        if trainer.step == step:
            os.kill(os.getpid(), signal.SIGINT)

    return hook


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_resume_equals_uninterrupted_run(tmp_path, ema):
    source = text_corpus(tmp_path / "t.txt", 20_000)
    config = tiny_config(source, max_steps=40, eval_interval=15, checkpoint_interval=7, ema=ema)
    config.model.dropout = 0.2  # dropout draws random numbers: the RNG state must resume too
    config.model.num_layers = 2
    run(LM, config, tmp_path / "straight")

    summary = run(LM, config, tmp_path / "broken", on_step=interrupt_at(23))
    assert summary["stopped"] == "SIGINT" and summary["step"] == 23
    summary = run(LM, config, tmp_path / "broken", resume=True)
    assert summary["step"] == 40
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "broken")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    steps = [json.loads(x)["step"] for x in (tmp_path / "broken" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps)  # metrics after the checkpoint were dropped, not duplicated


def test_weight_average_follows_its_formula():
    model = torch.nn.Linear(2, 1)
    average = WeightAverage(model, decay=0.9)
    history = [model.weight.detach().clone()]
    for _ in range(30):
        with torch.no_grad():
            model.weight.add_(1.0)
        average.update()
        history.append(model.weight.detach().clone())
    expected = history[0]
    for n, w in enumerate(history[1:], start=1):
        decay = min(0.9, (1 + n) / (10 + n))
        expected = decay * expected + (1 - decay) * w
    assert torch.allclose(average.shadow[0], expected, atol=1e-5)
    assert not torch.allclose(average.shadow[0], model.weight)  # lags behind the raw weights
    raw = model.weight.detach().clone()
    with average.applied():
        assert torch.equal(model.weight, average.shadow[0])
    assert torch.equal(model.weight, raw)


def test_averaged_weights_are_evaluated_and_saved_raw_ones_train_on(tmp_path):
    from rnnkit.train.checkpoint import load_checkpoint

    corpus = tiny_corpus(tmp_path)
    config = tiny_config(tmp_path, max_steps=20, eval_interval=20, lr=1e-2, ema=0.95)
    task = LMTask(config, corpus)
    (tmp_path / "run").mkdir()
    trainer = Trainer(build_model(config, len(corpus.vocab)), task, config.train, tmp_path / "run")
    summary = trainer.fit()
    loaded = load_checkpoint(tmp_path / "run", "last", with_state=True)
    saved, prefix = loaded.model_state, WeightAverage.RAW
    raw = {k[len(prefix) :]: v for k, v in loaded.state_tensors.items() if k.startswith(prefix)}
    assert raw.keys() == saved.keys() and loaded.trainer_state["ema_updates"] == 20
    assert max(float((saved[k] - raw[k]).abs().max()) for k in saved) > 1e-3  # two different sets
    for name, param in trainer.model.named_parameters():  # training goes on from the raw weights
        assert torch.equal(param.detach(), raw[name])
    model = build_model(config, len(corpus.vocab))
    model.load_state_dict(saved)  # the validation loss logged is that of the saved (averaged) weights
    with torch.no_grad():
        assert task.evaluate(model.eval())["val_loss"] == pytest.approx(summary["val_loss"], rel=1e-5)


@pytest.fixture
def nan_at_step_15(monkeypatch):
    """Make the 15th training loss NaN, as a diverging run would."""
    import rnnkit.tasks.lm as lm

    real = lm.LMTask.training_loss
    calls = {"n": 0}

    def poisoned(self, model, batch, carry):
        calls["n"] += 1
        loss, state, count = real(self, model, batch, carry)
        return (loss * float("nan") if calls["n"] == 15 else loss), state, count

    monkeypatch.setattr(lm.LMTask, "training_loss", poisoned)


def test_nan_loss_aborts_and_keeps_last_good_checkpoint(tmp_path, nan_at_step_15):
    source = text_corpus(tmp_path / "t.txt", 20_000)
    config = tiny_config(source, max_steps=30, eval_interval=10)
    with pytest.raises(TrainingError, match=r"nan at step 15.*last good checkpoint .* is intact"):
        run(LM, config, tmp_path / "run")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["last"] == "ckpt-000010"
    assert all(torch.isfinite(v).all() for v in weights(tmp_path / "run").values())


def test_nan_rollback_goes_on_with_half_the_learning_rate(tmp_path, nan_at_step_15):
    source = text_corpus(tmp_path / "t.txt", 20_000)
    config = tiny_config(source, max_steps=30, eval_interval=10, on_nan="rollback")
    summary = run(LM, config, tmp_path / "run")
    assert summary["step"] == 30
    state = json.loads((tmp_path / "run" / "ckpt-000030" / "trainer.json").read_text())
    assert state["lr_scale"] == 0.5 and state["rollbacks"] == 1


def test_schedule_warms_up_then_decays():
    config = TrainConfig(warmup_steps=10, lr=1.0, min_lr_ratio=0.1, max_steps=100)
    assert lr_factor(config, 0, 0.0) == pytest.approx(0.1)
    assert lr_factor(config, 9, 0.09) == pytest.approx(1.0)
    assert lr_factor(config, 50, 0.5) == pytest.approx(0.55)
    assert lr_factor(config, 100, 1.0) == pytest.approx(0.1)


def test_fit_needs_a_stopping_rule(tmp_path):
    corpus = tiny_corpus(tmp_path)
    config = tiny_config(tmp_path, max_steps=0)
    trainer = Trainer(build_model(config, len(corpus.vocab)), LMTask(config, corpus), config.train)
    with pytest.raises(UsageError, match="max-steps"):
        trainer.fit()


@pytest.mark.parametrize(
    ("field", "value"), [("batch_size", 0), ("lr", -1.0), ("precision", "fp8"), ("schedule", "x")]
)
def test_train_config_validates(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


# -------------------------------------------------------------------------------------------------
# the declared task contract, and what the trainer shows while it runs


@dataclass
class WidgetsConfig:
    train: TrainConfig = field(default_factory=TrainConfig)


class Widgets(Task):
    """The smallest task: fit y = 2x; only the required names and methods, the rest from the contract."""

    name = "widgets"
    unit = "widgets"
    config = WidgetsConfig()

    def __init__(self) -> None:
        self.x = torch.linspace(-1, 1, 32)[:, None]

    def next_batch(self):
        return (self.x, 2 * self.x), False

    def training_loss(self, model, batch, carry):
        x, y = batch
        return torch.nn.functional.mse_loss(model(x), y), None, int(x.shape[0])

    def evaluate(self, model):
        with torch.no_grad():
            return {"val_loss": float(torch.nn.functional.mse_loss(model(self.x), 2 * self.x))}


def test_the_contract_states_its_defaults_in_one_place():
    task = Widgets()
    assert (task.selection, task.explode_factor, task.carry_batch_dim) == (("val_loss", "min"), 3.0, 1)
    assert task.data_state() == {} and task.load_data_state({}) is None
    assert task.make_carry([torch.zeros(1)])[0].shape == (1,)
    with pytest.raises(NotImplementedError):
        Task().next_batch()


def test_progress_names_the_tasks_unit_and_shows_no_nan_before_the_first_step(caplog, monkeypatch):
    from rnnkit.train import progress

    config = TrainConfig(
        max_steps=6, eval_interval=6, lr=1e-2, warmup_steps=0, device="cpu", precision="fp32"
    )
    bar = progress.Bar(Trainer(torch.nn.Linear(1, 1), Widgets(), config, None, progress=True))
    fields = bar.progress.tasks[0].fields
    assert (fields["loss"], fields["speed"]) == ("-", "-")
    assert any("widgets/s" in str(getattr(c, "text_format", "")) for c in bar.progress.columns)
    bar.update(0.5, 1234.0)
    assert bar.progress.tasks[0].fields["loss"] == "0.500"
    monkeypatch.setattr(progress, "HEARTBEAT_SECONDS", 0.0)  # without a terminal: a plain line each time
    caplog.set_level("INFO", logger="rnnkit")
    Trainer(torch.nn.Linear(1, 1), Widgets(), config, None, progress=False).fit()
    beats = [r.getMessage() for r in caplog.records if "widgets/s" in r.getMessage()]
    assert len(beats) >= 5 and beats[0].startswith("step 1 of 6 | loss ")
