"""What every bench shares: the machine report and loading an export the way a caller would.

    from common import cpu_info, load_export   # bench/ is on sys.path in every bench script
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import subprocess
from typing import Any, Callable


def cpu_info() -> dict:
    """The machine a figure was measured on: `lscpu`'s model name, cores, bf16 / AVX flags, 1-min load at start."""
    model = platform.processor()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), model)
    except OSError:
        pass
    flags = pathlib.Path("/proc/cpuinfo").read_text() if pathlib.Path("/proc/cpuinfo").exists() else ""
    return {"model": model, "cores": os.cpu_count(), "avx512f": "avx512f" in flags,
            "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags, "avx2": "avx2" in flags,
            "load_average_at_start": os.getloadavg()[0]}


def load_export(export: str | os.PathLike, warm_up: Callable[[Any], Any] | None = None) -> tuple[dict, Any]:
    """An export's model card and `serving_default`, loaded with `tf.saved_model.load` alone (no zoo code in the call).

    Args:
        export: a version folder, e.g. `saved_models/fsdd_ctc/1`.
        warm_up: called once with the signature, inside the same silenced
            stderr, so TensorFlow's first-use log lines (oneDNN notes, the
            first trace) do not land among the bench's own output.

    Returns:
        `(card, fn)`: the parsed `model_card.json` and the concrete function.
    """
    from zoo._tf import import_tensorflow, silenced_stderr

    tf = import_tensorflow()
    card = json.loads((pathlib.Path(export) / "model_card.json").read_text())
    with silenced_stderr():
        fn = tf.saved_model.load(str(export)).signatures["serving_default"]
        if warm_up is not None:
            warm_up(fn)
    return card, fn
