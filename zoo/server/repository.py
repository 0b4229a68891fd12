"""Model repository: the versions under each served model directory, loaded and kept current.

`ModelRepository(["saved_models/cifar10_cnn", ...])` finds every numbered
version directory holding a `saved_model.pb` (TF Serving's layout
`<name>/<version>/`), loads each with `tf.saved_model.load` and keeps
polling (`poll()`, or a background thread from `start()`): a new version
is loaded when it appears, a removed one is unloaded.  Only TensorFlow is
needed; `model_card.json` beside a version, when present, is read for the
demo page (class names, sample rate, description).
"""

from __future__ import annotations

import json
import pathlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from zoo.server.codec import Spec

__all__ = ["ModelRepository", "ModelVersion", "NotFound", "find_versions"]

MAX_LOAD_ATTEMPTS = 5  # a failing version is retried on the next polls, then only when its saved_model.pb changes


class NotFound(LookupError):
    """Unknown model, version or signature: the server answers HTTP 404."""


def find_versions(base: pathlib.Path) -> dict[int, pathlib.Path]:
    """{version: directory} for every integer-named subdirectory of `base` holding a `saved_model.pb`."""
    if not base.is_dir():
        return {}
    return {int(p.name): p for p in base.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file()}


@dataclass
class ModelVersion:
    """One loaded version: its signatures (name -> concrete function) and their input specs.

    `state` follows TF Serving's `ModelVersionStatus.State`: "LOADING",
    "AVAILABLE" or "END" (a failed load, with `error`).
    """

    name: str
    version: int
    path: pathlib.Path
    state: str = "LOADING"
    error: str = ""
    signatures: dict = field(default_factory=dict)
    inputs: dict[str, dict[str, Spec]] = field(default_factory=dict)
    card: dict[str, Any] | None = None
    stamp: tuple = ()
    attempts: int = 0
    _loaded: Any = None

    def load(self) -> "ModelVersion":
        """Load the SavedModel; on failure keep `state="END"` and the error message."""
        import tensorflow as tf

        self.stamp = _stamp(self.path)
        try:
            self._loaded = tf.saved_model.load(str(self.path))
            self.signatures = {k: v for k, v in self._loaded.signatures.items() if not k.startswith("__")}
            self.inputs = {k: {n: Spec.from_tensor_spec(n, s) for n, s in fn.structured_input_signature[1].items()}
                           for k, fn in self.signatures.items()}
            card = self.path / "model_card.json"
            self.card = json.loads(card.read_text()) if card.is_file() else None
            self.state, self.error = "AVAILABLE", ""
        except Exception as exc:  # a corrupt or half-copied SavedModel must not stop the server
            self.state, self.error = "END", f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        return self

    def signature_defs(self) -> dict:
        """TF Serving's `signature_def` map (JSON form of the SavedModel's `SignatureDef` protos)."""
        from google.protobuf import json_format
        from tensorflow.core.protobuf import saved_model_pb2

        proto = saved_model_pb2.SavedModel()
        proto.ParseFromString((self.path / "saved_model.pb").read_bytes())
        defs = proto.meta_graphs[0].signature_def
        return {k: json_format.MessageToDict(defs[k], preserving_proto_field_name=True,
                                             always_print_fields_with_no_presence=True)
                for k in sorted(defs) if not k.startswith("__")}


def _stamp(path: pathlib.Path) -> tuple:
    pb = path / "saved_model.pb"
    try:
        st = pb.stat()
        return (st.st_mtime_ns, st.st_size)
    except OSError:
        return ()


