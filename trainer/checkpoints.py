"""A training run's resumable state under checkpoints/<name>/: Keras's backup and a per-epoch log.

The backup outlives `fit` (Keras would delete it when fit ends) and is removed only after the
exported model folder is in place, so a kill at any instant loses at most the epoch in progress.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import keras

from trainer.artifacts import write_json

# Fault injection for the tests: behave as if the user pressed Ctrl-C at that point.
STOP_AFTER_EPOCH_ENV = "TRAINER_STOP_AFTER_EPOCH"
STOP_BEFORE_EXPORT_ENV = "TRAINER_STOP_BEFORE_EXPORT"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read; the message says which folder to delete."""


def unreadable(folder: Path, exc: BaseException) -> CheckpointError:
    return CheckpointError(f"the checkpoint in {folder} cannot be read ({exc.__class__.__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); delete {folder} "
                           "and run the command again (training restarts at epoch 1)")


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore under run_dir/backup that keeps its files after fit and turns an unreadable
    backup into one line naming run_dir (the whole run's checkpoint) as the folder to delete."""

    def __init__(self, run_dir: Path):
        self.folder = Path(run_dir)
        super().__init__(str(self.folder / "backup"), delete_checkpoint=False, double_checkpoint=True)

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except Exception as exc:  # h5py, JSON and Keras each raise their own types for a torn file
            raise unreadable(self.folder, exc) from exc


class EpochLog(keras.callbacks.Callback):
    """Keeps per-epoch metrics and wall time on disk, so the times of resumed runs add up."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)
        try:
            self.epochs = json.loads(self.path.read_text()) if self.path.is_file() else []
        except (OSError, ValueError) as exc:
            raise unreadable(self.path.parent, exc) from exc
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs = [e for e in self.epochs if e["epoch"] < epoch]  # drop epochs lost to a crash
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        entry = {"epoch": epoch, "seconds": time.perf_counter() - self._start}
        entry.update({k: float(v) for k, v in (logs or {}).items()})
        self.epochs.append(entry)
        write_json(self.path, self.epochs)
        if os.environ.get(STOP_AFTER_EPOCH_ENV) == str(epoch + 1):
            raise KeyboardInterrupt

    def total_seconds(self) -> float:
        return sum(e["seconds"] for e in self.epochs)

    def history(self) -> dict:
        keys = [k for k in (self.epochs[0] if self.epochs else {}) if k != "epoch"]
        return {k: [round(e.get(k, float("nan")), 5) for e in self.epochs] for k in keys}


def stop_before_export_requested() -> bool:
    return os.environ.get(STOP_BEFORE_EXPORT_ENV, "") not in ("", "0")
