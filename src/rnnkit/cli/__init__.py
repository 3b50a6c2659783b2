"""The command line: a thin typer front end over the library.

A train command's config flags are derived from the fields of its task's config, where each is
declared once (``rnnkit.cli.options.config_flags``); ``--set section.field=value`` reaches every
field. Errors print one line, ``rnnkit: error: ...``, and exit with a code per kind (2 usage, 3 data,
4 checkpoint, 5 training diverged, 130 interrupted). ``--debug`` (anywhere on the line) shows the
traceback instead.
"""

from __future__ import annotations

import sys

import typer

try:  # typer >= 0.20 vendors click; older releases use the click package
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as click_exceptions  # type: ignore[no-redef]  # the module typer vendors

from rnnkit.cli import caption, classify, export, forecast, lm, speech, tag, tools
from rnnkit.errors import RnnkitError

app = typer.Typer(
    name="rnnkit",
    help="Recurrent neural networks: train a char-RNN on any text and let it write.\n\n"
    "Quick start:  rnnkit train --preset demo --out runs/demo   then   rnnkit sample runs/demo",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

# the command groups; --help lists the top-level commands (the char-RNN's, then the tools) first
app.add_typer(lm.lm_app)
app.add_typer(tools.tools_app)
app.add_typer(export.export_app)
app.add_typer(classify.classify_app, name="classify")
app.add_typer(tag.tag_app, name="tag")
app.add_typer(forecast.forecast_app, name="forecast")
app.add_typer(speech.speech_app, name="speech")
app.add_typer(caption.caption_app, name="caption")

__all__ = ["app", "main"]


# -------------------------------------------------------------------------------------------------
# entry point


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns (and, as a script, exits with) the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    command = typer.main.get_command(app)
    if not args:
        args = ["--help"]
    try:
        result = command.main(args=args, prog_name="rnnkit", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click_exceptions.UsageError as exc:
        if debug:
            raise
        print(f"rnnkit: error: {exc.format_message()}", file=sys.stderr)
        return 2
    except (typer.Abort, KeyboardInterrupt):
        print("rnnkit: interrupted", file=sys.stderr)
        return 130
    except RnnkitError as exc:
        if debug:
            raise
        print(f"rnnkit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        return 0
    except OSError as exc:
        if debug:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"rnnkit: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
