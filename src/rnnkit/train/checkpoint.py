"""Checkpoints: folders of safetensors and JSON, written atomically, listed in a checksummed manifest.

A run folder looks like this::

    RUN/
      config.json            the resolved run config (also inside every checkpoint)
      metrics.jsonl          one JSON object per logged step
      manifest.json          {"format": 1, "last": "ckpt-000500", "best": "ckpt-000400",
                              "checkpoints": {"ckpt-000500": {"model.safetensors": "<sha256>", ...}}}
      ckpt-000400/           model.safetensors  config.json  state.safetensors  trainer.json
      ckpt-000500/
      data/                  the encoded corpus (train.bin, val.bin)

Every file is written to a temporary name in its folder, flushed and fsynced, then renamed; a new
checkpoint folder is complete before ``manifest.json`` (itself replaced atomically) names it, and older
folders are removed only after that. A crash at any moment therefore leaves the manifest naming a
complete checkpoint. Nothing is ever unpickled: weights and optimizer tensors go through safetensors,
everything else through JSON, and every file's SHA-256 is checked against the manifest before use.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from rnnkit.errors import CheckpointError, UsageError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
METRICS_FILE = "metrics.jsonl"
STAGES = ("pretrain",)
"""Sub-folders of a run that hold an earlier training stage (a run stopped there has nothing else)."""
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
ENSEMBLE_FILE = "ensemble.json"
"""At the top of a run folder whose models live in member sub-folders (a classifier ensemble)."""
STATE_FILE = "state.safetensors"
TRAINER_FILE = "trainer.json"
_PREFIXES = ("_orig_mod.", "module.")  # torch.compile and DDP wrappers


def normalise_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """State-dict keys without wrapper prefixes, tensors contiguous, on the CPU, unshared."""
    out = {}
    for key, value in state.items():
        for prefix in _PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value.detach().to("cpu").contiguous().clone()
    return out


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never a torn one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: object) -> None:
    atomic_write(path, (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _parse_json(data: bytes, path: Path, what: str, key: str) -> dict:
    """A JSON object whose ``key`` is this rnnkit's format version, or a one-line CheckpointError."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: corrupt {what} (not JSON)") from None
    if not isinstance(obj, dict) or obj.get(key) != FORMAT_VERSION:
        found = obj.get(key) if isinstance(obj, dict) else None
        raise CheckpointError(f"{path}: {what} format {found!r}, this rnnkit reads format {FORMAT_VERSION}")
    return obj


def read_manifest(run_dir: Path) -> dict:
    path = Path(run_dir) / MANIFEST
    if not Path(run_dir).is_dir():
        raise CheckpointError(f"{run_dir}: no such run folder")
    if not path.is_file():
        raise CheckpointError(f"{run_dir}: not a run folder with a checkpoint (no {MANIFEST})")
    manifest = _parse_json(path.read_bytes(), path, "manifest", "format")
    if (
        not isinstance(manifest.get("checkpoints"), dict)
        or manifest.get("last") not in manifest["checkpoints"]
    ):
        raise CheckpointError(f"{path}: the manifest names no complete checkpoint")
    return manifest


