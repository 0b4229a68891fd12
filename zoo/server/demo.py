"""The demo page: a Gradio app mounted into `zoo serve`'s FastAPI app at `/demo`, one tab per served model.

Each tab has the widgets its model's signature needs (`demo_kind`):

| kind | signature | widgets |
|---|---|---|
| image | one `*_bytes` string input, `probabilities` out | image upload -> top-5 labels (`gr.Label`) |
| text | `text` in, `probabilities` out | text box -> sentiment (`gr.Label`); with `tokens` and `attention` outputs also the attention over the words (`gr.HighlightedText`) |
| translation | `text` in, `translation` out | English text box -> German text |
| speech | `waveform`, `length` in | WAV upload or microphone -> transcript |
| generation | `text` in, `generated` out (the GPT export) | prompt, sampler, length, temperature, seed -> continuation |
| generic | anything else | a TF Serving request body (JSON) -> its response |

Every tab calls `predict(name, inputs)`: the same path as the REST API's
`:predict` (the server's batchers, the repository's latest version), not a
model of its own.  Gradio runs offline here: no analytics or version check
(`analytics_enabled=False`, `GRADIO_ANALYTICS_ENABLED=False`), no Hugging
Face calls, client-side rendering only, and the default theme's fonts and
the frontend come from the installed wheel (`gradio/templates/frontend`).
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Awaitable, Callable, Mapping

import numpy as np

from zoo.server.codec import RequestError, request_inputs, rows_response
from zoo.server.repository import ModelRepository, ModelVersion, NotFound

__all__ = ["build_demo", "mount_demo", "demo_kind", "resample", "DEMO_PATH"]

DEMO_PATH = "/demo"
DEFAULT_SIGNATURE = "serving_default"
READABLE = {"pos": "positive", "neg": "negative"}  # IMDB's class names, as the demo shows them

Predict = Callable[[str, Mapping[str, np.ndarray]], Awaitable[dict[str, np.ndarray]]]


def _offline_gradio():
    """Import gradio with everything that would reach the internet turned off (before its first import)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # usage statistics and the version check
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GRADIO_SSR_MODE", "False")  # no Node server
    import gradio as gr

    return gr


def demo_kind(entry: ModelVersion | None) -> str:
    """"image" | "text" | "translation" | "speech" | "generation" | "generic", from the serving signature."""
    if entry is None or DEFAULT_SIGNATURE not in entry.signatures:
        return "generic"
    inputs = set(entry.inputs[DEFAULT_SIGNATURE])
    outputs = set(entry.signatures[DEFAULT_SIGNATURE].structured_outputs)
    if len(inputs) == 1 and next(iter(inputs)).endswith("_bytes") and "probabilities" in outputs:
        return "image"
    if inputs == {"waveform", "length"} and outputs & {"transcript", "text"}:
        return "speech"
    if "text" in inputs and "generated" in outputs:
        return "generation"
    if inputs == {"text"} and "translation" in outputs:
        return "translation"
    if inputs == {"text"} and "probabilities" in outputs:
        return "text"
    return "generic"


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Resample float32 `(samples,)` from `rate` to `target` Hz -> float32 `(round(samples * target / rate),)`.

    Downsampling low-passes first (a Hann-windowed sinc at 0.45 x the target
    rate), so a 48 kHz microphone recording does not alias into 8 kHz.
    """
    wave = np.asarray(wave, np.float32).reshape(-1)
    if rate == target or wave.size == 0:
        return wave
    if target < rate:
        cutoff = 0.45 * target / rate  # cycles per input sample
        half = int(np.ceil(4 / cutoff))
        t = np.arange(-half, half + 1)
        taps = 2 * cutoff * np.sinc(2 * cutoff * t) * np.hanning(2 * half + 1)
        wave = np.convolve(wave, (taps / taps.sum()).astype(np.float32), mode="same")
    n = max(1, int(round(wave.size * target / rate)))
    return np.interp(np.arange(n) * (rate / target), np.arange(wave.size), wave).astype(np.float32)


def read_audio(path: str) -> tuple[np.ndarray, int]:
    """An audio file (WAV, FLAC, OGG) -> (mono float32 `(samples,)` in [-1, 1], sample rate).

    Raises:
        RequestError: the file cannot be decoded.
    """
    import soundfile

    try:
        wave, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001 - libsndfile's reasons vary; one line for the page, without the path
        reason = str(exc).splitlines()[0].rsplit("': ", 1)[-1].strip(" .")[:120]
        raise RequestError(f"could not read the audio ({reason}); upload a WAV file") from None
    return wave.mean(axis=1), int(rate)


def _names(entry: ModelVersion, k: int) -> list[str]:
    names = ((entry.card or {}).get("data") or {}).get("class_names")
    return [str(n) for n in names] if names and len(names) == k else [str(i) for i in range(k)]


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _array(spec, value) -> np.ndarray:
    """A Python value -> numpy array of the input spec's dtype (strings as UTF-8 bytes)."""
    if spec.is_string:
        return np.array([v.encode("utf-8") for v in value] if isinstance(value, list) else value.encode("utf-8"),
                        dtype=object)
    return np.asarray(value, dtype=spec.dtype)


