"""The train commands' flags (issue #18): each config setting is declared once, on its config field,
and the commands derive their options from the configs. Every flag that existed before keeps its name
and type and sets the same config value (OLD_OPTIONS, OLD_EFFECTS: taken from the commands as they
were), the help shows every flag and examples that parse, and every field of every task's config is
reached from the command line, by a flag or by ``--set`` with typed values."""

from __future__ import annotations

import re
import shlex

import pytest
import typer

from rnnkit.cli import app, main
from rnnkit.config import to_dict
from rnnkit.tasks import TASKS
from rnnkit.train.config import declared_flags

BASE = {  # each train command with the arguments a new run needs
    # the char-RNN on a fixed preset: the default (small) is sized by the budget rule when the run starts,
    # so flags that feed the rule (data, precision, device, budget) move the sizes too; that the rule's
    # choice yields to every flag is tests/test_budget.py's
    "train": ["train", "--preset", "tiny"],
    "classify train": ["classify", "train", "x.tsv"],
    "tag train": ["tag", "train", "x.txt"],
    "forecast train": ["forecast", "train", "x.csv", "--column", "y"],
    "speech train": ["speech", "train", "wavs"],
    "caption train": ["caption", "train", "imgs", "caps.csv"],
}
TASK = {"train": "lm", **{name: name.split()[0] for name in BASE if name != "train"}}

