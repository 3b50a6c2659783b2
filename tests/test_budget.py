"""``--preset auto``: the budget rule (rnnkit.tasks.lm.budget) and the regularisers it turns on."""

from __future__ import annotations

import itertools

import pytest
import torch
from tests.helpers import run_cli

from rnnkit.errors import UsageError
from rnnkit.tasks.lm import budget
from rnnkit.tasks.lm.budget import DROPOUT_CURVE, MAX_DROPOUT, RUNGS, choose, dropout_for
from rnnkit.tasks.lm.config import DataConfig, LMConfig, ModelConfig, get_preset
from rnnkit.tasks.lm.model import CharLM

VOCAB = 65
#: chars/s of each rung on a made-up machine: each step up costs about its extra arithmetic
SPEEDS = dict(zip(RUNGS, (160_000, 110_000, 50_000, 19_000, 12_000, 5_000, 3_000), strict=True))
BUDGETS = (10, 30, 60, 120, 300, 600, 900, 1800, 2700, 5400, 10800, 43200)


def rank(choice) -> tuple:
    """How large and how regularised a choice is, in an order the rule must never go down in."""
    return RUNGS.index(choice.rung), choice.dropout, choice.weight_drop


@pytest.mark.parametrize("corpus", [60_000, 1_000_000, 30_000_000])
def test_a_larger_budget_never_picks_a_smaller_or_less_regularised_model(corpus):
    choices = [choose(seconds, corpus, SPEEDS, VOCAB) for seconds in BUDGETS]
    for shorter, longer in itertools.pairwise(choices):
        assert rank(longer) >= rank(shorter)
        assert RUNGS.index(longer.rung) >= RUNGS.index(shorter.rung)
        assert longer.dropout >= shorter.dropout and longer.weight_drop >= shorter.weight_drop
    # and it is no constant: the budget moves the size, and on the smaller corpora the regularisation
    assert RUNGS.index(choices[-1].rung) > RUNGS.index(choices[0].rung)
    if corpus <= 1_000_000:
        assert choices[-1].dropout > choices[0].dropout
    else:  # 30 M characters: even 12 hours read each character a few times only, and dropout would slow it
        assert all(c.dropout == 0 for c in choices)


def test_tiny_shakespeare_gets_a_larger_better_regularised_model_for_2700_s_than_for_300_s():
    short, long = (choose(seconds, 1_003_854, SPEEDS, VOCAB) for seconds in (300, 2700))
    assert short.rung.parameters(VOCAB) < long.rung.parameters(VOCAB)
    assert short.dropout < long.dropout and short.weight_drop <= long.weight_drop


def test_a_faster_machine_never_gets_a_smaller_model():
    for seconds in BUDGETS:
        slow = choose(seconds, 1_000_000, SPEEDS, VOCAB)
        fast = choose(seconds, 1_000_000, {rung: 3 * s for rung, s in SPEEDS.items()}, VOCAB)
        assert rank(fast) >= rank(slow)


def test_more_data_at_the_same_budget_needs_less_dropout():
    few, many = (choose(900, corpus, SPEEDS, VOCAB) for corpus in (100_000, 10_000_000))
    assert few.dropout > many.dropout


def test_the_rule_counts_the_parameters_the_model_has():
    for rung in RUNGS:
        config = ModelConfig(
            embedding_size=rung.embedding_size, hidden_size=rung.hidden_size, num_layers=rung.num_layers
        )
        with torch.device("meta"):
            model = CharLM(VOCAB, config)
        assert rung.parameters(VOCAB) == sum(p.numel() for p in model.parameters()), rung.name


def test_a_small_corpus_stops_the_ladder_whatever_the_budget():
    choice = choose(10**6, 200, SPEEDS, VOCAB)
    assert choice.rung is RUNGS[0]


def test_the_rule_refuses_what_it_cannot_decide():
    with pytest.raises(ValueError, match="seconds"):
        choose(0, 1000, SPEEDS, VOCAB)
    with pytest.raises(ValueError, match="at least one rung"):
        choose(60, 1000, {}, VOCAB)


def test_the_probe_measures_a_real_training_step_and_stops_at_the_first_rung_too_large():
    speeds = budget.probe(VOCAB, seconds=1.0, corpus_chars=10**9, precision="fp32", device="cpu", window=0.05)
    assert list(speeds) == list(RUNGS[: len(speeds)]) and all(s > 0 for s in speeds.values())
    last = list(speeds)[-1]
    # one second reads too few characters for the last rung probed (so the larger ones were not probed)
    assert speeds[last] * 1.0 * budget.USABLE < budget.TOKENS_PER_PARAMETER * last.parameters(VOCAB)
    assert len(speeds) < len(RUNGS)


def test_corpus_size_counts_the_training_characters_and_the_vocabulary(tmp_path):
    (tmp_path / "a.txt").write_text("abcab" * 200, encoding="utf-8")
    chars, vocab = budget.corpus_size(DataConfig(sources=[str(tmp_path / "a.txt")], val_fraction=0.1))
    assert (chars, vocab) == (900, 3)


