"""``rnnkit speech train | eval | transcribe``: speech recognition (Listen, Attend and Spell)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rnnkit.cli.options import (
    CONFIG_FLAGS,
    CheckpointOpt,
    ConfigValues,
    ForceOpt,
    Opt,
    OutOpt,
    QuietOpt,
    ResumeOpt,
    SetOpt,
    _train_task,
    config_flags,
    log,
)
from rnnkit.console import setup_logging
from rnnkit.errors import UsageError

speech_app = typer.Typer(
    help="Speech recognition with Listen, Attend and Spell (a pyramidal BiLSTM listener).",
    no_args_is_help=True,
)


@speech_app.command(
    "train",
    epilog="Examples:\n\n"
    "  rnnkit speech train fsdd/recordings --out runs/digits --max-minutes 20\n\n"
    "  rnnkit speech train fsdd/recordings --out runs/flat --no-pyramid   # the same layers, reduction 1\n\n"
    "  rnnkit speech train fsdd/recordings --out runs/no-theo --holdout-speaker theo\n\n",
)
@config_flags("speech")
def speech_train(
    wav_dir: Annotated[
        Path | None,
        typer.Argument(help="A folder of {digit}_{speaker}_{index}.wav files.", show_default=False),
    ] = None,
    out: OutOpt = None,
    values: ConfigValues = CONFIG_FLAGS,
    resume: ResumeOpt = None,
    force: ForceOpt = False,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a listener-speller on spoken digits (official split: index 0-4 is the test set)."""
    from rnnkit.tasks import speech

    _train_task(
        "speech", values, set_, data=wav_dir,
        base={"data.wav_dir": wav_dir and str(wav_dir)},
        default_out=wav_dir and Path("runs") / f"speech-{wav_dir.stem}", saved=speech.saved_speech_config,
        missing="give the folder of WAV files, or --resume RUN",
        out=out, resume=resume, force=force, quiet=quiet,
        report=lambda r: f"step {r['step']}, validation accuracy {r.get('val_accuracy', float('nan')):.4f}",
    )  # fmt: skip


BeamOpt = Annotated[int, Opt(help="Beam width (1: greedy).")]
DecoderOpt = Annotated[str, Opt(help="attention (the speller) or ctc (needs a CTC head).")]


@speech_app.command("eval")
def speech_eval(
    run: Annotated[Path, typer.Argument(help="A run folder made by rnnkit speech train.")],
    wav_dir: Annotated[Path, typer.Argument(help="The folder of {digit}_{speaker}_{index}.wav files.")],
    json_: Annotated[bool, Opt("--json", help="One JSON object instead of a line.")] = False,
    split: Annotated[str, Opt(help="test (the run's test split), val or train.")] = "test",
    beam: BeamOpt = 1,
    decoder: DecoderOpt = "attention",
    checkpoint: CheckpointOpt = "best",
) -> None:
    """Word accuracy and character error rate on the run's test split (or held-out speaker)."""
    from rnnkit.tasks import load_run
    from rnnkit.tasks.speech.metrics import evaluate_recordings

    setup_logging()
    if split not in ("test", "val", "train"):
        raise UsageError(f"--split: expected test, val or train, got {split!r}")
    if beam < 1 or decoder not in ("attention", "ctc"):
        raise UsageError("--beam: 1 or more; --decoder: attention or ctc")
    loaded = load_run(run, checkpoint, task="speech")
    result = evaluate_recordings(loaded, wav_dir, split=split, beam=beam, decoder=decoder)
    if json_:
        print(json.dumps(result))
        return
    print(
        f"{wav_dir} ({split}, {result['recordings']:,} recordings): accuracy {result['accuracy']:.4f}, "
        f"CER {result['cer']:.4f} ({decoder}, beam {beam}, {result['seconds']:.1f} s)"
    )
    for line in result["errors"][:10]:
        print(f"  {line}")


@speech_app.command("transcribe")
def speech_transcribe(
    run: Annotated[Path, typer.Argument(help="A run folder made by rnnkit speech train.")],
    files: Annotated[list[Path], typer.Argument(help="WAV files (mono; other sample rates are resampled).")],
    beam: BeamOpt = 1,
    decoder: DecoderOpt = "attention",
    plot: Annotated[Path | None, Opt(help="Save the attention of the first file as a PNG here.")] = None,
    checkpoint: CheckpointOpt = "best",
) -> None:
    """Print what each recording says (one line per file; with several files, NAME<TAB>TEXT)."""
    from rnnkit.tasks import load_run
    from rnnkit.tasks.speech import plot_attention

    setup_logging()
    if beam < 1 or decoder not in ("attention", "ctc"):
        raise UsageError("--beam: 1 or more; --decoder: attention or ctc")
    loaded = load_run(run, checkpoint, task="speech")
    texts = loaded.transcribe(files, beam=beam, decoder=decoder)
    for path, text in zip(files, texts, strict=True):
        print(text if len(files) == 1 else f"{path}\t{text}")
    if plot is not None:
        plot_attention(loaded, files[0], plot)
        log.info("attention plot: %s", plot)
