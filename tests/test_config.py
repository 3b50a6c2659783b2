import pytest

from rnnkit.config import from_dict, override, to_dict
from rnnkit.errors import UsageError
from rnnkit.tasks.lm import PRESETS, LMConfig, get_preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_a_valid_full_config_and_round_trips(name):
    config = get_preset(name)
    assert config.preset == name
    assert from_dict(LMConfig, to_dict(config)) == config


def test_dotted_overrides_parse_types():
    config = override(
        get_preset("tiny"), ["train.lr=0.01", "model.cell=gru", "data.sources=a.txt,b.txt", "train.seed=7"]
    )
    assert config.train.lr == 0.01 and config.model.cell == "gru" and config.train.seed == 7
    assert config.data.sources == ["a.txt", "b.txt"]


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("train.lr", "KEY=VALUE"),
        ("train.nope=1", "unknown config key"),
        ("nope.lr=1", "unknown config key"),
        ("train.max_steps=1.5", "expected an integer"),
        ("train.lr=fast", "expected a number"),
        ("model.cell=transformer", "cell"),
        ("train.eval_interval=0", "eval_interval"),
    ],
)
def test_bad_overrides_are_refused(assignment, message):
    with pytest.raises(UsageError, match=message):
        override(get_preset("tiny"), [assignment])


def test_unknown_keys_in_a_saved_config_are_refused():
    data = to_dict(get_preset("tiny"))
    data["model"]["attention"] = True
    with pytest.raises(UsageError, match=r"model\.attention"):
        from_dict(LMConfig, data)


def test_the_language_models_own_training_settings_live_in_its_config():
    from rnnkit.tasks.forecast import ForecastConfig
    from rnnkit.tasks.lm import LMConfig, LMTrainConfig
    from rnnkit.train.config import TrainConfig

    assert {"seq_len", "eval_tokens", "sample_length"} <= set(to_dict(LMConfig())["train"])
    assert not {"seq_len", "eval_tokens", "sample_length"} & set(to_dict(ForecastConfig())["train"])
    with pytest.raises(ValueError, match="seq_len"):
        LMTrainConfig(seq_len=0)
    with pytest.raises(TypeError):
        TrainConfig(seq_len=64)  # not an engine setting
    # a run saved when the engine's section still held them loads, and drops them
    saved = to_dict(ForecastConfig())
    saved["train"] |= {"seq_len": 64, "eval_tokens": 0, "sample_length": 0}
    assert from_dict(ForecastConfig, saved) == ForecastConfig()
    with pytest.raises(UsageError, match=r"unknown config key train\.sequence"):
        from_dict(ForecastConfig, {**saved, "train": {**saved["train"], "sequence": 1}})
