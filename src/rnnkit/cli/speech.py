"""``rnnkit speech train | eval | transcribe``: speech recognition (Listen, Attend and Spell)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rnnkit.cli.options import (
    CellOpt,
    CheckpointOpt,
    DropoutOpt,
    EvalIntervalOpt,
    ForceOpt,
    LrOpt,
    MaxStepsOpt,
    Opt,
    OutOpt,
    QuietOpt,
    ResumeOpt,
    SeedOpt,
    ThreadsOpt,
    _budget_flags,
    _setup_logging,
    _train_task,
    log,
    minutes_opt,
)
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
def speech_train(
    wav_dir: Annotated[
        Path | None,
        typer.Argument(help="A folder of {digit}_{speaker}_{index}.wav files.", show_default=False),
    ] = None,
    out: OutOpt = None,
    holdout_speaker: Annotated[
        str | None, Opt(help="Test on all of this speaker's recordings; train on the others.")
    ] = None,
    pyramid_layers: Annotated[
        int | None, Opt(help="Pyramidal layers above the bottom one, each halving the sequence (default 3).")
    ] = None,
    pyramid: Annotated[
        bool | None,
        Opt(
            "--pyramid/--no-pyramid", help="Join neighbour pairs (default) or keep every frame (reduction 1)."
        ),
    ] = None,
    odd: Annotated[str | None, Opt(help="Odd lengths in the pyramid: pad or drop.")] = None,
    listener_size: Annotated[int | None, Opt(help="Units per direction in the listener.")] = None,
    speller_size: Annotated[int | None, Opt(help="Units of the speller LSTM.")] = None,
    ctc_weight: Annotated[float | None, Opt(help="Weight of a CTC loss on the listener (0: none).")] = None,
    augment: Annotated[bool | None, Opt("--augment/--no-augment", help="SpecAugment-style masking.")] = None,
    normalise: Annotated[str | None, Opt(help="Feature normalisation: utterance, global or none.")] = None,
    cell: CellOpt = None,
    dropout: DropoutOpt = None,
    batch_size: Annotated[int | None, Opt(help="Recordings per batch.")] = None,
    lr: LrOpt = None,
    max_steps: MaxStepsOpt = None,
    max_minutes: minutes_opt(10) = None,
    eval_interval: EvalIntervalOpt = None,
    seed: SeedOpt = None,
    threads: ThreadsOpt = None,
    resume: ResumeOpt = None,
    force: ForceOpt = False,
    set_: Annotated[
        list[str] | None, Opt("--set", help="Any config field by dotted key (repeatable).")
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a listener-speller on spoken digits (official split: index 0-4 is the test set)."""
    from rnnkit.tasks import speech

    _setup_logging(quiet)
    flags = {
        "data.holdout_speaker": holdout_speaker,
        "data.augment": augment,
        "features.normalise": normalise,
        "model.pyramid_layers": pyramid_layers,
        "model.pyramid": pyramid,
        "model.odd": odd,
        "model.listener_size": listener_size,
        "model.speller_size": speller_size,
        "model.ctc_weight": ctc_weight,
        "model.cell": cell,
        "model.dropout": dropout,
        **_budget_flags(batch_size, lr, max_steps, max_minutes, eval_interval, seed, threads=threads),
    }
    _train_task(
        flags,
        set_,
        data=wav_dir,
        out=out,
        resume=resume,
        force=force,
        quiet=quiet,
        saved=speech.saved_speech_config,
        fresh=speech.SpeechConfig,
        base={"data.wav_dir": wav_dir and str(wav_dir)},
        missing="give the folder of WAV files, or --resume RUN",
        name="speech",
        report=lambda r: f"step {r['step']}, validation accuracy {r.get('val_accuracy', float('nan')):.4f}",
    )


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
    import time

    from rnnkit.tasks import load_run
    from rnnkit.tasks.speech import list_fsdd, scores, split_fsdd

    _setup_logging()
    if split not in ("test", "val", "train"):
        raise UsageError(f"--split: expected test, val or train, got {split!r}")
    if beam < 1 or decoder not in ("attention", "ctc"):
        raise UsageError("--beam: 1 or more; --decoder: attention or ctc")
    loaded = load_run(run, checkpoint, task="speech")
    d = loaded.config.data
    parts = split_fsdd(list_fsdd(wav_dir), d.holdout_speaker, d.val_fraction, loaded.config.train.seed)
    chosen = parts[("train", "val", "test").index(split)]
    started = time.perf_counter()
    hyps = loaded.transcribe([u.path for u in chosen], beam=beam, decoder=decoder)
    seconds = time.perf_counter() - started
    found = scores([u.text for u in chosen], hyps)
    wrong = [f"{u.path.name}: {h!r}" for u, h in zip(chosen, hyps, strict=True) if h != u.text]
    result = found | {
        "recordings": len(chosen), "split": split, "holdout_speaker": d.holdout_speaker or None,
        "decoder": decoder, "beam": beam, "checkpoint": loaded.checkpoint, "seconds": round(seconds, 3),
        "errors": wrong[:20],
    }  # fmt: skip
    if json_:
        print(json.dumps(result))
        return
    print(
        f"{wav_dir} ({split}, {len(chosen):,} recordings): accuracy {found['accuracy']:.4f}, "
        f"CER {found['cer']:.4f} ({decoder}, beam {beam}, {seconds:.1f} s)"
    )
    for line in wrong[:10]:
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

    _setup_logging()
    if beam < 1 or decoder not in ("attention", "ctc"):
        raise UsageError("--beam: 1 or more; --decoder: attention or ctc")
    loaded = load_run(run, checkpoint, task="speech")
    texts = loaded.transcribe(files, beam=beam, decoder=decoder)
    for path, text in zip(files, texts, strict=True):
        print(text if len(files) == 1 else f"{path}\t{text}")
    if plot is not None:
        plot_attention(loaded, files[0], plot)
        log.info("attention plot: %s", plot)
