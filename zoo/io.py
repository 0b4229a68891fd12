"""Crash-safe files: atomic writes, the one JSON converter, temporaries owned by a process.

Every file zoo writes (checkpoints, run records, caches, exports) goes through
here, so a crash or `kill -9` never leaves half a file, and the temporaries a
killed process leaves behind are recognised (their name carries the pid of
their owner) and removed by the next process that writes in the same folder.

    with atomic_write("runs/r/model.keras") as tmp:   # tmp: runs/r/.model.keras.<pid>.<random>.tmp.keras
        model.save(tmp)
    write_json("runs/r/metrics.json", {"accuracy": np.float32(0.9)})
    tmp = owned_temp_dir("saved_models/cnn", prefix=".tmp-export-")
    remove_stale_temporaries("saved_models/cnn")      # what dead processes left there

Importing this module imports no TensorFlow.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import pathlib
import re
import shutil
import tempfile
import threading
from typing import Any, Iterator

__all__ = ["atomic_write", "write_json", "write_text", "read_json", "jsonable", "owned_temp_dir",
           "remove_stale_temporaries", "die_with_parent", "pid_alive"]

# A temporary's name holds its owner's pid: ".<name>.<pid>.<random>.tmp<suffix>" (atomic_write)
# or "<prefix><pid>-<random>" (owned_temp_dir).
_TMP_FILE = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp(\.[^.]*)?$")
_OLD_DIR = re.compile(r"^\..+\.old-(\d+)-\d+$")


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True




def _fsync_tree(path: pathlib.Path) -> None:
    paths = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_dir(path: pathlib.Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def _remove(path: pathlib.Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Write `path` all-or-nothing: readers see the old content or the new, never half.

    Yields a temporary path in the same folder (with the same suffix, so
    writers that insist on one, e.g. `np.save` or `model.save(".keras")`,
    accept it).  The caller creates a file *or a directory* there (a
    SavedModel export, say).  On normal exit the result is fsync'ed and moved
    onto `path` with `os.replace` (an existing directory at `path` is replaced
    too); on an exception the temporary is removed and `path` is untouched.

        with atomic_write("out/model.keras") as tmp:
            model.save(tmp)

    Args:
        path: the final file or directory; its parent is created if needed.

    Yields:
        pathlib.Path: the temporary path to write.

    Raises:
        FileNotFoundError: the block exited without creating the temporary.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = pathlib.Path(name)
    tmp.unlink()  # the caller decides whether it becomes a file or a directory
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"atomic_write({path}): nothing was written to the temporary {tmp}")
        _fsync_tree(tmp)
        if tmp.is_dir() and path.is_dir() and not path.is_symlink():
            old = path.with_name(f".{path.name}.old-{os.getpid()}-{threading.get_ident()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        _remove(tmp)
        raise


def jsonable(obj: Any) -> Any:
    """`obj` as plain JSON values: numpy scalars/arrays, paths, sets, tuples and dataclasses converted.

    Non-finite floats become None (JSON has no NaN); anything else unknown becomes its `str`.
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=str) if isinstance(obj, (set, frozenset)) else obj
        return [jsonable(v) for v in items]
    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(dataclasses.asdict(obj))
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, tensors converted to numpy
        return jsonable(obj.tolist())
    return str(obj)


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> pathlib.Path:
    """Write `obj` as JSON to `path` atomically (UTF-8, trailing newline), converted by `jsonable`.

    Returns:
        pathlib.Path: `path`.
    """
    return write_text(path, json.dumps(jsonable(obj), indent=indent, ensure_ascii=False) + "\n")


def write_text(path: str | os.PathLike, text: str) -> pathlib.Path:
    """Write `text` to `path` atomically (UTF-8; `atomic_write`): readers see the old file or the new one.

    Returns:
        pathlib.Path: `path`.
    """
    path = pathlib.Path(path)
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """Read a JSON file zoo wrote; a missing, unreadable or corrupt one raises ValueError naming it.

    Args:
        path: the file.
        what: what the file is, for the message ("run config", "model card").

    Raises:
        FileNotFoundError: no such file (the message names it).
        ValueError: not UTF-8 or not valid JSON (the message names the file and the fix).
    """
    path = pathlib.Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist (expected the {what})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is corrupt ({what} is not valid UTF-8 JSON: {exc}); "
                         "restore it or delete the directory and start over") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a directory, expected the {what} (a JSON file)") from None


def owned_temp_dir(parent: str | os.PathLike, prefix: str) -> pathlib.Path:
    """A new temporary directory `parent/<prefix><pid>-<random>` owned by this process.

    Its name lets `remove_stale_temporaries(parent, prefix)` tell it from one
    a killed process left behind.
    """
    parent = pathlib.Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    return pathlib.Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))


def remove_stale_temporaries(folder: str | os.PathLike, prefix: str | None = None) -> list[pathlib.Path]:
    """Remove the temporaries in `folder` whose owning process is dead; return what was removed.

    Recognises `atomic_write`'s temporaries and replaced-directory leftovers,
    and, with `prefix`, `owned_temp_dir(folder, prefix)` directories.  A
    temporary of a live process (another export running now) is kept.
    """
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        m = _TMP_FILE.match(entry.name) or _OLD_DIR.match(entry.name)
        pid = int(m.group(1)) if m else None
        if pid is None and prefix and entry.name.startswith(prefix):
            head = entry.name[len(prefix):].split("-", 1)[0]
            pid = int(head) if head.isdigit() else 0  # an old-style name without a pid: nobody owns it
        if pid is not None and pid != os.getpid() and not pid_alive(pid):
            _remove(entry)
            removed.append(entry)
    return removed


def die_with_parent() -> None:
    """`preexec_fn` for subprocesses: the child gets SIGTERM when its parent dies (Linux; elsewhere a no-op).

    So a verification child never outlives a killed export.
    """
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass
