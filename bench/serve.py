"""Serving benchmark: requests/s and p50/p99 latency of `zoo serve` on the CIFAR export.

    ZOO_DATA_DIR=../shared/data .venv/bin/python bench/serve.py --seconds 4 --repeats 3

One run measures, at concurrency 1, 8 and 32 (one row format request of one
CIFAR-10 test JPEG each, persistent HTTP connections, one client thread per
concurrent request):

- `zoo serve` with batching and a 5 ms window (`--max-batch-size 32 --batch-timeout-ms 5`),
- the same with a 0 ms window, the default (a batch takes what queued while the previous one ran),
- `zoo serve` without batching (`--max-batch-size 1`),
- the ceiling: the same client threads calling the SavedModel's
  `signatures["serving_default"]` in-process (no HTTP, JSON or batching).

Each server runs in its own process (its own GIL); the client shares the
machine's cores with it.  The export is `--model-dir` (default
`saved_models/cifar10_cnn`); when it is missing, an untrained `cifar10_cnn`
with the default architecture is exported to a temporary directory (the same
computation as a trained one).  The settings are measured in turn, `--repeats`
times, so that load from other processes falls on all alike; the table shows
the median of the repeats.  Writes `bench/results/serve.json`.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import pathlib
import platform
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from zoo.io import write_json  # noqa: E402


def cifar_jpegs(n: int) -> list[bytes]:
    """`n` CIFAR-10 test JPEGs from the offline archive (ZOO_DATA_DIR), else synthetic 32x32 JPEGs."""
    data_dir = os.environ.get("ZOO_DATA_DIR")
    archive = pathlib.Path(data_dir or "/nonexistent") / "cifar10-jpeg.tar.gz"
    if archive.is_file():
        out = []
        with tarfile.open(archive) as tar:
            for member in tar:
                if member.name.startswith("cifar10/test/") and member.name.endswith(".jpg"):
                    out.append(tar.extractfile(member).read())
                    if len(out) == n:
                        return out
    import tensorflow as tf

    rng = np.random.default_rng(0)
    return [tf.io.encode_jpeg(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).numpy() for _ in range(n)]


def model_dir(arg: str | None) -> tuple[pathlib.Path, str]:
    """The export to serve: `arg`, else saved_models/cifar10_cnn, else an untrained cifar10_cnn exported now."""
    path = pathlib.Path(arg or "saved_models/cifar10_cnn")
    if any(p.name.isdigit() for p in path.glob("*")):
        return path.resolve(), str(path)
    if arg:
        raise SystemExit(f"{arg} holds no exported versions: export one with `zoo export cifar10_cnn --run-dir RUN`")
    import zoo
    from applications.image.data import CIFAR10_CLASSES

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="zoo-bench-serve-"))
    out = zoo.export_model(zoo.create_model("cifar10_cnn"), name="cifar10_cnn", base_dir=tmp, verify=False,
                           info={"class_names": list(CIFAR10_CLASSES)})
    return out.parent, "untrained cifar10_cnn (default architecture), exported for this run"


def measure(worker, concurrency: int, seconds: float, warmup: float) -> dict:
    """Run `worker(thread_index) -> callable` per thread in a closed loop; latency percentiles and throughput."""
    stop = threading.Event()
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    start_at = time.perf_counter() + warmup

    def loop(i):
        request = worker(i)
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                request()
            except Exception:  # noqa: BLE001 - counted, reported
                errors[i] += 1
                continue
            t1 = time.perf_counter()
            if t0 >= start_at:
                latencies[i].append(t1 - t0)

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    time.sleep(warmup + seconds)
    stop.set()
    for t in threads:
        t.join(60)
    lat = np.array([x for per in latencies for x in per])
    return {"concurrency": concurrency, "requests": int(lat.size), "errors": int(sum(errors)),
            "requests_per_s": round(lat.size / seconds, 1),
            "p50_ms": round(float(np.percentile(lat, 50)) * 1e3, 2) if lat.size else None,
            "p99_ms": round(float(np.percentile(lat, 99)) * 1e3, 2) if lat.size else None}


def http_worker(port: int, bodies: list[bytes], name: str):
    """Per client thread: a keep-alive connection and a call that POSTs the next body to `:predict`."""
    def make(i):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.connect()  # Nagle off, as curl and most HTTP clients do (else a body sent after its headers waits)
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        k = [i]

        def request():
            body = bodies[k[0] % len(bodies)]
            k[0] += 1
            conn.request("POST", f"/v1/models/{name}:predict", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            data = response.read()
            if response.status != 200:
                raise RuntimeError(data[:200])
        return request
    return make


def start_server(path: pathlib.Path, max_batch_size: int, window_ms: float) -> tuple[subprocess.Popen, int]:
    """`zoo serve path` in its own process on a free port; returns once the model answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen([sys.executable, "-m", "zoo.cli", "serve", str(path), "--port", str(port),
                             "--max-batch-size", str(max_batch_size), "--batch-timeout-ms", str(window_ms)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", f"/v1/models/{path.name}")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            if proc.poll() is not None:
                raise SystemExit("the server exited during start-up")
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start within 120 s")


def main(argv=None) -> int:
    """Measure every setting at every concurrency, print the table, write the JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model-dir", help="model directory of versions (default saved_models/cifar10_cnn, else untrained)")
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per setting")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--repeats", type=int, default=2, help="interleaved repeats per setting (the table shows medians)")
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "serve.json"))
    args = p.parse_args(argv)

    import tensorflow as tf

    path, what = model_dir(args.model_dir)
    images = cifar_jpegs(64)
    bodies = [json.dumps({"instances": [{"b64": base64.b64encode(x).decode()}]}).encode() for x in images]
    version = max(int(v.name) for v in path.iterdir() if v.name.isdigit())
    fn = tf.saved_model.load(str(path / str(version))).signatures["serving_default"]

    def in_process(i):
        k = [i]

        def request():
            fn(image_bytes=tf.constant([images[k[0] % len(images)]]))["probabilities"].numpy()
            k[0] += 1
        return request

    settings = [("in-process signature (ceiling)", None, None),
                ("zoo serve, batching on (max 32, 5 ms)", 32, 5),
                ("zoo serve, batching on (max 32, 0 ms)", 32, 0),
                ("zoo serve, batching off", 1, 0)]
    servers = {}
    try:
        for label, size, window in settings:
            if size is not None:
                servers[label] = start_server(path, size, window)
        raw = []
        # interleaved: each repeat measures every setting once, so drifting load from other
        # processes on a shared machine falls on all settings alike; the table shows medians
        for c in args.concurrency:
            for r in range(args.repeats):
                for label, size, _ in settings:
                    worker = in_process if size is None else http_worker(servers[label][1], bodies, path.name)
                    raw.append({"setting": label, "repeat": r, **measure(worker, c, args.seconds, args.warmup)})
                    print(raw[-1], flush=True)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(30)
    rows = []
    for c in args.concurrency:
        for label, *_ in settings:
            runs = [x for x in raw if x["setting"] == label and x["concurrency"] == c]
            med = {k: round(float(np.median(v)), 2) if (v := [x[k] for x in runs if x[k] is not None]) else None
                   for k in ("requests_per_s", "p50_ms", "p99_ms")}
            rows.append({"setting": label, "concurrency": c, **med,
                         "errors": sum(x["errors"] for x in runs), "repeats": len(runs)})

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
               platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    result = {"model": what, "cpu": cpu, "cores": os.cpu_count(), "seconds": args.seconds,
              "repeats": args.repeats, "load_average_after": os.getloadavg(), "date": time.strftime("%Y-%m-%d"),
              "rows": rows, "raw": raw}
    write_json(args.out, result)
    print(f"\n{what}; {cpu}, {os.cpu_count()} cores\n")
    print("| setting | concurrency | requests/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['setting']} | {r['concurrency']} | {r['requests_per_s']} | {r['p50_ms']} | {r['p99_ms']} | {r['errors']} |")
    print(f"\nwrote {args.out}")
    if args.model_dir is None and path.parent.name.startswith("zoo-bench-serve-"):
        shutil.rmtree(path.parent, ignore_errors=True)  # the untrained export made for this run
    return 0


if __name__ == "__main__":
    sys.exit(main())
