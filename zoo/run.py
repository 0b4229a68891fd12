"""`Run(path)`: the one owner of a run directory's file names.

Training, evaluation, export, the CLI and the benchmarks reach a run's files
through these attributes, never through string literals of their own:

    runs/cifar10_resnet/
        config.json          run.config        model, settings, versions (written once training can start)
        data_info.json       run.data_info     class names, counts, source and sha256 of the data
        preprocessor/        run.preprocessor  the fitted tokenizer/vectorizer, when the model has one
        backup/              run.backup        Keras BackupAndRestore state (weights, optimizer, epoch)
        checkpoints/         run.checkpoints   last.keras: the model after the latest finished epoch
        logs/                run.logs          TensorBoard
        history.json         run.history       per-epoch loss/metrics, learning rate, seconds
        curves.png           run.curves        training curves
        model.keras          run.model         the final model
        metrics.json         run.metrics       test metrics, training time, parameter count
        state.json           run.state         {"status": "complete"} once finished
        .lock                                  held (flock) by the process training here

Importing this module imports no TensorFlow.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
from typing import Any, Iterator

from zoo.io import read_json, remove_stale_temporaries, write_json

__all__ = ["Run", "RunDirError"]


class RunDirError(ValueError):
    """The run directory holds a different run, no run where one is needed, or is in use."""


class Run:
    """A run directory and the names of everything in it.

    Args:
        path: the directory (relative paths are resolved against the current
            directory when the object is made, so a later `chdir` or a child
            process in another directory sees the same run).

    Raises:
        RunDirError: `path` exists and is not a directory.
    """

    def __init__(self, path: str | os.PathLike):
        self.given = pathlib.Path(path)
        self.path = self.given.resolve()
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"run directory {self.given} is a file, not a directory: pass another --run-dir")
        p = self.path
        self.config = p / "config.json"
        self.data_info = p / "data_info.json"
        self.preprocessor = p / "preprocessor"
        self.backup = p / "backup"
        self.checkpoints = p / "checkpoints"
        self.last_checkpoint = self.checkpoints / "last.keras"
        self.logs = p / "logs"
        self.history = p / "history.json"
        self.curves = p / "curves.png"
        self.model = p / "model.keras"
        self.metrics = p / "metrics.json"
        self.state = p / "state.json"
        self.lock_file = p / ".lock"

    def __repr__(self) -> str:
        return f"Run({str(self.given)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # -- records -------------------------------------------------------------

    def read(self, name: str, default: Any = None) -> Any:
        """The JSON record `name` ("config", "metrics", "history", "data_info", "state"), or `default` if absent.

        Raises:
            ValueError: the file exists but is corrupt (the message names it).
        """
        path = getattr(self, name)
        if not path.exists():
            return default
        return read_json(path, f"run's {path.name}")

    def write(self, name: str, obj: Any) -> pathlib.Path:
        """Write the JSON record `name` atomically."""
        return write_json(getattr(self, name), obj)

    @property
    def complete(self) -> bool:
        """Whether training finished and was recorded (state.json says "complete")."""
        state = self.read("state", {})
        return isinstance(state, dict) and state.get("status") == "complete"

    def trained_model_file(self) -> pathlib.Path | None:
        """model.keras, else the latest epoch's checkpoint, else None."""
        for candidate in (self.model, self.last_checkpoint):
            if candidate.exists():
                return candidate
        return None

    # -- ownership -----------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator["Run"]:
        """Hold the run directory for this process: a second `zoo train` on it is refused.

        The lock is an `flock` on `.lock`, so the kernel releases it when the
        holder dies (a killed run never blocks its rerun).  Temporaries that a
        killed process left in the directory are removed once the lock is held.

        Raises:
            RunDirError: another live process holds the directory (its pid is named).
        """
        import fcntl

        created = [d for d in (self.path, *self.path.parents) if not d.exists()]  # deepest first
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        held = False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                raise RunDirError(f"{self.given} is in use by another zoo process (pid {holder}); wait for it "
                                  "to finish, or pass another --run-dir") from None
            held = True
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            for folder in (self.path, self.checkpoints):
                remove_stale_temporaries(folder)
            yield self
        finally:
            if held and created:
                self._remove_if_unused(created)
            os.close(fd)  # releases the flock

    def _remove_if_unused(self, created) -> None:
        """Remove the folders `lock` created if nothing but the lock file went into them (a command that failed
        before training began leaves no empty run directory behind)."""
        try:
            if any(p.name != self.lock_file.name for p in self.path.iterdir()):
                return
            self.lock_file.unlink()
            for folder in created:  # deepest first; a folder something else wrote into stays
                folder.rmdir()
        except OSError:
            pass
