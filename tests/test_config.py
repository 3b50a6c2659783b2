import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rnnkit.config import apply, from_dict, override, to_dict
from rnnkit.errors import UsageError
from rnnkit.tasks import TASKS
from rnnkit.tasks.classify import ClassifierConfig
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


# -------------------------------------------------------------------------------------------------
# validation through pydantic: every refusal one line, naming the field by its dotted key


@dataclass(kw_only=True)
class Leaf:
    """A section two levels down, with the field types no task config has yet (an optional value)."""

    depth: int = 1
    limit: int | None = None
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.depth < 0:
            raise ValueError("depth: expected 0 or more,\nnot a negative number")


@dataclass(kw_only=True)
class Middle:
    leaf: Leaf = field(default_factory=Leaf)
    spare: Leaf | None = None


@dataclass(kw_only=True)
class Outer:
    middle: Middle = field(default_factory=Middle)


def refusal(call) -> str:
    """The message of the UsageError that ``call`` raises, checked to be one line and no pydantic report."""
    with pytest.raises(UsageError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and "validation error" not in message and "pydantic" not in message
    return message


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_tasks_default_config_round_trips(name):
    cls = TASKS[name].config
    config = cls()
    assert from_dict(cls, to_dict(config)) == config
    assert from_dict(cls, json.loads(json.dumps(to_dict(config)))) == config  # as config.json holds it
    assert type(from_dict(cls, to_dict(config))) is cls  # the class itself, not a pydantic copy


@pytest.mark.parametrize(
    ("assignment", "attribute", "value"),
    [
        ("train.lr=3e-3", "train.lr", 3e-3),
        ("train.lr=1", "train.lr", 1.0),
        ("train.max_steps=1_000", "train.max_steps", 1000),
        ("train.max_minutes=2.5", "train.max_minutes", 2.5),
        ("data.strict_folders=true", "data.strict_folders", True),
        ("data.strict_folders=yes", "data.strict_folders", True),
        ("data.strict_folders=1", "data.strict_folders", True),
        ("data.strict_folders=false", "data.strict_folders", False),
        ("data.strict_folders=no", "data.strict_folders", False),
        ("data.strict_folders=0", "data.strict_folders", False),
        ('data.sources=["a.txt", "b.txt"]', "data.sources", ["a.txt", "b.txt"]),
        ("data.sources=a.txt", "data.sources", ["a.txt"]),
        ("data.encoding=latin-1", "data.encoding", "latin-1"),
        ('model.cell="gru"', "model.cell", "gru"),  # a JSON string, as json.dumps writes one
        ("preset=1", "preset", "1"),  # a string as given, though it reads as a number
    ],
)
def test_set_reads_the_text_for_the_fields_type(assignment, attribute, value):
    config = override(get_preset("tiny"), [assignment])
    section, _, name = attribute.rpartition(".")
    got = getattr(getattr(config, section) if section else config, name)
    assert got == value and type(got) is type(value)


def test_set_takes_none_for_an_optional_field_only():
    given = Outer(middle=Middle(leaf=Leaf(limit=4), spare=Leaf()))
    assert override(Outer(), ["middle.leaf.limit=4"]).middle.leaf.limit == 4
    assert override(given, ["middle.leaf.limit=none"]).middle.leaf.limit is None
    assert override(given, ["middle.spare=null", "middle.leaf.names=a,,b"]) == Outer(
        middle=Middle(leaf=Leaf(limit=4, names=["a", "b"]))
    )
    assert refusal(lambda: override(Outer(), ["middle.leaf.depth=none"])) == (
        "middle.leaf.depth: expected an integer, got 'none'"
    )


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("train.lr=fast", "train.lr: expected a number, got 'fast'"),
        ("train.max_steps=1.5", "train.max_steps: expected an integer, got '1.5'"),  # no truncation
        ("train.seed=true", "train.seed: expected an integer, got 'true'"),  # no bool for an integer
        ("data.strict_folders=maybe", "data.strict_folders: expected true or false, got 'maybe'"),
        ("data.sources=[1]", "data.sources[0]: expected a string, got 1"),
        ("train.eval_interval=0", "train.eval_interval: expected a positive integer, got 0"),
        ("train.beta1=1", "train: beta1, beta2: expected values in [0, 1)"),
    ],
)
def test_set_refusals_are_one_line_naming_the_field(assignment, message):
    assert refusal(lambda: override(get_preset("tiny"), [assignment])) == message


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"train.seed": True}, "train.seed: expected an integer, got True"),
        ({"train.max_steps": 2.5}, "train.max_steps: expected an integer, got 2.5"),
        ({"train.max_steps": 2.0}, "train.max_steps: expected an integer, got 2.0"),
        ({"model.cell": 3}, "model.cell: expected a string, got 3"),
        ({"train.max_steps": "10"}, "train.max_steps: expected an integer, got '10'"),  # typed: no parsing
        ({"data.strict_folders": 1}, "data.strict_folders: expected true or false, got 1"),
        ({"train.nope": 1}, "unknown config key 'train.nope'"),
    ],
)
def test_typed_values_are_checked_strictly(values, message):
    assert refusal(lambda: apply(get_preset("tiny"), values)).startswith(message)


def test_apply_sets_typed_values_and_skips_none():
    config = apply(get_preset("tiny"), {"train.lr": 1, "data.sources": ("a", "b"), "train.seed": None})
    assert config.train.lr == 1.0 and type(config.train.lr) is float
    assert config.data.sources == ["a", "b"] and config.train.seed == get_preset("tiny").train.seed


def test_unknown_keys_are_refused_at_every_level():
    assert refusal(lambda: from_dict(Outer, {"middle": {"leaf": {"depht": 2}}})) == (
        "unknown config key middle.leaf.depht (known: depth, limit, names)"
    )
    assert refusal(lambda: from_dict(Outer, {"middle": {"spare": {"limt": 2}}})).startswith(
        "unknown config key middle.spare.limt"
    )
    assert refusal(lambda: from_dict(Outer, {"midle": {}})).startswith("unknown config key midle")
    assert refusal(lambda: override(Outer(), ["middle.leaf.depht=2"])).startswith(
        "--set: unknown config key 'middle.leaf.depht'"
    )
    data = to_dict(get_preset("tiny"))
    data["train"]["nope"] = 1
    assert refusal(lambda: from_dict(LMConfig, data)).startswith("unknown config key train.nope")


def test_a_post_init_check_comes_out_as_one_line_naming_its_field():
    assert refusal(lambda: from_dict(Outer, {"middle": {"leaf": {"depth": -1}}})) == (
        "middle.leaf.depth: expected 0 or more, not a negative number"
    )
    data = to_dict(get_preset("tiny"))
    data["model"]["dropout"] = 1.5
    assert refusal(lambda: from_dict(LMConfig, data)) == (
        "model.dropout: expected a probability in [0, 1), got 1.5"
    )
    assert (
        refusal(lambda: override(ClassifierConfig(), ["members=0"])) == "members: expected 1 or more, got 0"
    )


def test_values_of_the_wrong_shape_are_refused_by_key():
    assert refusal(lambda: from_dict(Outer, {"middle": 3})) == "middle: expected an object, got 3"
    assert refusal(lambda: from_dict(Outer, {"middle": {"spare": {"names": ["a", 3]}}})) == (
        "middle.spare.names[1]: expected a string, got 3"
    )
    assert refusal(lambda: apply(get_preset("tiny"), {"data.sources": Path("a.txt")})).startswith(
        "data.sources: expected text"
    )
