"""`zoo serve`: TF Serving's REST API over every family's export, version polling, bad requests, batching, load;
the Gradio demo page (its config and API here, a real browser in the slow test)."""

import asyncio
import base64
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tensorflow as tf

from serve_fixtures import EXPORTERS
from zoo.cli import main
from zoo.server import ModelRepository, running
from zoo.server.batching import Batcher

REPO = pathlib.Path(__file__).resolve().parents[1]
MODELS = {"image": "cifar10_cnn", "text": "imdb_bilstm_attention", "translation": "multi30k_transformer",
          "speech": "fsdd_ctc"}


def call(url, body=None, timeout=60):
    """GET (body None) or POST (dict -> JSON, bytes as is) -> (status, parsed JSON)."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def jpeg(seed, size=(32, 32)):
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    return tf.io.encode_jpeg(pixels).numpy()


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode("ascii")}


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """saved_models/<name>/1 for one tiny untrained model of every family (~15 s on 2 cores)."""
    base = tmp_path_factory.mktemp("served")
    return {family: export(base).parent for family, export in EXPORTERS.items()}


@pytest.fixture(scope="module")
def server(exports):
    with running([str(p) for p in exports.values()], max_batch_size=16, batch_timeout_ms=5) as s:
        yield s


@pytest.fixture(scope="module")
def direct(exports):
    """family -> the export's serving_default signature, loaded here (the reference the server must match)."""
    return {f: tf.saved_model.load(str(p / "1")).signatures["serving_default"] for f, p in exports.items()}


def _examples(family):
    """(raw inputs for a direct call, row-format instances, columnar inputs) for two examples."""
    if family == "image":
        images = [jpeg(1), jpeg(2, size=(40, 48))]
        return ({"image_bytes": tf.constant(images)}, [b64(x) for x in images], {"image_bytes": [b64(x) for x in images]})
    if family in ("text", "translation"):
        texts = ["A wonderful, moving film.", "Café — dull \U0001f600"]
        return {"text": tf.constant(texts)}, texts, {"text": texts}
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 1600)).astype(np.float32)
    lengths = np.array([1600, 900], np.int32)
    rows = [{"waveform": w.tolist(), "length": int(n)} for w, n in zip(wave, lengths)]
    return ({"waveform": tf.constant(wave), "length": tf.constant(lengths)}, rows,
            {"waveform": wave.tolist(), "length": lengths.tolist()})


def _assert_same(got, want):
    want = np.asarray(want)
    if want.dtype.kind in "SO":
        assert got == (np.vectorize(lambda x: x.decode("utf-8"), otypes=[object])(want).tolist() if want.ndim
                       else want.item().decode())
    else:
        np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want.astype(np.float64), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("family", list(MODELS))
def test_predict_in_both_formats_equals_the_savedmodel(server, direct, family):
    name = MODELS[family]
    raw, instances, columns = _examples(family)
    want = {k: v.numpy() for k, v in direct[family](**raw).items()}

    status, body = call(f"{server.url}/v1/models/{name}:predict", {"instances": instances})
    assert status == 200, body
    rows = body["predictions"]
    assert len(rows) == 2
    for key, value in want.items():
        got = [r[key] for r in rows] if len(want) > 1 else rows
        _assert_same(got, value)

    status, body = call(f"{server.url}/v1/models/{name}/versions/1:predict", {"inputs": columns})
    assert status == 200, body
    outputs = body["outputs"] if len(want) > 1 else {next(iter(want)): body["outputs"]}
    assert set(outputs) == set(want)
    for key, value in want.items():
        _assert_same(outputs[key], value)