class ModelRepository:
    """The served models, each a directory of numbered versions, polled for new ones.

    Args:
        paths: model directories (`saved_models/NAME`); the model is served as `NAME`.
        poll_seconds: how often `start()`'s thread looks for new or removed versions.

    Raises:
        ValueError: a path is missing, is a version directory rather than a
            model directory, holds no versions, or two paths share a name.
    """

    def __init__(self, paths, poll_seconds: float = 1.0):
        self.bases: dict[str, pathlib.Path] = {}
        for raw in paths:
            base = pathlib.Path(raw).resolve()
            if (base / "saved_model.pb").is_file() and base.name.isdigit():
                raise ValueError(f"{raw} is a version directory; pass the model directory above it "
                                 f"({pathlib.Path(raw).parent}) so that every version is served")
            if not base.is_dir():
                raise ValueError(f"{raw}: no such directory; pass a model directory written by `zoo export` "
                                 "(e.g. saved_models/cifar10_cnn)")
            if not find_versions(base):
                raise ValueError(f"{raw} holds no versions (numbered directories with a saved_model.pb); export one "
                                 f"with `zoo export NAME --run-dir RUN --out {pathlib.Path(raw).parent}`")
            if base.name in self.bases:
                raise ValueError(f"two model directories are both named {base.name!r} ({self.bases[base.name]} and "
                                 f"{base}); a served model's name is its directory's name")
            self.bases[base.name] = base
        self.poll_seconds = float(poll_seconds)
        self.versions: dict[str, dict[int, ModelVersion]] = {n: {} for n in self.bases}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_change = []  # callbacks(name, version, event) for the server's batchers

    # -- polling

    def poll(self) -> list[tuple[str, int, str]]:
        """Load new versions, unload removed ones; returns [(name, version, "loaded"|"failed"|"unloaded")]."""
        changes = []
        for name, base in self.bases.items():
            found = find_versions(base)
            current = self.versions[name]
            for v in sorted(set(current) - set(found)):
                with self._lock:
                    self.versions[name] = {k: x for k, x in self.versions[name].items() if k != v}
                changes.append((name, v, "unloaded"))
            for v in sorted(found):
                old = self.versions[name].get(v)
                if old is not None and not (old.state == "END" and (old.attempts < MAX_LOAD_ATTEMPTS
                                                                    or old.stamp != _stamp(found[v]))):
                    continue  # loaded, or failed too often and unchanged since
                entry = ModelVersion(name, v, found[v])
                entry.attempts = (old.attempts if old is not None and old.stamp == _stamp(found[v]) else 0) + 1
                with self._lock:
                    self.versions[name] = {**self.versions[name], v: entry}
                entry.load()
                changes.append((name, v, "loaded" if entry.state == "AVAILABLE" else "failed"))
        for change in changes:
            for callback in list(self.on_change):
                callback(*change)
        return changes

    def start(self) -> "ModelRepository":
        """Poll once now, then every `poll_seconds` in a daemon thread until `stop()`."""
        self.poll()
        if self.poll_seconds > 0 and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="zoo-serve-poller", daemon=True)
            self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll()
            except Exception as exc:  # noqa: BLE001 - a polling hiccup (e.g. a directory removed mid-scan) is retried
                print(f"zoo serve: polling failed ({exc}); retrying", flush=True)

    def stop(self) -> None:
        """Stop the polling thread (waits for a load in progress)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    # -- lookup

    def status(self, name: str, version: int | None = None) -> list[ModelVersion]:
        """Every version of `name` (or just `version`), highest first."""
        versions = self._model(name)
        if version is not None:
            if version not in versions:
                raise NotFound(f"Could not find version {version} of model {name} (versions: {sorted(versions)})")
            return [versions[version]]
        if not versions:
            raise NotFound(f"Could not find any versions of model {name}")
        return [versions[v] for v in sorted(versions, reverse=True)]

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """The requested version, or the highest available one; raises `NotFound`."""
        versions = self._model(name)
        if version is None:
            ready = [v for v, x in versions.items() if x.state == "AVAILABLE"]
            if not ready:
                raise NotFound(f"Servable not found for request: Latest({name})")
            return versions[max(ready)]
        entry = versions.get(version)
        if entry is None or entry.state != "AVAILABLE":
            raise NotFound(f"Servable not found for request: Specific({name}, {version})")
        return entry

    def _model(self, name: str) -> dict[int, ModelVersion]:
        if name not in self.versions:
            raise NotFound(f"Servable not found for request: Latest({name}); served models: {sorted(self.bases)}")
        with self._lock:
            return dict(self.versions[name])

    def wait_for(self, name: str, version: int, timeout: float = 60.0) -> ModelVersion:
        """Block until `version` of `name` is available (tests, scripts); raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return self.get(name, version)
            except NotFound:
                time.sleep(0.05)
        entry = self.versions.get(name, {}).get(version)
        seen = f"state {entry.state} {entry.error}".strip() if entry else "not found on disk"
        raise TimeoutError(f"{name} version {version} did not become available within {timeout} s ({seen})")
