"""What several command groups share: the options that several commands take, the ``train``
commands' config flags (derived from the config dataclasses by :func:`config_flags`), and the run of a
``train`` command with its next steps (:func:`_train_task`)."""

from __future__ import annotations

import functools
import inspect
import logging
import sys
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, TypeVar

import typer

from rnnkit.console import setup_logging
from rnnkit.errors import UsageError
from rnnkit.train.config import Flag, declared_flags
from rnnkit.train.rundir import refuse_if_busy

log = logging.getLogger("rnnkit")


Opt = typer.Option

# options that several commands take, declared once (a config's settings are flags of its own: below)
ForceOpt = Annotated[bool, Opt(help="Replace an existing run folder.")]
CheckpointOpt = Annotated[str, Opt(help="best or last.")]
EncodingOpt = Annotated[str, Opt(help="Text encoding of the files.")]
OutOpt = Annotated[Path | None, Opt("--out", "-o", help="Run folder.")]
ResumeOpt = Annotated[Path | None, Opt(help="Continue this run folder from its last checkpoint.")]
QuietOpt = Annotated[bool, Opt("--quiet", "-q", help="Warnings only (no progress bar).")]
SetOpt = Annotated[
    list[str] | None,
    Opt("--set", help="Any config field by dotted key, e.g. --set train.beta2=0.95 (repeatable)."),
]


# -------------------------------------------------------------------------------------------------
# config flags: each declared once, on its config field (rnnkit.train.config.flag)

ConfigValues = Mapping[str, Any]
"""What a train command gets from its config flags: ``{dotted key: typed value, or None if not given}``."""

CONFIG_FLAGS: ConfigValues = MappingProxyType({})
"""The default of a train command's ``values`` parameter, which :func:`config_flags` replaces by the
config's flags (so the command places them among its options)."""

Command = TypeVar("Command", bound=Callable[..., Any])


def config_flags(task: str, *, preset: bool = False) -> Callable[[Command], Command]:
    """Decorate ``task``'s train command with one option per flag of the task's config (typer reads a
    command's options from ``inspect.signature``: they are parameters of the signature given to the
    returned function). The command gets their values in ``values``; :func:`rnnkit.config.apply`
    skips the None of a flag not given. The help shows each field's default, or with ``preset`` says
    that a flag's default is the preset's."""
    from rnnkit.tasks import TASKS

    config = TASKS[task].config
    flags, defaults = declared_flags(config), None if preset else config()

    def decorate(command: Command) -> Command:
        signature = inspect.signature(command, eval_str=True)
        if "values" not in signature.parameters:
            raise TypeError(f"{command.__name__}: config_flags puts the flags at a parameter named values")
        options = [_option(flag, defaults) for flag in flags]
        params = [p for q in signature.parameters.values() for p in (options if q.name == "values" else [q])]

        @functools.wraps(command)
        def with_flags(**kwargs: Any) -> Any:
            values = {flag.key: _typed(flag, kwargs.pop(_name(flag))) for flag in flags}
            return command(**kwargs, values=values)

        # typer reads the options from the signature (inspect.signature), which mypy does not know
        with_flags.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        with_flags.__annotations__ = {p.name: p.annotation for p in params}
        return typing.cast(Command, with_flags)

    return decorate


def _name(flag: Flag) -> str:
    """The command's parameter for a flag: its first name without dashes (``hidden_size``)."""
    return flag.decls.split("/")[0].lstrip("-").replace("-", "_")


def _option(flag: Flag, defaults: Any) -> inspect.Parameter:
    """A flag as a typer option (a list as comma-separated text), its default (the config's) in the
    help: at its ``{default}``, else as typer shows one."""
    kind = Path if flag.path else str if typing.get_origin(flag.kind) is list else flag.kind
    value = None if defaults is None else functools.reduce(getattr, flag.key.split("."), defaults)
    if isinstance(value, bool):
        on, _, off = flag.decls.partition("/")
        value = (on if value else off).lstrip("-")
    shown = (
        f"{value:g}" if isinstance(value, float) else ",".join(value) if isinstance(value, list) else value
    )
    said = "default: the preset's" if defaults is None else f"default {shown}"
    show = "{default}" not in flag.help and shown not in (None, "") and str(shown)
    info = Opt(flag.decls, help=flag.help.replace("{default}", said), show_default=show)
    kinds = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return inspect.Parameter(_name(flag), kinds, default=None, annotation=Annotated[kind | None, info])