def test_status_and_metadata_list_the_signature(server, exports):
    status, body = call(f"{server.url}/v1/models/cifar10_cnn")
    assert status == 200
    assert body == {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                              "status": {"error_code": "OK", "error_message": ""}}]}
    status, body = call(f"{server.url}/v1/models/fsdd_ctc/metadata")
    assert status == 200 and body["model_spec"] == {"name": "fsdd_ctc", "signature_name": "", "version": "1"}
    sig = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["method_name"] == "tensorflow/serving/predict"
    assert {k: v["dtype"] for k, v in sig["inputs"].items()} == {"waveform": "DT_FLOAT", "length": "DT_INT32"}
    assert [d["size"] for d in sig["inputs"]["waveform"]["tensor_shape"]["dim"]] == ["-1", "-1"]
    assert sig["outputs"]["transcript"]["dtype"] == "DT_STRING"
    status, body = call(f"{server.url}/v1/models/cifar10_cnn/versions/1/metadata")
    defs = body["metadata"]["signature_def"]["signature_def"]
    assert set(defs) == {"serving_default", "serve_pixels"}  # the SavedModel's own signatures, init op hidden
    assert defs["serving_default"]["inputs"]["image_bytes"]["dtype"] == "DT_STRING"


def test_another_signature_by_name(server, direct, exports):
    pixels = np.random.default_rng(3).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    status, body = call(f"{server.url}/v1/models/cifar10_cnn:predict",
                        {"signature_name": "serve_pixels", "instances": pixels.tolist()})
    assert status == 200, body
    fn = tf.saved_model.load(str(exports["image"] / "1")).signatures["serve_pixels"]
    np.testing.assert_allclose(body["predictions"], fn(image=tf.constant(pixels))["probabilities"].numpy(), atol=1e-6)


BAD = [
    ("malformed JSON", "cifar10_cnn", b'{"instances": [', 400, "malformed JSON"),
    ("not an object", "cifar10_cnn", b"[1, 2]", 400, "JSON object"),
    ("neither key", "cifar10_cnn", {"examples": []}, 400, "unknown key"),
    ("bad base64", "cifar10_cnn", {"instances": [{"b64": "@@not base64@@"}]}, 400, "invalid base64"),
    ("undecodable image", "cifar10_cnn", {"instances": [b64(b"GIF89a but not an image")]}, 400, "GIF"),
    ("wrong input name", "imdb_bilstm_attention", {"inputs": {"review": ["good"]}}, 400, "wrong input names"),
    ("wrong dtype, number for string", "imdb_bilstm_attention", {"instances": [3.5]}, 400, "takes strings"),
    ("wrong dtype, string for float", "fsdd_ctc", {"inputs": {"waveform": [["a"]], "length": [1]}}, 400, "float32"),
    ("fractional int", "fsdd_ctc", {"inputs": {"waveform": [[0.1, 0.2]], "length": [1.5]}}, 400, "integers"),
    ("ragged", "fsdd_ctc", {"inputs": {"waveform": [[0.1, 0.2], [0.3]], "length": [2, 1]}}, 400, "different lengths"),
    ("wrong rank", "imdb_bilstm_attention", {"inputs": {"text": "one string, not a list"}}, 400, "shape"),
    ("unknown signature", "cifar10_cnn", {"signature_name": "nope", "instances": [b64(jpeg(0))]}, 400, "nope"),
    ("unknown model", "resnet_nope", {"instances": [1]}, 404, "resnet_nope"),
    ("unknown version", "cifar10_cnn/versions/9", {"instances": [b64(jpeg(0))]}, 404, "9"),
]