# fmt: off
OLD_OPTIONS = {  # every option of each train command before issue #18: NAMES:TYPE (/: its off switch)
    "train": (
        "data:list --out,-o:Path --preset:str --resume:Path --force/--no-force:bool --cell:str "
        "--hidden-size:int --num-layers:int --embedding-size:int --dropout:float --vocab:str "
        "--max-vocab:int --val-fraction:float --split:str --encoding:str --errors:str "
        "--strict/--skip-binary:bool --seq-len:int --batch-size:int --lr:float --schedule:str "
        "--warmup-steps:int --weight-decay:float --grad-clip:float --max-steps:int --max-minutes:float "
        "--eval-interval:int --checkpoint-interval:int --sample-length:int --seed:int --precision:str "
        "--device:str --threads:int --on-nan:str --set:list --quiet,-q:bool"
    ),
    "classify train": (
        "data:Path --text-column:str --label-column:str --out,-o:Path --val:Path --val-fraction:float "
        "--tokens:str --pool:str --cell:str --hidden-size:int --num-layers:int --embedding-size:int "
        "--bigram-size:int --pretrain-minutes:float --dropout:float --bidirectional/--unidirectional:bool "
        "--max-tokens:int --truncate:str --ema:float --members:int --batch-size:int --lr:float "
        "--max-steps:int --max-minutes:float --eval-interval:int --seed:int --encoding:str --device:str "
        "--threads:int --resume:Path --force/--no-force:bool --set:list --quiet,-q:bool"
    ),
    "tag train": (
        "data:Path --format:str --out,-o:Path --val:Path --val-fraction:float --tokens:str "
        "--crf/--no-crf:bool --bidirectional/--unidirectional:bool --cell:str --hidden-size:int "
        "--num-layers:int --embedding-size:int --bigram-size:int --dropout:float --batch-size:int "
        "--lr:float --max-steps:int --max-minutes:float --eval-interval:int --seed:int --encoding:str "
        "--device:str --threads:int --resume:Path --force/--no-force:bool --set:list --quiet,-q:bool"
    ),
    "forecast train": (
        "data:Path --column:str --out,-o:Path --inputs:str --date-column:str --window:int --horizon:int "
        "--season:int --target:str --log/--no-log:bool --val-fraction:float --test-fraction:float "
        "--cell:str --hidden-size:int --num-layers:int --batch-size:int --lr:float --max-steps:int "
        "--max-minutes:float --eval-interval:int --seed:int --resume:Path --force/--no-force:bool "
        "--set:list --quiet,-q:bool"
    ),
    "speech train": (
        "wav_dir:Path --out,-o:Path --holdout-speaker:str --pyramid-layers:int "
        "--pyramid/--no-pyramid:bool --odd:str --listener-size:int --speller-size:int --ctc-weight:float "
        "--augment/--no-augment:bool --normalise:str --cell:str --dropout:float --batch-size:int "
        "--lr:float --max-steps:int --max-minutes:float --eval-interval:int --seed:int --threads:int "
        "--resume:Path --force/--no-force:bool --set:list --quiet,-q:bool"
    ),
    "caption train": (
        "images:Path captions:Path --out,-o:Path --inject:str --image-size:int --cnn-width:int "
        "--grid-size:int --word-loss:float --backbone:str --backbone-weights:str --min-count:int "
        "--flip/--no-flip:bool --cell:str --hidden-size:int --dropout:float --batch-size:int --lr:float "
        "--max-steps:int --max-minutes:float --eval-interval:int --seed:int --threads:int --resume:Path "
        "--force/--no-force:bool --set:list --quiet,-q:bool"
    ),
}
OLD_EFFECTS = {  # what each config flag set before issue #18 (a fresh run, from the defaults)
    "train": {
        "--cell gru": {"model.cell": "gru"}, "--hidden-size 7": {"model.hidden_size": 7},
        "--num-layers 3": {"model.num_layers": 3}, "--embedding-size 7": {"model.embedding_size": 7},
        "--dropout 0.25": {"model.dropout": 0.25}, "--vocab byte": {"data.vocab": "byte"},
        "--max-vocab 7": {"data.max_vocab": 7}, "--val-fraction 0.25": {"data.val_fraction": 0.25},
        "--split files": {"data.split": "files"}, "--encoding latin-1": {"data.encoding": "latin-1"},
        "--errors replace": {"data.errors": "replace"}, "--strict": {"data.strict_folders": True},
        "--skip-binary": {"data.strict_folders": False}, "--seq-len 7": {"train.seq_len": 7},
        "--batch-size 7": {"train.batch_size": 7}, "--lr 0.25": {"train.lr": 0.25},
        "--schedule linear": {"train.schedule": "linear"}, "--warmup-steps 7": {"train.warmup_steps": 7},
        "--weight-decay 0.25": {"train.weight_decay": 0.25}, "--grad-clip 0.25": {"train.grad_clip": 0.25},
        "--max-steps 7": {"train.max_steps": 7}, "--max-minutes 0.25": {"train.max_minutes": 0.25},
        "--eval-interval 7": {"train.eval_interval": 7},
        "--checkpoint-interval 7": {"train.checkpoint_interval": 7},
        "--sample-length 7": {"train.sample_length": 7}, "--seed 7": {"train.seed": 7},
        "--precision bf16": {"train.precision": "bf16"}, "--device cpu": {"train.device": "cpu"},
        "--threads 7": {"train.threads": 7}, "--on-nan rollback": {"train.on_nan": "rollback"},
    },
    "classify train": {
        "--text-column review": {"data.text_column": "review"},
        "--label-column label": {"data.label_column": "label"}, "--val dev.tsv": {"data.val": "dev.tsv"},
        "--val-fraction 0.25": {"data.val_fraction": 0.25}, "--tokens word": {"data.tokens": "word"},
        "--pool mean": {"model.pool": "mean"}, "--cell gru": {"model.cell": "gru"},
        "--hidden-size 7": {"model.hidden_size": 7}, "--num-layers 3": {"model.num_layers": 3},
        "--embedding-size 7": {"model.embedding_size": 7}, "--bigram-size 7": {"model.bigram_size": 7},
        "--pretrain-minutes 0.25": {"pretrain.minutes": 0.25}, "--dropout 0.25": {"model.dropout": 0.25},
        "--bidirectional": {"model.bidirectional": True}, "--unidirectional": {"model.bidirectional": False},
        "--max-tokens 7": {"data.max_tokens": 7}, "--truncate tail": {"data.truncate": "tail"},
        "--ema 0.25": {"train.ema": 0.25}, "--members 3": {"members": 3},
        "--batch-size 7": {"train.batch_size": 7}, "--lr 0.25": {"train.lr": 0.25},
        "--max-steps 7": {"train.max_steps": 7}, "--max-minutes 0.25": {"train.max_minutes": 0.25},
        "--eval-interval 7": {"train.checkpoint_interval": 7, "train.eval_interval": 7},
        "--seed 7": {"train.seed": 7}, "--encoding latin-1": {"data.encoding": "latin-1"},
        "--device cpu": {"train.device": "cpu"}, "--threads 7": {"train.threads": 7},
    },
    "tag train": {
        "--format segmented": {"data.format": "segmented"}, "--val dev.tsv": {"data.val": "dev.tsv"},
        "--val-fraction 0.25": {"data.val_fraction": 0.25}, "--tokens word": {"data.tokens": "word"},
        "--crf": {"model.crf": True}, "--no-crf": {"model.crf": False},
        "--bidirectional": {"model.bidirectional": True}, "--unidirectional": {"model.bidirectional": False},
        "--cell gru": {"model.cell": "gru"}, "--hidden-size 7": {"model.hidden_size": 7},
        "--num-layers 3": {"model.num_layers": 3}, "--embedding-size 7": {"model.embedding_size": 7},
        "--bigram-size 7": {"model.bigram_size": 7}, "--dropout 0.25": {"model.dropout": 0.25},
        "--batch-size 7": {"train.batch_size": 7}, "--lr 0.25": {"train.lr": 0.25},
        "--max-steps 7": {"train.max_steps": 7}, "--max-minutes 0.25": {"train.max_minutes": 0.25},
        "--eval-interval 7": {"train.checkpoint_interval": 7, "train.eval_interval": 7},
        "--seed 7": {"train.seed": 7}, "--encoding latin-1": {"data.encoding": "latin-1"},
        "--device cpu": {"train.device": "cpu"}, "--threads 7": {"train.threads": 7},
    },
    "forecast train": {
        "--column Close": {"data.column": "Close"}, "--inputs 'a, b'": {"data.inputs": ["a", "b"]},
        "--date-column none": {"data.date_column": "none"}, "--window 7": {"data.window": 7},
        "--horizon 7": {"data.horizon": 7}, "--season 7": {"data.season": 7},
        "--target diff": {"data.target": "diff"}, "--log": {"data.log": True},
        "--no-log": {"data.log": False}, "--val-fraction 0.25": {"data.val_fraction": 0.25},
        "--test-fraction 0.25": {"data.test_fraction": 0.25}, "--cell gru": {"model.cell": "gru"},
        "--hidden-size 7": {"model.hidden_size": 7}, "--num-layers 3": {"model.num_layers": 3},
        "--batch-size 7": {"train.batch_size": 7}, "--lr 0.25": {"train.lr": 0.25},
        "--max-steps 7": {"train.max_steps": 7}, "--max-minutes 0.25": {"train.max_minutes": 0.25},
        "--eval-interval 7": {"train.checkpoint_interval": 7, "train.eval_interval": 7},
        "--seed 7": {"train.seed": 7},
    },
    "speech train": {
        "--holdout-speaker theo": {"data.holdout_speaker": "theo"},
        "--pyramid-layers 2": {"model.pyramid_layers": 2}, "--pyramid": {"model.pyramid": True},
        "--no-pyramid": {"model.pyramid": False}, "--odd drop": {"model.odd": "drop"},
        "--listener-size 7": {"model.listener_size": 7}, "--speller-size 7": {"model.speller_size": 7},
        "--ctc-weight 0.25": {"model.ctc_weight": 0.25}, "--augment": {"data.augment": True},
        "--no-augment": {"data.augment": False}, "--normalise global": {"features.normalise": "global"},
        "--cell gru": {"model.cell": "gru"}, "--dropout 0.25": {"model.dropout": 0.25},
        "--batch-size 7": {"train.batch_size": 7}, "--lr 0.25": {"train.lr": 0.25},
        "--max-steps 7": {"train.max_steps": 7}, "--max-minutes 0.25": {"train.max_minutes": 0.25},
        "--eval-interval 7": {"train.checkpoint_interval": 7, "train.eval_interval": 7},
        "--seed 7": {"train.seed": 7}, "--threads 7": {"train.threads": 7},
    },
    "caption train": {
        "--inject every-step": {"model.inject": "every-step"}, "--image-size 32": {"model.image_size": 32},
        "--cnn-width 7": {"model.cnn_width": 7}, "--grid-size 7": {"model.grid_size": 7},
        "--word-loss 0.25": {"model.word_loss": 0.25},
        "--backbone pkg.mod:make": {"model.backbone": "pkg.mod:make"},
        "--backbone-weights w.pt": {"model.backbone_weights": "w.pt"}, "--min-count 7": {"data.min_count": 7},
        "--flip": {"data.flip": True}, "--no-flip": {"data.flip": False}, "--cell gru": {"model.cell": "gru"},
        "--hidden-size 7": {"model.hidden_size": 7}, "--dropout 0.25": {"model.dropout": 0.25},
        "--batch-size 7": {"train.batch_size": 7}, "--lr 0.25": {"train.lr": 0.25},
        "--max-steps 7": {"train.max_steps": 7}, "--max-minutes 0.25": {"train.max_minutes": 0.25},
        "--eval-interval 7": {"train.checkpoint_interval": 7, "train.eval_interval": 7},
        "--seed 7": {"train.seed": 7}, "--threads 7": {"train.threads": 7},
    },
}
# fmt: on


