"""The HTTP server: TF Serving's REST API and the Gradio demo page, on FastAPI + uvicorn.

    serve(["saved_models/cifar10_cnn"], port=8501)          # blocks (`zoo serve`)
    with running(["saved_models/cifar10_cnn"]) as server:   # background thread on a free port
        requests.post(server.url + "/v1/models/cifar10_cnn:predict", json={...})
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import re
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Sequence

import numpy as np
from fastapi import Request  # at module level: FastAPI resolves the route's annotations here

from zoo.server.batching import Batcher
from zoo.server.codec import RequestError, columns_response, dumps, parse_json, request_inputs, rows_response
from zoo.server.repository import ModelRepository, ModelVersion, NotFound

__all__ = ["create_app", "serve", "running", "RunningServer"]

DEFAULT_SIGNATURE = "serving_default"
_PATH = re.compile(r"^(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
                   r"(?P<verb>/metadata|:[A-Za-z]+)?$")


def _runner(fn, specs):
    """numpy inputs -> the signature's outputs as numpy arrays (runs in a worker thread)."""
    import tensorflow as tf

    dtypes = {k: tf.string if s.is_string else tf.as_dtype(s.dtype) for k, s in specs.items()}

    def run(inputs):
        try:
            result = fn(**{k: tf.constant(v, dtype=dtypes[k]) for k, v in inputs.items()})
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as exc:
            raise RequestError(_tf_message(exc)) from None
        return {k: v.numpy() for k, v in result.items()}

    return run