def test_preset_auto_applies_the_choice(monkeypatch, tmp_path):
    (tmp_path / "a.txt").write_text("hello world\n" * 5000, encoding="utf-8")
    monkeypatch.setattr(budget, "probe", lambda *a, **k: SPEEDS)
    base = get_preset("auto")
    base.data.sources = [str(tmp_path / "a.txt")]
    base.train.max_minutes = 45.0
    config = budget.preset_auto(base)
    choice = choose(45 * 60, int(60_000 * (1 - base.data.val_fraction)), SPEEDS, 9)
    m, t = config.model, config.train
    assert (m.num_layers, m.hidden_size, t.batch_size, t.lr) == (
        choice.rung.num_layers,
        choice.rung.hidden_size,
        choice.rung.batch_size,
        choice.rung.lr,
    )
    assert (m.dropout, m.weight_drop, m.locked_dropout) == (choice.dropout, choice.weight_drop, True)
    assert t.max_minutes == 45.0 and t.weight_decay == budget.WEIGHT_DECAY and config.preset == "auto"


def test_preset_auto_wants_a_time_budget_and_one_process(monkeypatch):
    config = get_preset("auto")
    config.train.max_minutes = 0.0
    with pytest.raises(UsageError, match="--max-minutes"):
        budget.preset_auto(config)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UsageError, match="torchrun"):
        budget.preset_auto(get_preset("auto"))
    # the named presets keep their fixed sizes under torchrun instead
    assert budget.starting_config("shakespeare", {}, None, None) == get_preset("shakespeare")


def test_max_minutes_alone_means_auto_and_flags_win_over_the_rule(monkeypatch, tmp_path, capsys):
    source = tmp_path / "a.txt"
    source.write_text("hello world\n" * 5000, encoding="utf-8")
    monkeypatch.setattr(budget, "probe", lambda *a, **k: SPEEDS)
    seen: list[LMConfig] = []
    monkeypatch.setattr(
        "rnnkit.train.run.train",
        lambda spec, config, out, **_: seen.append(config) or {"step": 0, "stopped": "done"},
    )
    code, _, _ = run_cli(capsys, "train", source, "--max-minutes", "30", "--out", tmp_path / "r", "--quiet")
    assert code == 0 and seen[-1].preset == "auto" and seen[-1].model.locked_dropout
    code, _, _ = run_cli(
        capsys,
        "train",
        source,
        "--max-minutes",
        "30",
        "--hidden-size",
        "48",
        "--out",
        tmp_path / "r",
        "--quiet",
    )
    assert code == 0 and seen[-1].model.hidden_size == 48 and seen[-1].train.max_minutes == 30.0


def test_preset_auto_on_a_200_character_file_fails_with_the_clear_message(tmp_path, capsys):
    source = tmp_path / "small.txt"
    source.write_text(("hello world. " * 20)[:200])
    code, _, err = run_cli(
        capsys, "train", source, "--max-minutes", "1", "--out", tmp_path / "a", "--device", "cpu", "--quiet"
    )
    assert code == 3 and err.startswith("rnnkit: error: the corpus is too small") and err.count("\n") == 1
    code, _, err = run_cli(
        capsys, "train", source, "--preset", "auto", "--out", tmp_path / "b", "--device", "cpu", "--quiet"
    )
    assert code == 3 and err.startswith("rnnkit: error: the corpus is too small") and err.count("\n") == 1


def test_dropout_follows_its_fitted_curve_and_never_falls():
    for log_rho, p in DROPOUT_CURVE:
        assert dropout_for(10**log_rho) == pytest.approx(p)
    assert dropout_for(10**0.5) == 0 and dropout_for(10**6) == MAX_DROPOUT
    # the best dropout of the fitting rows at their pressures (A0/A2, B1/B2, G0-G3, H1/H2, C1/C2)
    for log_rho, best in ((0.97, 0.0), (1.78, 0.25), (1.89, 0.25), (2.1, 0.25), (2.36, 0.25), (2.93, 0.4)):
        assert dropout_for(10**log_rho) == pytest.approx(best), log_rho
    grid = [dropout_for(10 ** (x / 100)) for x in range(0, 500)]
    assert all(a <= b for a, b in itertools.pairwise(grid))


@pytest.mark.parametrize(("chars_per_parameter", "taken"), [(5.8, False), (6.2, True)])
def test_a_larger_rung_needs_six_characters_per_parameter(chars_per_parameter, taken):
    # rows G2/G3: 2x512 reading 5.8 characters per parameter lost to 2x256 at 900 s
    small, large = RUNGS[2], RUNGS[3]
    seconds = 900.0
    speeds = {RUNGS[0]: 1e9, RUNGS[1]: 1e9, small: 1e9}
    speeds[large] = chars_per_parameter * large.parameters(VOCAB) / (seconds * budget.USABLE)
    chosen = choose(seconds, 1_000_000, speeds, VOCAB).rung
    assert chosen == (large if taken else small)