def save_checkpoint(
    run_dir: Path,
    step: int,
    *,
    model_state: dict[str, torch.Tensor],
    config: dict,
    state_tensors: dict[str, torch.Tensor],
    trainer_state: dict,
    best: bool,
) -> str:
    """Write checkpoint ``ckpt-{step}`` and make it the last (and the best when ``best``); its name."""
    run_dir = Path(run_dir)
    name = f"ckpt-{step:06d}"
    try:
        manifest = read_manifest(run_dir)
    except CheckpointError:
        manifest = {"format": FORMAT_VERSION, "checkpoints": {}}
    files = {
        MODEL_FILE: save_safetensors(
            normalise_keys(model_state), metadata={"format": "rnnkit", "version": "1"}
        ),
        CONFIG_FILE: (json.dumps(config, indent=1, ensure_ascii=False) + "\n").encode("utf-8"),
        STATE_FILE: save_safetensors(
            {k: v.detach().cpu().contiguous().clone() for k, v in state_tensors.items()}
        ),
        TRAINER_FILE: (json.dumps(trainer_state, indent=1) + "\n").encode("utf-8"),
    }
    tmp = run_dir / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for filename, data in files.items():
            with open(tmp / filename, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        _fsync_dir(tmp)
        final = run_dir / name
        if final.exists():  # an earlier, unlisted or superseded write of the same step
            if name in (manifest.get("last"), manifest.get("best")):
                manifest["checkpoints"].pop(name, None)
                manifest["last"] = manifest["best"] = None
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(run_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    checksums = {filename: sha256(data) for filename, data in files.items()}
    best_name = name if best or not manifest.get("best") else manifest["best"]
    keep = {name: checksums}
    if best_name != name:
        keep[best_name] = manifest["checkpoints"][best_name]
    atomic_write_json(
        run_dir / MANIFEST, {"format": FORMAT_VERSION, "last": name, "best": best_name, "checkpoints": keep}
    )
    for entry in run_dir.iterdir():  # only now is it safe to drop what the manifest no longer names
        stale_tmp = entry.name.startswith(".tmp-ckpt-")  # left by a process killed mid-write
        if entry.is_dir() and (stale_tmp or (entry.name.startswith("ckpt-") and entry.name not in keep)):
            shutil.rmtree(entry, ignore_errors=True)
    return name


@dataclass
class Checkpoint:
    """A loaded checkpoint; ``state_tensors`` and ``trainer_state`` are empty unless asked for."""

    folder: Path
    name: str
    config: dict
    model_state: dict[str, torch.Tensor]
    state_tensors: dict[str, torch.Tensor]
    trainer_state: dict


def _read_verified(folder: Path, filename: str, expected: str | None) -> bytes:
    path = folder / filename
    try:
        data = path.read_bytes()
    except OSError:
        raise CheckpointError(f"{path}: missing") from None
    if expected is None:
        raise CheckpointError(f"{path}: not listed in the manifest")
    if sha256(data) != expected:
        raise CheckpointError(f"{path}: checksum mismatch (the file is corrupt or was changed)")
    return data


def _parse_safetensors(path: Path, data: bytes) -> dict[str, torch.Tensor]:
    try:
        return load_safetensors(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a safetensors file ({exc})") from None


def load_checkpoint(
    run_dir: Path, which: str = "best", *, task: str | None = None, with_state: bool = False
) -> Checkpoint:
    """Load the ``best`` or ``last`` checkpoint of a run, verifying every file against the manifest."""
    run_dir = Path(run_dir)
    if which not in ("best", "last"):
        raise UsageError(f"--checkpoint: expected best or last, got {which!r}")
    manifest = read_manifest(run_dir)
    name = manifest.get(which) or manifest["last"]
    sums = manifest["checkpoints"].get(name)
    if not isinstance(sums, dict):
        raise CheckpointError(f"{run_dir / MANIFEST}: checkpoint {name!r} is not listed")
    folder = run_dir / name
    config_bytes = _read_verified(folder, CONFIG_FILE, sums.get(CONFIG_FILE))
    config = _parse_json(config_bytes, folder / CONFIG_FILE, "checkpoint", "format_version")
    if task is not None and config.get("task") != task:
        raise CheckpointError(f"{run_dir}: a {config.get('task')!r} checkpoint, not a {task!r} one")
    model_bytes = _read_verified(folder, MODEL_FILE, sums.get(MODEL_FILE))
    model_state = _parse_safetensors(folder / MODEL_FILE, model_bytes)
    state_tensors, trainer_state = {}, {}
    if with_state:
        state_bytes = _read_verified(folder, STATE_FILE, sums.get(STATE_FILE))
        state_tensors = _parse_safetensors(folder / STATE_FILE, state_bytes)
        trainer_bytes = _read_verified(folder, TRAINER_FILE, sums.get(TRAINER_FILE))
        try:
            trainer_state = json.loads(trainer_bytes.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise CheckpointError(f"{folder / TRAINER_FILE}: not JSON") from None
    return Checkpoint(folder, name, config, model_state, state_tensors, trainer_state)


# -------------------------------------------------------------------------------------------------
# run folders


def check_run_dir(out: Path, force: bool) -> None:
    """Refuse a run folder we may not (re)place; changes nothing."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out: {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise UsageError(
                f"--out: {out} already holds files; use --resume {out} to continue, or --force to replace it"
            )
        marks = [
            out / MANIFEST,
            out / CONFIG_FILE,
            out / ENSEMBLE_FILE,
            *(out / stage / MANIFEST for stage in STAGES),
        ]
        if not any(mark.is_file() for mark in marks):
            raise UsageError(
                f"--out: {out} is not an rnnkit run folder; refusing to empty it even with --force"
            )


def prepare_run_dir(out: Path, force: bool) -> None:
    """Make ``out`` an empty run folder: refused as :func:`check_run_dir` says, else emptied (``force``)."""
    check_run_dir(out, force)
    if out.is_dir() and any(out.iterdir()):
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def task_config(run_dir: Path, which: str, task: str, cls: type, what: str):
    """The checkpoint ``which`` of a ``task`` run and its config as a ``cls``; refused with a reason."""
    from rnnkit.config import from_dict

    loaded = load_checkpoint(Path(run_dir), which, task=task)
    try:
        return loaded, from_dict(cls, loaded.config["config"])
    except (KeyError, TypeError, ValueError, UsageError) as exc:
        raise CheckpointError(f"{loaded.folder}: config.json does not describe {what} ({exc})") from None


def load_weights(model: torch.nn.Module, loaded: Checkpoint) -> None:
    """Put a checkpoint's weights into ``model`` (built from its config), or say that they do not fit."""
    try:
        model.load_state_dict(loaded.model_state)
    except RuntimeError:
        raise CheckpointError(f"{loaded.folder}: the weights do not fit the model in config.json") from None


def read_metrics(run_dir: Path) -> list[dict]:
    """The records of a run's ``metrics.jsonl`` in order; a torn or foreign line (a crash mid-write) is
    skipped, and a run without the file has none."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text("utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