def build_demo(repository: ModelRepository, predict: Predict, *, title: str = "zoo serve"):
    """The Gradio Blocks: one tab per model of `repository`, each calling `predict(name, inputs) -> outputs`.

    `predict` takes numpy inputs keyed like the model's `serving_default`
    (row-major, batch 1) and returns its outputs; it raises `RequestError` or
    `NotFound` for bad input, which the page shows as a one-line error.
    """
    gr = _offline_gradio()

    async def call(name: str, inputs: Mapping[str, np.ndarray], bad_input: str | None = None) -> dict[str, np.ndarray]:
        try:
            return await predict(name, inputs)
        except RequestError as exc:
            raise gr.Error(bad_input or str(exc), print_exception=False) from None
        except NotFound as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except Exception as exc:  # noqa: BLE001 - the model failed: an error on the page, the server goes on
            raise gr.Error(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}",
                           print_exception=False) from None

    def latest(name: str) -> ModelVersion:
        try:
            return repository.get(name)
        except NotFound as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    def image_tab(name, entry):
        key = next(iter(entry.inputs[DEFAULT_SIGNATURE]))
        with gr.Row():
            image = gr.Image(type="filepath", image_mode=None, sources=["upload", "clipboard"], height=240,
                             buttons=["fullscreen"],  # no "share" (to Hugging Face)
                             label="image (JPEG, PNG, GIF or BMP)", elem_id=f"{name}-input")
            top = gr.Label(num_top_classes=5, label="top 5", elem_id=f"{name}-output")

        async def classify(upload):
            # preprocess=False: the uploaded file's own bytes go to the export, which decodes them as the REST
            # API's do (and answers one line for what it cannot decode), without Gradio's PIL re-reading them
            path = upload.get("path") if isinstance(upload, dict) else upload
            if not path:
                raise gr.Error("upload an image first", print_exception=False)
            out = await call(name, {key: np.array([pathlib.Path(path).read_bytes()], dtype=object)},
                             bad_input="the model could not decode this file: upload a JPEG, PNG, GIF or BMP image")
            probs = np.asarray(out["probabilities"][0], np.float64)
            names = _names(latest(name), probs.size)
            return {names[i]: float(probs[i]) for i in np.argsort(-probs)[:5]}

        image.upload(classify, image, top, api_name=f"{name}_classify", preprocess=False)
        gr.Button("Classify", variant="primary", elem_id=f"{name}-run").click(classify, image, top, preprocess=False,
                                                                             api_visibility="private")

    def text_tab(name, entry):
        outputs = set(entry.signatures[DEFAULT_SIGNATURE].structured_outputs)
        attended = {"tokens", "attention"} <= outputs
        box = gr.Textbox(label="review", lines=4, placeholder="A wonderful, moving film.", elem_id=f"{name}-input")
        button = gr.Button("Classify", variant="primary", elem_id=f"{name}-run")
        sentiment = gr.Label(label="sentiment", elem_id=f"{name}-output")
        shown = [sentiment]
        if attended:
            shown.append(gr.HighlightedText(label="attention over the words (darker: more weight; "
                                                  "[UNK]: not in the vocabulary)", combine_adjacent=False,
                                            show_legend=False, elem_id=f"{name}-attention"))

        async def classify(text):
            if not text or not text.strip():
                raise gr.Error("type a review first", print_exception=False)
            out = await call(name, {"text": np.array([text.encode("utf-8")], dtype=object)})
            probs = np.asarray(out["probabilities"][0], np.float64)
            names = _names(latest(name), probs.size)
            label = {READABLE.get(n, n): float(p) for n, p in zip(names, probs)}
            if not attended:
                return label
            tokens = [_text(t) for t in out["tokens"][0]]
            weights = np.asarray(out["attention"][0], np.float64)
            top = max(float(weights.max(initial=0.0)), 1e-12)
            spans = []
            for token, w in zip(tokens, weights):
                if token:
                    spans += [(token, round(float(w) / top, 3)), (" ", None)]
            return label, spans[:-1]

        button.click(classify, box, shown, api_name=f"{name}_classify")
        box.submit(classify, box, shown, api_visibility="private")

    def translation_tab(name, entry):
        source = gr.Textbox(label="English", lines=3, placeholder="A man is riding a bike.", elem_id=f"{name}-input")
        button = gr.Button("Translate", variant="primary", elem_id=f"{name}-run")
        target = gr.Textbox(label="German", lines=3, interactive=False, elem_id=f"{name}-output")

        async def translate(text):
            if not text or not text.strip():
                raise gr.Error("type an English sentence first", print_exception=False)
            out = await call(name, {"text": np.array([text.encode("utf-8")], dtype=object)})
            return _text(out["translation"][0])

        button.click(translate, source, target, api_name=f"{name}_translate")
        source.submit(translate, source, target, api_visibility="private")

    def speech_tab(name, entry):
        rate = int(((entry.card or {}).get("data") or {}).get("sample_rate") or 8000)
        audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label=f"speech (resampled to {rate} Hz)",
                         buttons=["download"],  # no "share" (to Hugging Face)
                         elem_id=f"{name}-input")
        button = gr.Button("Transcribe", variant="primary", elem_id=f"{name}-run")
        transcript = gr.Textbox(label="transcript", interactive=False, elem_id=f"{name}-output")

        async def transcribe(path):
            if not path:
                raise gr.Error("upload or record audio first", print_exception=False)
            try:
                wave, got = read_audio(path)
            except RequestError as exc:
                raise gr.Error(str(exc), print_exception=False) from None
            wave = resample(wave, got, rate)
            if wave.size == 0:
                raise gr.Error("the audio is empty", print_exception=False)
            out = await call(name, {"waveform": wave[None, :], "length": np.array([wave.size], np.int32)})
            words = _text(out["transcript" if "transcript" in out else "text"][0]).strip()
            return words or "(silence)"

        audio.upload(transcribe, audio, transcript, api_name=f"{name}_transcribe")
        audio.stop_recording(transcribe, audio, transcript, api_visibility="private")
        button.click(transcribe, audio, transcript, api_visibility="private")

    def generation_tab(name, entry):
        specs = entry.inputs[DEFAULT_SIGNATURE]
        prompt = gr.Textbox(label="prompt", lines=2, placeholder="This movie was", elem_id=f"{name}-input")
        with gr.Row():
            sampler = gr.Dropdown(["greedy", "beam", "top_k", "top_p", "random"], value="top_p", label="sampler")
            length = gr.Slider(8, 256, value=64, step=1, label="max_length (tokens, prompt included)")
            temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="temperature")
            seed = gr.Number(value=0, precision=0, label="seed")
        button = gr.Button("Generate", variant="primary", elem_id=f"{name}-run")
        continuation = gr.Textbox(label="continuation", lines=4, interactive=False, elem_id=f"{name}-output")

        async def generate(text, sampler_name, max_length, temp, seed_value):
            values = {"text": [text or ""], "sampler": sampler_name or "top_p", "max_length": int(max_length),
                      "num_return_sequences": 1, "temperature": float(temp), "top_k": 50, "top_p": 0.9,
                      "seed": int(seed_value or 0)}
            missing = sorted(set(specs) - set(values))
            if missing:
                raise gr.Error(f"this generator takes inputs {missing} the demo does not know", print_exception=False)
            out = await call(name, {k: _array(specs[k], values[k]) for k in specs})
            return _text(np.asarray(out["generated"]).reshape(-1)[0])

        inputs = [prompt, sampler, length, temperature, seed]
        button.click(generate, inputs, continuation, api_name=f"{name}_generate")
        prompt.submit(generate, inputs, continuation, api_visibility="private")

    def generic_tab(name, entry):
        specs = entry.inputs.get(DEFAULT_SIGNATURE, {}) if entry is not None else {}
        gr.Markdown(f"`serving_default` inputs: {', '.join(f'`{k}`' for k in specs) or 'unknown'}; "
                    "send a TF Serving request body, as to `:predict`.")
        body = gr.Code(value='{"instances": []}', language="json", label="request", elem_id=f"{name}-input")
        button = gr.Button("Predict", variant="primary", elem_id=f"{name}-run")
        answer = gr.Code(language="json", label="response", elem_id=f"{name}-output")

        async def run(text):
            from zoo.server.codec import parse_json

            try:
                request = parse_json((text or "").encode("utf-8"))
                if request.get("signature_name", DEFAULT_SIGNATURE) != DEFAULT_SIGNATURE:
                    raise RequestError("the demo calls serving_default; use the REST API for other signatures")
                _, inputs = request_inputs(request, latest(name).inputs[DEFAULT_SIGNATURE])
            except RequestError as exc:
                raise gr.Error(str(exc), print_exception=False) from None
            return json.dumps(rows_response(await call(name, inputs)), indent=1)

        button.click(run, body, answer, api_name=f"{name}_predict")

    tabs = {"image": image_tab, "text": text_tab, "translation": translation_tab, "speech": speech_tab,
            "generation": generation_tab, "generic": generic_tab}
    # delete_cache: uploads (kept by Gradio under GRADIO_TEMP_DIR) older than an hour go, checked hourly
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(f"## {title}\nOne tab per served model.  Each calls the same prediction path as the TF Serving "
                    "REST API (`POST /v1/models/NAME:predict`), on the model's latest version.")
        with gr.Tabs():
            for name in sorted(repository.bases):
                try:
                    entry = repository.get(name)
                except NotFound:
                    entry = None
                kind = demo_kind(entry)
                with gr.Tab(name, id=name, elem_id=f"tab-{name}"):
                    gr.Markdown(_describe(name, entry, kind))
                    tabs[kind](name, entry)
    return demo


def _describe(name: str, entry: ModelVersion | None, kind: str) -> str:
    if entry is None:
        return f"**{name}**: no version is available yet (see `GET /v1/models/{name}`)."
    spec = (entry.card or {}).get("spec") or {}
    text = spec.get("description") or spec.get("reference") or ""
    return f"**{name}** version {entry.version} ({kind}){': ' + text if text else ''}"


def mount_demo(app, repository: ModelRepository, predict: Predict, path: str = DEMO_PATH):
    """Mount the Gradio demo into the FastAPI `app` at `path`; returns the Blocks.

    Raises:
        ImportError: gradio is not installed (`pip install 'zoo[demo]'`).
    """
    gr = _offline_gradio()
    demo = build_demo(repository, predict)
    demo.queue(default_concurrency_limit=None)  # requests meet in the batchers, not in a Gradio queue of one
    gr.mount_gradio_app(app, demo, path=path, footer_links=["api"], run_history=False, ssr_mode=False,
                        mcp_server=False, max_file_size="20mb", show_error=True)
    return demo
