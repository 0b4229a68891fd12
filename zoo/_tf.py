"""Import TensorFlow without its start-up log lines.

TensorFlow 2.21 writes several lines (oneDNN, CUDA drivers, cuInit) to the
process's stderr from C++ before `absl::InitializeLog()`, so neither
`TF_CPP_MIN_LOG_LEVEL` nor Python's logging can stop them.  `import_tensorflow`
points file descriptor 2 at /dev/null while TensorFlow loads and finds its
devices, then restores it: Python errors and everything printed afterwards
still reach the terminal.  `TF_CPP_MIN_LOG_LEVEL` defaults to 3, which
also drops the C++ lines TensorFlow logs at ERROR level without failing
(e.g. "oneDNN supports DT_BOOL only on platforms with AVX-512" on the
first training step): a real failure raises a Python exception, which is
still shown.  `ZOO_VERBOSE=1` (the CLI's `--verbose`) or a
`TF_CPP_MIN_LOG_LEVEL` of 0 or 1 keeps the lines.
"""

from __future__ import annotations

import contextlib
import os
import sys

VERBOSE_ENV = "ZOO_VERBOSE"


def verbose() -> bool:
    """Whether the user asked to see TensorFlow's own log lines."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0") or os.environ.get("TF_CPP_MIN_LOG_LEVEL") in ("0", "1")


@contextlib.contextmanager
def silenced_stderr():
    """Send file descriptor 2 to /dev/null for the block: C++ log lines and dumps (TensorFlow's, the TFLite
    converter's) that Python cannot catch.  Python exceptions still propagate; with `verbose()` nothing is
    silenced, and where there is no real stderr (embedded interpreters) the block runs as it is."""
    if verbose():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def import_tensorflow():
    """Import TensorFlow (once) with its start-up lines silenced; return the module."""
    if "tensorflow" in sys.modules or verbose():
        import tensorflow as tf

        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ ERROR lines too: a real failure raises in Python
    with silenced_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices()  # device discovery logs too (cuInit)
    return tf