def _tf_message(exc) -> str:
    """The useful line of a TensorFlow error (not the graph-execution banner or the stack trace)."""
    text = str(getattr(exc, "message", None) or exc)
    noise = ("\t", "  ", "Graph execution", "Detected at node", "<stack traces", "File ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(noise)]
    return (lines[0] if lines else type(exc).__name__)[:500]


def create_app(repository: ModelRepository, *, max_batch_size: int = 32, batch_timeout_ms: float = 0.0,
               workers: int | None = None, demo: bool | None = None):
    """The FastAPI application serving `repository` (polling is the caller's: `repository.start()`).

    Args:
        repository: the models to serve.
        max_batch_size: most rows per batched call; 1 (or less) turns batching off.
        batch_timeout_ms: how long the first request of a batch waits for others (0: a batch takes the
            requests that queued while the previous one ran, and never waits; `bench/serve.py` found
            that as fast as or faster than a 5 ms window at concurrency 1, 8 and 32 on 2 CPU cores).
        workers: threads that run signatures (default: max(4, CPU count)).
        demo: mount the Gradio demo page at /demo (`/` redirects there): True requires gradio, None
            mounts it when gradio is installed, False leaves it out.

    Raises:
        ImportError: `demo=True` and gradio is not installed.
    """
    from fastapi import FastAPI
    from fastapi.responses import RedirectResponse, Response
    from starlette.exceptions import HTTPException

    executor = ThreadPoolExecutor(max_workers=workers or max(4, os.cpu_count() or 1), thread_name_prefix="zoo-serve")
    batchers: dict[tuple, Batcher] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        loop = asyncio.get_running_loop()

        def drop(name, version):  # on the event loop, the only thread that touches `batchers`
            for key in [k for k in batchers if k[:2] == (name, version)]:
                batchers.pop(key).close()

        def forget(name, version, event):  # (poller thread) an unloaded or reloaded version drops its batchers
            loop.call_soon_threadsafe(drop, name, version)

        repository.on_change.append(forget)
        yield
        repository.on_change.remove(forget)
        for b in batchers.values():
            b.close()
        executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="zoo serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.repository, app.state.batchers = repository, batchers

    def answer(obj, status: int = 200):
        return Response(dumps(obj), status_code=status, media_type="application/json")

    @app.exception_handler(HTTPException)
    async def http_error(request, exc):  # FastAPI's own 404/405 in TF Serving's error shape
        return answer({"error": f"{exc.detail}: {request.method} {request.url.path}"}, exc.status_code)

    def route(path: str):
        m = _PATH.match(path)
        if m is None:
            raise NotFound(f"Malformed request: {path}; expected /v1/models/NAME[/versions/N][/metadata|:predict]")
        if m["label"] is not None:
            raise NotFound(f"version labels are not supported by zoo serve (label {m['label']!r}); "
                           "use /versions/N or no version for the highest")
        version = None
        if m["version"] is not None:
            if not m["version"].isdigit():
                raise NotFound(f"Malformed request: version {m['version']!r} is not a number")
            version = int(m["version"])
        return m["name"], version, m["verb"]

    @app.get("/v1/models/{path:path}")
    async def get_model(path: str):
        try:
            name, version, verb = route(path)
            if verb is None:
                return answer({"model_version_status": [
                    {"version": str(e.version), "state": e.state,
                     "status": {"error_code": "OK" if not e.error else "UNKNOWN", "error_message": e.error}}
                    for e in repository.status(name, version)]})
            if verb != "/metadata":
                raise NotFound(f"Malformed request: GET {path}; {verb} takes POST")
            entry = repository.get(name, version)
            defs = await asyncio.get_running_loop().run_in_executor(executor, entry.signature_defs)
            return answer({"model_spec": {"name": name, "signature_name": "", "version": str(entry.version)},
                           "metadata": {"signature_def": {"signature_def": defs}}})
        except NotFound as exc:
            return answer({"error": str(exc)}, 404)

    @app.post("/v1/models/{path:path}")
    async def post_model(path: str, request: Request):
        try:
            name, version, verb = route(path)
            if verb != ":predict":
                if verb in (":classify", ":regress"):
                    return answer({"error": f"zoo serve implements :predict only, not {verb} (its exports have "
                                            "predict signatures)"}, 400)
                raise NotFound(f"Malformed request: POST {path}; expected /v1/models/NAME[/versions/N]:predict")
            entry = repository.get(name, version)
            body = parse_json(await request.body())
            signature = body.get("signature_name") or DEFAULT_SIGNATURE
            if signature not in entry.signatures:
                raise RequestError(f"Serving signature name: \"{signature}\" not found in signature def "
                                   f"(signatures: {sorted(entry.signatures)})")
            form, inputs = request_inputs(body, entry.inputs[signature])
            outputs = await _predict(entry, signature, inputs)
            return answer(rows_response(outputs) if form == "row" else columns_response(outputs))
        except NotFound as exc:
            return answer({"error": str(exc)}, 404)
        except RequestError as exc:
            return answer({"error": str(exc)}, 400)
        except Exception as exc:  # noqa: BLE001 - the model failed: 500, and the server goes on
            return answer({"error": f"{type(exc).__name__}: {_tf_message(exc)}"}, 500)

    async def _call(entry: ModelVersion, signature: str, inputs) -> dict[str, np.ndarray]:
        key = (entry.name, entry.version, signature)
        batcher = batchers.get(key)
        if batcher is None:
            run = _runner(entry.signatures[signature], entry.inputs[signature])
            if max_batch_size <= 1:
                return await asyncio.get_running_loop().run_in_executor(executor, run, inputs)
            batcher = batchers[key] = Batcher(run, max_batch_size, batch_timeout_ms / 1000, executor)
        return await batcher.submit(inputs)

    async def _predict(entry: ModelVersion, signature: str, inputs) -> dict[str, np.ndarray]:
        """Run one signature on numpy inputs (batched); an image export's undecodable items -> RequestError."""
        outputs = await _call(entry, signature, inputs)
        if "valid" in outputs and not np.all(outputs["valid"]):  # image exports mark undecodable items
            bad = ", ".join(str(i) for i in np.flatnonzero(~np.asarray(outputs["valid"], bool)))
            raise RequestError(f"instance {bad}: the image bytes could not be decoded (not a JPEG, PNG, GIF "
                               "or BMP, or truncated); send the encoded file's bytes, base64 in {\"b64\": ...}")
        return outputs

    async def predict(name: str, inputs) -> dict[str, np.ndarray]:
        """`serving_default` of `name`'s latest version on numpy inputs: the demo page's way in.

        Raises:
            NotFound: no such model or no version available.
            RequestError: inputs the signature does not take.
        """
        return await _predict(repository.get(name), DEFAULT_SIGNATURE, inputs)

    app.state.predict = predict
    app.state.demo = None
    if demo is not False and (demo or importlib.util.find_spec("gradio") is not None):
        from zoo.server.demo import DEMO_PATH, mount_demo

        try:
            app.state.demo = mount_demo(app, repository, predict, DEMO_PATH)
        except ImportError as exc:  # installed but broken (e.g. a pillow it does not support): the API still serves
            if demo:
                raise
            print(f"zoo serve: no demo page, gradio does not import ({exc}); pip install 'zoo[demo]'", flush=True)

    @app.get("/")
    async def root():
        if app.state.demo is not None:
            return RedirectResponse("/demo/")
        return answer({"models": sorted(repository.bases),
                       "demo": "the demo page needs gradio: pip install 'zoo[demo]'",
                       "api": "/v1/models/NAME, /v1/models/NAME/metadata, POST /v1/models/NAME:predict"})

    return app


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say TCP; with proto 0
    # every keep-alive response waited ~40 ms for a delayed ACK between its header and body writes.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): pick another with --port "
                         "(or --host)") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _server(app, sock, log_level: str):
    import uvicorn

    config = uvicorn.Config(app, log_level=log_level, access_log=log_level == "info", lifespan="on",
                            timeout_keep_alive=30, backlog=2048)
    return uvicorn.Server(config)


