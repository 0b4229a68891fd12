"""`zoo serve`: TF Serving's REST API over every family's export, version polling, bad requests, batching, load."""

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
        assert got == [x.decode("utf-8") for x in want.reshape(-1)] if want.ndim else got == want.item().decode()
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
    assert status == 200 and body == {"outputs": {"probability": [], "probabilities": [], "label": []}}
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
        with urllib.request.urlopen(url + "/", timeout=10) as r:
            assert "zoo serve" in r.read().decode()
        assert call(url + "/demo/models")[1]["models"][0]["modality"] == "text"
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert f"http://127.0.0.1:{port}/v1/models/imdb_bilstm_attention" in out and "batching off" in out


def test_repository_reports_a_broken_version_and_keeps_the_others(exports, tmp_path):
    base = tmp_path / "cifar10_cnn"
    shutil.copytree(exports["image"] / "1", base / "1")
    (base / "2").mkdir()
    (base / "2" / "saved_model.pb").write_bytes(b"not a protobuf")
    repo = ModelRepository([str(base)], poll_seconds=0).start()
    states = {e.version: (e.state, e.error) for e in repo.status("cifar10_cnn")}
    assert states[1] == ("AVAILABLE", "") and states[2][0] == "END" and states[2][1]
    assert repo.get("cifar10_cnn").version == 1  # the default is the highest version that loaded


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.mark.slow  # 4-10 s on 2 shared cores (a browser start, four widgets): `make slow`
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium); "
                                             "this test drives the system browser and never downloads one")
def test_demo_page_in_headless_chromium(server, direct, tiny_cifar, tmp_path):
    """Upload a CIFAR test JPEG -> its label and top 5; type a review -> its sentiment; translate; transcribe a WAV."""
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
    want_sentiment = {"pos": "positive", "neg": "negative"}[
        direct["text"](text=tf.constant([review]))["label"].numpy()[0].decode()]

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            page.goto(server.url + "/")
            assert page.locator("nav button").all_inner_texts() == sorted(MODELS.values())
            page.click("nav button[data-model=cifar10_cnn]")
            page.set_input_files("#panel-cifar10_cnn input.upload", str(tmp_path / "cat.jpg"))
            page.wait_for_selector("#panel-cifar10_cnn .result .label b")
            assert page.inner_text("#panel-cifar10_cnn .result .label b") == want_label
            assert page.locator("#panel-cifar10_cnn .result table.top tr").count() == 5

            page.click("nav button[data-model=imdb_bilstm_attention]")
            page.fill("#panel-imdb_bilstm_attention textarea", review)
            page.click("#panel-imdb_bilstm_attention button.go")
            page.wait_for_selector("#panel-imdb_bilstm_attention .result b.label")
            assert page.inner_text("#panel-imdb_bilstm_attention .result b.label") == want_sentiment

            # the other two widgets: English -> German, and a WAV decoded and resampled by the browser
            page.click("nav button[data-model=multi30k_transformer]")
            page.fill("#panel-multi30k_transformer textarea", EN[0])
            page.click("#panel-multi30k_transformer button.go")
            # attached, not visible: a tiny untrained translator may answer "" (an empty, zero-size span)
            page.wait_for_selector("#panel-multi30k_transformer .result span.label", state="attached")
            assert page.inner_text("#panel-multi30k_transformer .result span.label") == want_german
            page.click("nav button[data-model=fsdd_ctc]")
            page.set_input_files("#panel-fsdd_ctc input.upload", str(tmp_path / "five.wav"))
            page.wait_for_selector("#panel-fsdd_ctc .result b.label")
            words = page.inner_text("#panel-fsdd_ctc .result b.label")
            assert words == "(silence)" or set(words.split()) <= set(DIGIT_WORDS), words
        finally:
            browser.close()