def flat(tree: dict, prefix: str = "") -> dict:
    """A config's dict as dotted keys."""
    found = {}
    for key, value in tree.items():
        found |= flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value}
    return found


def command_of(words: list[str]) -> typer.core.TyperCommand:
    """The click command that the words name (``["classify", "train"]``), and the words after it."""
    command = typer.main.get_command(app)
    while words and words[0] in getattr(command, "commands", {}):
        command = command.commands[words.pop(0)]
    return command


def every_command(group=None, words=()):
    """(words, command) for every command of the app."""
    group = group or typer.main.get_command(app)
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from every_command(command, (*words, name))
        else:
            yield " ".join((*words, name)), command


@pytest.fixture
def config_of(monkeypatch, tmp_path):
    """Runs a command line with the training stubbed out; returns the config it would have trained, as
    dotted keys."""
    seen = []

    def stub(spec, config, out, **options):
        seen.append(config)
        return {"step": 0, "stopped": "done"}

    monkeypatch.setattr("rnnkit.train.run.train", stub)

    def run(*args: str) -> dict:
        code = main([*args, "--out", str(tmp_path / "run"), "--quiet"])
        assert code == 0 and seen, args
        return flat(to_dict(seen.pop()))

    return run


def options_of(command) -> dict[str, str]:
    """A command's parameters as OLD_OPTIONS writes them: NAMES -> TYPE."""
    found = {}
    for param in command.params:
        names = ",".join(param.opts) + ("/" + ",".join(param.secondary_opts) if param.secondary_opts else "")
        found[names] = getattr(param.type_descriptor.annotation, "__name__", "")
    return found