def _typed(flag: Flag, value: Any) -> Any:
    """A flag's value for its field: a path as a string, a list from its comma-separated items."""
    if value is None or not (flag.path or typing.get_origin(flag.kind) is list):
        return value
    return str(value) if flag.path else [item.strip() for item in value.split(",") if item.strip()]


# -------------------------------------------------------------------------------------------------
# a train command's run


def _train_task(
    name: str,
    values: ConfigValues,
    set_: list[str] | None,
    *,
    data: object,
    base: dict[str, Any],
    saved: Callable[[Path], Any],
    default_out: Path | None,
    out: Path | None,
    resume: Path | None,
    force: bool,
    quiet: bool,
    report: Callable[[dict], str],
    missing: str = "",
    fresh: Callable[[], Any] | None = None,
    checkpoint_at_eval: bool = True,
) -> None:
    """A new run (``fresh()``, by default the task's config class ``TASKS[name].config``, with ``base``,
    what DATA and the like set; ``missing`` says what to give when DATA or a ``base`` value is None) or
    ``--resume`` (the config ``saved(run)`` reads back); then the flags' values and ``--set`` (typed, in
    that order), training (each rank under ``torchrun``) and its report; exit 130 when stopped.
    ``checkpoint_at_eval``: ``--eval-interval`` sets the checkpoint interval as well (the tasks' train
    commands; the char-RNN's has ``--checkpoint-interval`` for that)."""
    from rnnkit.config import apply, override
    from rnnkit.tasks import TASKS
    from rnnkit.train.distributed import from_environment
    from rnnkit.train.run import train

    setup_logging(quiet)
    if resume is not None:
        if data or (out is not None and out != resume):
            raise UsageError("--resume: give the run folder only, no DATA or other --out")
        refuse_if_busy(resume)
        config, target = saved(resume), resume
    else:
        if missing and (data is None or any(v is None for v in base.values())):
            raise UsageError(missing)
        config = apply((fresh or TASKS[name].config)(), base)
        target = out or default_out or Path("runs") / name
    values = dict(values)
    if checkpoint_at_eval and values.get("train.checkpoint_interval") is None:
        values["train.checkpoint_interval"] = values.get("train.eval_interval")
    config = override(apply(config, values), list(set_ or []))
    with from_environment(config.train.device) as place:
        if place.world_size > 1:
            config = apply(config, {"train.device": place.device})
            if place.rank:
                setup_logging(quiet=True)  # rank 0 speaks for the group
        progress = not quiet and sys.stderr.isatty() and place.rank == 0
        summary = train(
            TASKS[name], config, target, force=force, resume=resume is not None, progress=progress
        )
    if place.rank:
        return
    log.log(logging.WARNING if quiet else logging.INFO, "%s; saved in %s", report(summary), target)
    stopped = summary.get("stopped")
    if stopped not in (None, "done"):
        again = (
            f"rnnkit train --resume {target}" if name == "lm" else f"rnnkit {name} train --resume {target}"
        )
        log.warning("stopped by %s at step %d; continue with: %s", stopped, summary["step"], again)
        raise typer.Exit(130)
    log.info("next: %s", NEXT_STEPS[name].format(run=target))


NEXT_STEPS = {
    "lm": "rnnkit sample {run}   (or rnnkit eval {run} FILE; rnnkit serve {run})",
    "classify": "rnnkit classify eval {run} TEST.csv   (echo 'some text' | rnnkit classify predict {run})",
    "tag": "rnnkit tag eval {run} TEST_FILE   (echo 'some text' | rnnkit tag predict {run})",
    "forecast": "rnnkit forecast eval {run}   (the test span against the naive baselines, and a plot)",
    "speech": "rnnkit speech eval {run} WAV_FOLDER   (rnnkit speech transcribe {run} FILE.wav)",
    "caption": "rnnkit caption eval {run} IMAGES CAPTIONS.csv   (rnnkit caption predict {run} PICTURE)",
}
"""What to run after each task's ``train``."""