@pytest.mark.parametrize("what,model,body,code,words", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_a_clear_error_and_the_server_keeps_answering(server, what, model, body, code, words):
    status, answer = call(f"{server.url}/v1/models/{model}:predict", body)
    assert status == code and set(answer) == {"error"}, answer
    assert words in answer["error"]
    status, answer = call(f"{server.url}/v1/models/cifar10_cnn:predict", {"instances": [b64(jpeg(5))]})
    assert status == 200 and len(answer["predictions"][0]["probabilities"]) == 10


def test_empty_batches(server):
    status, body = call(f"{server.url}/v1/models/imdb_bilstm_attention:predict", {"inputs": {"text": []}})
    assert status == 200 and body == {"outputs": {"probability": [], "probabilities": [], "label": [], "tokens": [],
                                                  "attention": []}}
    assert call(f"{server.url}/v1/models/imdb_bilstm_attention:predict", {"instances": []})[0] == 400


def test_unknown_routes_and_verbs_are_json_errors(server):
    assert call(f"{server.url}/v1/models/cifar10_cnn/labels/stable")[0] == 404
    status, body = call(f"{server.url}/v1/models/cifar10_cnn:classify", {"examples": []})
    assert status == 400 and ":predict only" in body["error"]
    status, body = call(f"{server.url}/v2/whatever")
    assert status == 404 and "error" in body


def test_load_200_concurrent_requests_with_10_percent_malformed(server, direct):
    n = 200
    bad = set(range(0, n, 10))  # 20 malformed: bad base64, broken JSON, undecodable bytes, wrong names in turn
    images = {i: jpeg(100 + i) for i in range(n) if i not in bad}
    want = direct["image"](image_bytes=tf.constant([images[i] for i in sorted(images)]))["probabilities"].numpy()
    want = dict(zip(sorted(images), want))
    kinds = [{"instances": [{"b64": "%%%"}]}, b'{"instances": [{"b64": ', {"instances": [b64(b"\x00" * 50)]},
             {"inputs": {"image": [b64(jpeg(0))]}}]
    barrier = threading.Barrier(50, timeout=60)

    def one(i):
        if i < 50:
            barrier.wait()  # the first 50 leave together; the rest follow as threads free up
        body = kinds[(i // 10) % 4] if i in bad else {"instances": [b64(images[i])]}
        return i, *call(f"{server.url}/v1/models/cifar10_cnn:predict", body, timeout=120)

    batchers_before = sum(b.calls for b in server.app.state.batchers.values())
    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(one, range(n)))
    assert sorted(i for i, *_ in results) == list(range(n))  # none lost
    for i, status, body in results:
        if i in bad:
            assert status == 400 and "error" in body, (i, status, body)
        else:
            assert status == 200, (i, body)
            np.testing.assert_allclose(body["predictions"][0]["probabilities"], want[i], atol=1e-5)
    joined = sum(b.calls for b in server.app.state.batchers.values()) - batchers_before
    assert 0 < joined < len(images)  # requests were batched, and not each alone


def test_new_version_is_picked_up_while_serving(tmp_path):
    import keras

    first = EXPORTERS["image"](tmp_path)
    with running([str(first.parent)], poll_seconds=0.1) as s:
        url = f"{s.url}/v1/models/cifar10_cnn"
        body = {"instances": [b64(jpeg(7))]}
        v1 = call(url + ":predict", body)[1]["predictions"][0]["probabilities"]
        keras.utils.set_random_seed(1)  # different weights, so the answers tell the versions apart
        second = EXPORTERS["image"](tmp_path)
        assert second.name == "2"
        s.repository.wait_for("cifar10_cnn", 2, timeout=60)
        status, state = call(url)
        assert [v["version"] for v in state["model_version_status"]] == ["2", "1"]
        latest = call(url + ":predict", body)[1]["predictions"][0]["probabilities"]
        want = tf.saved_model.load(str(second)).signatures["serving_default"](
            image_bytes=tf.constant([jpeg(7)]))["probabilities"].numpy()[0]
        np.testing.assert_allclose(latest, want, atol=1e-6)
        assert not np.allclose(latest, v1, atol=1e-4)
        np.testing.assert_allclose(call(url + "/versions/1:predict", body)[1]["predictions"][0]["probabilities"], v1)
        shutil.rmtree(first)  # a removed version is unloaded
        for _ in range(100):
            if call(url + "/versions/1:predict", body)[0] == 404:
                break
            time.sleep(0.1)
        assert call(url + "/versions/1:predict", body)[0] == 404
        assert call(url + ":predict", body)[0] == 200


def test_batcher_joins_splits_and_isolates_a_failing_request():
    calls = []

    def run(inputs):
        x = inputs["x"]
        calls.append(len(x))
        if (x < 0).any():
            raise ValueError("negative input")
        return {"y": x * 2, "n": np.full(len(x), len(x))}

    async def scenario():
        with ThreadPoolExecutor(2) as pool:
            batcher = Batcher(run, max_batch_size=8, timeout=0.2, executor=pool)
            sizes = [1, 2, 3, 1]
            jobs = [batcher.submit({"x": np.arange(k, dtype=np.float32) + 10 * i}) for i, k in enumerate(sizes)]
            jobs.append(batcher.submit({"x": np.array([-1.0], np.float32)}))
            results = await asyncio.gather(*jobs, return_exceptions=True)
            batcher.close()
            return sizes, results

    sizes, results = asyncio.run(scenario())
    for i, (k, r) in enumerate(zip(sizes, results)):
        np.testing.assert_array_equal(r["y"], (np.arange(k) + 10 * i) * 2)
    assert isinstance(results[-1], ValueError)
    assert calls[0] == sum(sizes) + 1  # all five joined into one call first; it failed ...
    assert sorted(calls[1:]) == sorted([*sizes, 1])  # ... so each ran alone and only the bad one failed


def test_closing_a_batcher_answers_what_is_queued():
    """An unloaded version closes its batcher while requests wait in it: they are answered, not dropped."""
    async def scenario():
        with ThreadPoolExecutor(2) as pool:
            batcher = Batcher(lambda d: {"y": d["x"] + 1}, max_batch_size=4, timeout=0.5, executor=pool)
            jobs = [asyncio.ensure_future(batcher.submit({"x": np.full(1, i)})) for i in range(6)]
            await asyncio.sleep(0)  # the requests are queued
            batcher.close()
            late = await asyncio.wait_for(batcher.submit({"x": np.full(2, 9)}), 10)
            return await asyncio.wait_for(asyncio.gather(*jobs), 10), late

    results, late = asyncio.run(scenario())
    assert [int(r["y"][0]) for r in results] == [1, 2, 3, 4, 5, 6] and late["y"].tolist() == [10, 10]


def test_serve_refuses_paths_without_versions(tmp_path, capsys, exports):
    empty = tmp_path / "saved_models" / "nothing"
    empty.mkdir(parents=True)
    assert main(["serve", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "holds no versions" in err and "zoo export" in err and len(err.strip().splitlines()) == 1
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert main(["serve", str(exports["image"] / "1")]) == 2
    assert "is a version directory; pass the model directory" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        assert main(["serve", str(exports["image"]), "--port", str(busy.getsockname()[1]), "--poll-seconds", "0"]) == 2
    assert "pick another with --port" in capsys.readouterr().err


def test_serve_without_the_serve_extra_says_what_to_install(monkeypatch, capsys, exports):
    for name in [m for m in sys.modules if m == "zoo.server" or m.startswith("zoo.server.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if FastAPI were not installed
    assert main(["serve", str(exports["image"])]) == 2
    assert "pip install 'zoo[serve]'" in capsys.readouterr().err


def test_zoo_serve_command_serves_without_model_code(exports, tmp_path):
    """`zoo serve` in its own process, with `applications` unimportable: status, predict, demo page."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = ("import sys; sys.modules['applications'] = None\n"
            "from zoo.cli import main\n"
            f"sys.exit(main(['serve', {str(exports['text'])!r}, '--port', '{port}', '--max-batch-size', '1']))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                status, _ = call(url + "/v1/models/imdb_bilstm_attention", timeout=2)
                break
            except (urllib.error.URLError, OSError):  # not listening yet, or still loading the model
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.1)
        status, body = call(url + "/v1/models/imdb_bilstm_attention:predict", {"instances": ["superb"]})
        assert status == 200 and body["predictions"][0]["label"] in ("neg", "pos")
        with urllib.request.urlopen(url + "/", timeout=30) as r:  # redirected to the Gradio page
            assert r.url == url + "/demo/" and "<html" in r.read().decode().lower()
        assert _tabs(call(url + "/demo/config")[1]) == {"imdb_bilstm_attention": ("textbox", "label")}
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert f"http://127.0.0.1:{port}/v1/models/imdb_bilstm_attention" in out and "batching off" in out
    assert f"demo page http://127.0.0.1:{port}/demo/" in out


def test_repository_reports_a_broken_version_and_keeps_the_others(exports, tmp_path):
    base = tmp_path / "cifar10_cnn"
    shutil.copytree(exports["image"] / "1", base / "1")
    (base / "2").mkdir()
    (base / "2" / "saved_model.pb").write_bytes(b"not a protobuf")
    repo = ModelRepository([str(base)], poll_seconds=0).start()
    states = {e.version: (e.state, e.error) for e in repo.status("cifar10_cnn")}
    assert states[1] == ("AVAILABLE", "") and states[2][0] == "END" and states[2][1]
    assert repo.get("cifar10_cnn").version == 1  # the default is the highest version that loaded


# -- the Gradio demo page


def _tabs(config) -> dict[str, tuple[str, str]]:
    """Gradio config -> {tab label: (input widget type, output widget type)} (widgets found by elem_id)."""
    by_id = {c["props"].get("elem_id"): c["type"] for c in config["components"] if c.get("props")}
    labels = [c["props"]["label"] for c in config["components"] if c["type"] == "tabitem"]
    return {n: (by_id.get(f"{n}-input"), by_id.get(f"{n}-output")) for n in labels}


def gradio_call(url, api_name, data, timeout=60):
    """Call a demo endpoint through Gradio's HTTP API -> ("complete", outputs) or ("error", message)."""
    status, event = call(f"{url}/demo/gradio_api/call/{api_name}", {"data": data})
    assert status == 200, event
    with urllib.request.urlopen(f"{url}/demo/gradio_api/call/{api_name}/{event['event_id']}", timeout=timeout) as r:
        lines = r.read().decode().splitlines()
    kind = [ln.removeprefix("event: ") for ln in lines if ln.startswith("event: ")][-1]
    payload = json.loads([ln.removeprefix("data: ") for ln in lines if ln.startswith("data: ")][-1])
    return kind, payload["error"] if kind == "error" and isinstance(payload, dict) else payload


def gradio_upload(url, name, data: bytes) -> dict:
    """Upload a file to the demo as the browser does -> the FileData an endpoint takes."""
    boundary = "zooserveboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(f"{url}/demo/gradio_api/upload", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        path = json.loads(r.read())[0]
    return {"path": path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def test_demo_page_is_gradio_with_one_tab_per_model_offline(server):
    import gradio

    with urllib.request.urlopen(server.url + "/", timeout=30) as r:
        assert r.url == server.url + "/demo/"
        html = r.read().decode()
    assert server.app.user_middleware == []  # mounting Gradio leaves the REST routes' path as it was
    config = call(server.url + "/demo/config")[1]
    assert config["analytics_enabled"] is False and config["version"] == gradio.__version__
    assert _tabs(config) == {"cifar10_cnn": ("image", "label"), "fsdd_ctc": ("audio", "textbox"),
                             "imdb_bilstm_attention": ("textbox", "label"),
                             "multi30k_transformer": ("textbox", "textbox")}
    assert "imdb_bilstm_attention-attention" in {c["props"].get("elem_id") for c in config["components"]}
    apis = {d["api_name"] for d in config["dependencies"] if d.get("api_visibility", "public") == "public"}
    assert apis == {"cifar10_cnn_classify", "fsdd_ctc_transcribe", "imdb_bilstm_attention_classify",
                    "multi30k_transformer_translate"}
    # the frontend is the installed wheel's, and the page names no other host
    import re

    scripts = re.findall(r'src="[^"]*?/assets/([^"/]+\.js)"', html)
    assert scripts and all((pathlib.Path(gradio.__file__).parent / "templates/frontend/assets" / s).is_file()
                           for s in scripts)
    assert not re.findall(r'(?:src|href)="(?:https?:)?//(?!127\.0\.0\.1)', html)


def test_demo_calls_the_rest_apis_predict_path(server, direct):
    """The demo's text and image tabs answer as the SavedModel does, through the server's batchers."""
    review = "A wonderful, superb film zzz"
    assert call(f"{server.url}/v1/models/imdb_bilstm_attention:predict", {"instances": [review]})[0] == 200
    batcher = server.app.state.batchers[("imdb_bilstm_attention", 1, "serving_default")]
    seen, run = [], batcher.run
    batcher.run = lambda inputs: seen.append(inputs) or run(inputs)
    try:
        kind, (sentiment, spans) = gradio_call(server.url, "imdb_bilstm_attention_classify", [review])
    finally:
        batcher.run = run
    assert kind == "complete" and [list(x["text"]) for x in seen] == [[review.encode()]]  # the same batcher
    want = {k: v.numpy()[0] for k, v in direct["text"](text=tf.constant([review])).items()}
    confidences = {c["label"]: c["confidence"] for c in sentiment["confidences"]}
    np.testing.assert_allclose([confidences["negative"], confidences["positive"]], want["probabilities"], atol=1e-6)
    assert sentiment["label"] == {"neg": "negative", "pos": "positive"}[want["label"].decode()]
    words = [s["token"] for s in spans if s["class_or_confidence"] is not None]
    assert words == ["a", "wonderful", "superb", "film", "[UNK]"]  # "zzz" is not in the vocabulary
    weights = [s["class_or_confidence"] for s in spans if s["class_or_confidence"] is not None]
    np.testing.assert_allclose(weights, want["attention"][:5] / want["attention"].max(), atol=1e-3)

    kind, message = gradio_call(server.url, "imdb_bilstm_attention_classify", ["   "])
    assert kind == "error" and message == "type a review first"

    image = jpeg(11)
    kind, (top,) = gradio_call(server.url, "cifar10_cnn_classify", [gradio_upload(server.url, "x.jpg", image)])
    assert kind == "complete", top
    want = direct["image"](image_bytes=tf.constant([image]))
    assert top["label"] == want["label"].numpy()[0].decode() and len(top["confidences"]) == 5
    assert max(c["confidence"] for c in top["confidences"]) == pytest.approx(float(want["probabilities"][0].numpy().max()))
    # bad files: one line each, and the server goes on
    kind, message = gradio_call(server.url, "cifar10_cnn_classify", [gradio_upload(server.url, "x.jpg", b"GIF89a no")])
    assert (kind, message) == ("error", "the model could not decode this file: upload a JPEG, PNG, GIF or BMP image")
    kind, message = gradio_call(server.url, "fsdd_ctc_transcribe", [gradio_upload(server.url, "x.wav", b"RIFF junk")])
    assert kind == "error" and message.startswith("could not read the audio (") and "\n" not in message
    assert "/tmp" not in message and message.endswith("upload a WAV file")
    assert call(f"{server.url}/v1/models/cifar10_cnn:predict", {"instances": [b64(image)]})[0] == 200


def test_rest_api_alone_without_the_demo(server):
    from fastapi.testclient import TestClient

    from zoo.server import create_app

    client = TestClient(create_app(server.repository, demo=False))
    answer = client.get("/").json()
    assert answer["models"] == sorted(MODELS.values()) and "zoo[demo]" in answer["demo"]
    assert client.get("/demo/").status_code == 404


def test_attention_outputs_come_from_the_models_own_pass():
    """The export's extra pass gives the model's logits and `attention_weights`' weights, padding at 0."""
    import zoo
    from applications.text.models import attention_weights, logits_and_attention

    model = zoo.create_model("imdb_bilstm_attention", vocabulary_size=30, embedding_dim=8, units=4, dropout=0.4,
                             embedding_dropout=0.2)
    tokens = np.array([[5, 7, 9, 0, 0], [3, 0, 0, 0, 0], [0, 0, 0, 0, 0]], np.int32)
    logits, weights = logits_and_attention(model)(tf.constant(tokens))
    np.testing.assert_allclose(logits, model(tokens, training=False), atol=1e-6)
    np.testing.assert_allclose(weights, attention_weights(model, tokens), atol=1e-6)
    np.testing.assert_allclose(np.sum(weights, axis=1), [1, 1, 0], atol=1e-6)
    assert np.all(np.asarray(weights)[tokens == 0] == 0)


def test_generation_tab_sends_what_the_gpt_signature_takes():
    """The GPT tab's inputs match GenerationServing's signature (dtypes, scalar shapes), without a GPT export."""
    import types

    from applications.gpt.serving import GenerationServing
    from zoo.server.codec import Spec
    from zoo.server.demo import build_demo, demo_kind
    from zoo.server.repository import ModelVersion

    signature = GenerationServing(None, None, {}).input_signature
    entry = ModelVersion("gpt_tiny", 1, pathlib.Path("."), state="AVAILABLE",
                         signatures={"serving_default": types.SimpleNamespace(
                             structured_outputs={"generated": None, "text": None, "truncated": None})},
                         inputs={"serving_default": {s.name: Spec.from_tensor_spec(s.name, s) for s in signature}})
    assert demo_kind(entry) == "generation"
    sent = []

    async def predict(name, inputs):
        sent.append((name, inputs))
        return {"generated": np.array([[b" and then some"]], dtype=object)}

    repository = types.SimpleNamespace(bases={"gpt_tiny": None}, get=lambda name, version=None: entry)
    demo = build_demo(repository, predict)
    fn = next(f.fn for f in demo.fns.values() if f.api_name == "gpt_tiny_generate")
    assert asyncio.run(fn("This movie", "beam", 20, 0.7, 3)) == " and then some"
    (name, inputs), = sent
    assert name == "gpt_tiny" and set(inputs) == {s.name for s in signature}
    for s in signature:  # each value converts to the signature's dtype and shape, as TensorFlow will check
        tf.debugging.assert_type(tf.constant(inputs[s.name], dtype=s.dtype), s.dtype)
        assert s.shape.is_compatible_with(np.shape(inputs[s.name])), (s.name, np.shape(inputs[s.name]))
    assert inputs["sampler"].item() == b"beam" and inputs["max_length"] == 20 and inputs["seed"] == 3


def test_resample_keeps_a_tone_and_removes_what_the_new_rate_cannot_hold():
    from zoo.server.demo import resample

    rate, t = 48000, np.arange(48000) / 48000
    low = resample(np.sin(2 * np.pi * 1000 * t), rate, 8000)
    assert low.shape == (8000,) and low.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(low))
    assert abs(int(np.argmax(spectrum)) - 1000) <= 1  # 1 kHz stays at 1 kHz (1 Hz bins)
    assert np.std(low[100:-100]) == pytest.approx(np.sqrt(0.5), rel=0.02)
    high = resample(np.sin(2 * np.pi * 6000 * t), rate, 8000)  # above the 4 kHz Nyquist: would alias to 2 kHz
    assert np.std(high[100:-100]) < 0.02
    np.testing.assert_array_equal(resample(low, 8000, 8000), low)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.mark.slow  # 10-45 s on 2 shared cores (a browser, the Gradio frontend, five widget runs): `make slow`
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium); "
                                             "this test drives the system browser and never downloads one")
def test_demo_page_in_headless_chromium(server, direct, tiny_cifar, tmp_path):
    """On the Gradio page: upload a CIFAR test JPEG -> its label and top 5; type a review -> its sentiment and the
    attention over its words; translate; transcribe a WAV, then chromium's fake microphone (a beeping tone at 48 kHz,
    resampled).  The page asks no host but the server."""
    import tarfile

    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    with tarfile.open(tiny_cifar / "cifar10-jpeg.tar.gz") as tar:
        image = tar.extractfile("cifar10/test/cat/0000.jpg").read()
    (tmp_path / "cat.jpg").write_bytes(image)
    want_label = direct["image"](image_bytes=tf.constant([image]))["label"].numpy()[0].decode()
    from speech_fixtures import tone
    from serve_fixtures import EN
    from applications.speech.data import DIGIT_WORDS, encode_wav

    (tmp_path / "five.wav").write_bytes(encode_wav(tone(5, seconds=0.3)))
    want_german = direct["translation"](text=tf.constant([EN[0]]))["translation"].numpy()[0].decode()
    review = "A wonderful, superb and moving film."
    want = direct["text"](text=tf.constant([review]))
    want_sentiment = {"pos": "positive", "neg": "negative"}[want["label"].numpy()[0].decode()]
    want_words = [w.decode() for w in want["tokens"].numpy()[0] if w]

    elsewhere = []  # requests to any other host: none may leave (the machines have no internet anyway)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            *CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
        try:
            page = browser.new_context(permissions=["microphone"]).new_page()
            page.set_default_timeout(60_000)
            page.on("request", lambda r: None if r.url.startswith((server.url, "data:", "blob:"))
                    else elsewhere.append(r.url))
            page.goto(server.url + "/")
            assert page.url == server.url + "/demo/"
            page.wait_for_selector("[role=tab]")
            assert page.get_by_role("tab").all_inner_texts() == sorted(MODELS.values())

            page.get_by_role("tab", name="cifar10_cnn").click()
            page.set_input_files("#cifar10_cnn-input input[type=file]", str(tmp_path / "cat.jpg"))  # runs on upload
            top = "#cifar10_cnn-output [data-testid=label-output-value]"
            page.wait_for_selector(top)
            assert page.inner_text(top) == want_label
            assert page.locator("#cifar10_cnn-output .confidence-set").count() == 5

            page.get_by_role("tab", name="imdb_bilstm_attention").click()
            page.fill("#imdb_bilstm_attention-input textarea", review)
            page.click("#imdb_bilstm_attention-run")
            label = "#imdb_bilstm_attention-output [data-testid=label-output-value]"
            page.wait_for_selector(label)
            assert page.inner_text(label) == want_sentiment
            page.wait_for_selector("#imdb_bilstm_attention-attention .token.highlighted")
            shown = page.locator("#imdb_bilstm_attention-attention .token.highlighted").all_inner_texts()
            assert [w.strip() for w in shown] == want_words

            page.get_by_role("tab", name="multi30k_transformer").click()
            page.fill("#multi30k_transformer-input textarea", EN[0])
            page.click("#multi30k_transformer-run")
            # a tiny untrained translator may answer "": wait for exactly the SavedModel's answer
            page.wait_for_function("want => document.querySelector('#multi30k_transformer-output textarea')?.value === want"
                                   " && !document.querySelector('#multi30k_transformer-output .pending')", arg=want_german)

            page.get_by_role("tab", name="fsdd_ctc").click()
            page.set_input_files("#fsdd_ctc-input input[type=file]", str(tmp_path / "five.wav"))  # runs on upload
            page.wait_for_function("() => document.querySelector('#fsdd_ctc-output textarea')?.value")
            words = page.input_value("#fsdd_ctc-output textarea")
            assert words == "(silence)" or set(words.split()) <= set(DIGIT_WORDS), words

            # the fake microphone: watch the server's batcher for the recording, then see its answer on the page
            batcher = server.app.state.batchers[("fsdd_ctc", 1, "serving_default")]
            heard, run = [], batcher.run
            batcher.run = lambda inputs: heard.append((inputs, out := run(inputs))) or out
            try:
                page.click("#fsdd_ctc-input button[aria-label='Clear']")
                page.click("#fsdd_ctc-input button[aria-label='Record audio']")
                page.click("#fsdd_ctc-input button:has-text('Record')")
                page.wait_for_timeout(1500)
                page.locator("#fsdd_ctc-input button:has-text('Stop')").first.click()  # transcribes on stop
                for _ in range(600):
                    if heard:
                        break
                    time.sleep(0.1)
            finally:
                batcher.run = run
            (inputs, outputs), = heard
            seconds = inputs["waveform"].shape[1] / 8000  # resampled from the microphone's rate to the card's
            assert 0.5 < seconds < 10 and inputs["length"].tolist() == [inputs["waveform"].shape[1]]
            want_words = outputs["transcript"][0].decode().strip() or "(silence)"
            page.wait_for_function("want => document.querySelector('#fsdd_ctc-output textarea')?.value === want",
                                   arg=want_words)
        finally:
            browser.close()
    assert elsewhere == []