@pytest.mark.parametrize("name", BASE)
def test_every_old_option_keeps_its_name_and_type(name):
    now = options_of(command_of(name.split()))
    for entry in "".join(OLD_OPTIONS[name]).split():
        names, kind = entry.rsplit(":", 1)
        assert now.get(names) == kind, (name, names, kind, now.get(names))


@pytest.mark.parametrize("name", BASE)
def test_every_old_flag_sets_the_same_config_value(name, config_of):
    before = config_of(*BASE[name])
    for args, sets in OLD_EFFECTS[name].items():
        got = config_of(*BASE[name], *shlex.split(args))
        assert {key: got[key] for key in sets} == sets, args
        assert all(type(got[key]) is type(value) for key, value in sets.items()), args
        changed = {key for key in got if got[key] != before[key]}
        assert changed <= set(sets), (args, changed)  # and nothing else


def test_a_tasks_eval_interval_also_sets_the_checkpoint_interval_unless_given(config_of):
    assert config_of(*BASE["tag train"], "--eval-interval", "7")["train.checkpoint_interval"] == 7
    both = config_of(*BASE["tag train"], "--eval-interval", "7", "--checkpoint-interval", "9")
    assert (both["train.eval_interval"], both["train.checkpoint_interval"]) == (7, 9)
    lm = config_of("train", "--preset", "tiny", "--eval-interval", "7")  # the char-RNN's: evaluation only
    assert (lm["train.eval_interval"], lm["train.checkpoint_interval"]) == (7, 25)


def test_flags_and_set_apply_to_a_resumed_runs_saved_config(config_of, monkeypatch, tmp_path, capsys):
    from rnnkit.tasks import tag

    monkeypatch.setattr(
        tag, "saved_tagger_config", lambda run: tag.TaggerConfig(model=tag.TaggerModelConfig(crf=False))
    )
    run = tmp_path / "run"
    got = config_of("tag", "train", "--resume", str(run), "--lr", "0.5", "--set", "train.seed=3")
    assert (got["model.crf"], got["train.lr"], got["train.seed"]) == (False, 0.5, 3)
    assert main(["tag", "train", "x.txt", "--resume", str(run)]) == 2
    assert "--resume: give the run folder only" in capsys.readouterr().err