def serve(paths: Sequence[str], *, host: str = "127.0.0.1", port: int = 8501, max_batch_size: int = 32,
          batch_timeout_ms: float = 0.0, poll_seconds: float = 1.0, log_level: str = "warning",
          demo: bool | None = None) -> int:
    """Serve the model directories `paths` until interrupted (the `zoo serve` command); returns 0.

    `demo`: the Gradio demo page at /demo (None: when gradio is installed; see `create_app`).

    Raises:
        ValueError: a path holds no versions, or the port cannot be used.
    """
    repository = ModelRepository(paths, poll_seconds=poll_seconds)
    sock = _bind(host, port)
    repository.start()
    try:
        app = create_app(repository, max_batch_size=max_batch_size, batch_timeout_ms=batch_timeout_ms, demo=demo)
    except BaseException:
        repository.stop()
        sock.close()
        raise
    shown = f"[{host}]" if ":" in host else host
    port = sock.getsockname()[1]
    for name in sorted(repository.bases):
        states = {e.version: e.state for e in repository.status(name)}
        print(f"zoo serve: {name} versions {states} at http://{shown}:{port}/v1/models/{name}", flush=True)
    batching = f"batching up to {max_batch_size} rows, {batch_timeout_ms:g} ms" if max_batch_size > 1 else "batching off"
    page = (f"demo page http://{shown}:{port}/demo/" if app.state.demo is not None else
            "no demo page (" + ("--no-demo" if demo is False else "pip install 'zoo[demo]' for one") + ")")
    print(f"zoo serve: {page} ({batching}; polling every {poll_seconds:g} s; Ctrl-C stops)", flush=True)
    try:
        _server(app, sock, log_level).run(sockets=[sock])
    finally:
        repository.stop()
        sock.close()
    return 0


class RunningServer:
    """A server on a background thread: `url`, `repository`, `app`; `stop()` ends it."""

    def __init__(self, paths, *, host="127.0.0.1", port=0, poll_seconds=0.2, log_level="warning", **options):
        self.repository = ModelRepository(paths, poll_seconds=poll_seconds).start()
        self.app = create_app(self.repository, **options)
        self._sock = _bind(host, port)
        self.url = f"http://{host}:{self._sock.getsockname()[1]}"
        self._server = _server(self.app, self._sock, log_level)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="zoo-serve-http", daemon=True)
        self._thread.start()
        for _ in range(600):  # up to 30 s for uvicorn's start-up
            if self._server.started or not self._thread.is_alive():
                break
            threading.Event().wait(0.05)
        if not self._server.started:
            self.stop()
            raise RuntimeError("the server did not start within 30 s")

    def stop(self, timeout: float = 30.0) -> None:
        """Stop serving and polling; waits for the HTTP thread."""
        self._server.should_exit = True
        self._thread.join(timeout)
        self.repository.stop()
        self._sock.close()


@contextlib.contextmanager
def running(paths: Sequence[str], **options) -> Iterator[RunningServer]:
    """`with running(paths, max_batch_size=8) as server: ... server.url ...` (127.0.0.1, a free port)."""
    server = RunningServer(paths, **options)
    try:
        yield server
    finally:
        server.stop()