def test_the_char_rnns_flags_override_the_chosen_preset(config_of, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # poetry is sized by the budget rule, which reads the corpus
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text("床前明月光，疑是地上霜。\n" * 300, encoding="utf-8")
    got = config_of("train", "a.txt", "b.txt", "--preset", "poetry", "--hidden-size", "64")
    assert (got["model.hidden_size"], got["data.max_vocab"], got["preset"]) == (64, 3500, "poetry")
    assert got["data.sources"] == ["a.txt", "b.txt"]


@pytest.mark.parametrize("name", BASE)
def test_the_help_shows_every_flag_its_config_declares(name, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # a narrow help box cuts long flag names short
    assert main([*name.split(), "--help"]) == 0
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    flags = declared_flags(TASKS[TASK[name]].config)
    assert len(flags) >= 15
    for flag in flags:
        for option in flag.decls.split("/"):
            assert re.search(rf"{option}\b", text), (name, option)
        assert " ".join(flag.help.split()[:5]) in text, (name, flag.key)
    assert "Examples" in text and "--set" in text


@pytest.mark.parametrize(("name", "command"), list(every_command()))
def test_every_option_has_help_and_every_example_parses(name, command):
    for param in command.params:
        assert param.help, (name, param.name)
    examples = [
        line.split("rnnkit ", 1)[1] for line in (command.epilog or "").splitlines() if "rnnkit " in line
    ]
    assert examples or name not in BASE, name
    for example in examples:
        words = shlex.split(re.split(r"\s{2,}[(#]", example)[0])
        named = command_of(words)
        named.make_context(named.name, words)  # raises on a flag or value the command does not take


ALTERNATIVES = {  # a valid value other than the default, for the string fields that take only some
    "cell": "gru", "vocab": "byte", "split": "files", "errors": "replace", "schedule": "linear",
    "precision": "bf16", "on_nan": "rollback", "tokens": "word", "pool": "mean", "truncate": "tail",
    "inject": "every-step", "target": "diff", "odd": "drop", "normalise": "global", "format": "segmented",
    "encoding": "latin-1", "device": "cpu",
}  # fmt: skip


def alternative(key: str, value):
    """A value of the field's type other than ``value``, and how ``--set`` writes it."""
    if value is None:  # an automatic default (train.tensorboard): the one a user would set instead
        return True, "true"
    if isinstance(value, bool):
        return (not value), str(not value).lower()
    if isinstance(value, int):
        return value + 2, str(value + 2)
    if isinstance(value, float):
        other = value / 2 or 0.5
        return other, repr(other)
    if isinstance(value, list):
        return ["a.txt", "b.txt"], "a.txt,b.txt"
    other = ALTERNATIVES.get(key.rpartition(".")[2], "x")
    return other, other


@pytest.mark.parametrize("name", BASE)
def test_every_field_of_the_config_is_reached_by_set_with_its_type(name, config_of):
    before = config_of(*BASE[name])
    for key, value in before.items():
        wanted, text = alternative(key, value)
        got = config_of(*BASE[name], "--set", f"{key}={text}")
        assert got[key] == wanted and type(got[key]) is type(wanted), (key, text, got[key])


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("model.hidden_size=big", "model.hidden_size: expected an integer, got 'big'"),
        ("model.hidden_size=1.5", "model.hidden_size: expected an integer"),
        ("train.lr=fast", "train.lr: expected a number"),
        ("model.crf=maybe", "model.crf: expected true or false"),
        ("train.max_steps=none", "train.max_steps: expected an integer"),  # no field here is optional
        ("model.dropout=1.5", "dropout: expected a probability"),
        ("model.attention=1", "unknown config key 'model.attention'"),
        ("nope=1", "unknown config key 'nope'"),
        ("model.hidden_size", "KEY=VALUE"),
    ],
)
def test_a_bad_set_is_one_line_naming_the_field(assignment, message, capsys, tmp_path):
    code = main([*BASE["tag train"], "--set", assignment, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("rnnkit: error:") and message in err and err.count("\n") == 1


def test_a_flag_of_the_wrong_type_is_one_line_naming_the_flag(capsys):
    assert main([*BASE["tag train"], "--hidden-size", "big"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error:") and "--hidden-size" in err and err.count("\n") == 1
