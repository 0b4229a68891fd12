"""Export: self-contained SavedModels on raw inputs, verified in a clean process.

    zoo.export_model("runs/cifar10_resnet")            # -> saved_models/cifar10_resnet/1
    zoo.export_model(model, name="cifar10_resnet", info={"class_names": [...]})

Layout (TensorFlow Serving): `<base_dir>/<name>/<version>/` with the
SavedModel, `model_card.json` and `README.md` (and `model.tflite` when asked).
A version is assembled in a temporary directory beside its final place,
verified, and renamed into place, so a crash never leaves a half-written
version and versions only count up.

Verification loads the SavedModel in a fresh Python process in which `zoo`
and `applications` cannot be imported, runs the `serving_default` signature
on sample raw inputs and compares with the in-memory model.

Each model's spec links a `Serving` recipe (`spec.serving`): how raw inputs
(image bytes, strings, waveforms) become the model's tensors inside the
graph, what comes out, and sample inputs for verification (see
`zoo/serving/`).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time
import warnings
from typing import Any, Mapping, Sequence

import numpy as np

from zoo._tf import silenced_stderr
from zoo.io import die_with_parent, jsonable, owned_temp_dir, read_json, remove_stale_temporaries
from zoo.registry import get_spec
from zoo.run import Run
from zoo.serving import Serving, load_serving
from zoo.tasks.classification import tta_views

__all__ = ["export_model", "ExportError", "float32_twin", "predict", "next_version", "verify_saved_model",
           "load_run_preprocessor", "tflite_signature"]

_TMP_PREFIX = ".tmp-export-"  # + "<pid>-<random>": a version being assembled
TOLERANCE = 1e-4  # max |difference| between the SavedModel's and the in-memory model's numeric outputs


class ExportError(RuntimeError):
    """An export could not be written or failed verification (nothing was left behind)."""


# ---------------------------------------------------------------------------
# resolving what to export


def _resolve(model_or_run_dir, name, info, preprocessor):
    """-> (spec, model, info, preprocessor, run metadata) from a run dir or a model."""
    meta: dict[str, Any] = {}
    if isinstance(model_or_run_dir, (str, os.PathLike)):
        from zoo.training import load_run

        run = Run(model_or_run_dir)
        if not run.path.exists():
            raise ExportError(f"run directory {run.given} does not exist: train first with "
                              f"`zoo train NAME --run-dir {run.given}`")
        spec, model, config = load_run(run.path)
        if name is not None and name != spec.name and name in _names():
            raise ExportError(f"{run.given} holds a {spec.name} run, not {name}: export it as {spec.name} "
                              f"(`zoo export {spec.name} --run-dir {run.given}`), or pass the run dir of a {name} run")
        if not run.state.exists():
            raise ExportError(f"{run.given} is not a finished run (no state.json): finish training first "
                              "(rerun the same `zoo train` command to resume)")
        info = {**run.read("data_info", {}), **(info or {})}
        if preprocessor is None:
            preprocessor = load_run_preprocessor(run)
        for record in ("metrics", "config", "history"):
            if run.read(record) is not None:
                meta[record] = run.read(record)
        meta["run_dir"] = str(run.path)
        return spec, model, info, preprocessor, meta, name or spec.name
    if name is None:
        raise ExportError("exporting a keras.Model needs name=<registered model name> (it picks the serving recipe)")
    spec = get_spec(name)
    return spec, model_or_run_dir, dict(info or {}), preprocessor, meta, name


def serving_options(spec, metrics: Mapping[str, Any] | None, *, tta: bool = True) -> dict:
    """The serving recipe's options for a run with these `metrics` (metrics.json).

    Image classifiers (recipes taking `tta_flip`/`tta_translate`): the
    test-time augmentation its test accuracy was measured with, so an export
    or `zoo predict --run-dir` scores what the run reported; `{}` with
    `tta=False`, for other recipes, or when the run used none.
    """
    if not tta or "tta_flip" not in getattr(spec.serving, "option_names", ()):
        return {}
    test = (metrics or {}).get("test") or {}
    options = {"tta_flip": bool(test.get("tta_flip", False)), "tta_translate": int(test.get("tta_translate", 0) or 0)}
    return options if options["tta_flip"] or options["tta_translate"] else {}


def load_run_preprocessor(run: "Run | str | os.PathLike"):
    """The run's fitted preprocessor (tokenizer, vectorizer), or None when its model takes tensors as they are."""
    run = run if isinstance(run, Run) else Run(run)
    if not run.preprocessor.exists():
        return None
    from zoo.data import load_preprocessor

    return load_preprocessor(run.preprocessor)


def next_version(model_dir: pathlib.Path) -> int:
    """1 + the largest integer version directory under `model_dir` (1 if none)."""
    versions = [int(p.name) for p in model_dir.iterdir() if p.name.isdigit()] if model_dir.is_dir() else []
    return max(versions, default=0) + 1


_VERIFY_SCRIPT = r'''
import importlib.abc, json, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("zoo", "applications"):
            raise ImportError(f"{name} is blocked: the export must load without zoo")
sys.meta_path.insert(0, _Block())
import numpy as np, tensorflow as tf
path, inputs, out = sys.argv[1], sys.argv[2], sys.argv[3]
loaded = tf.saved_model.load(path)
fn = loaded.signatures["serving_default"]
raw = np.load(inputs, allow_pickle=True)
kwargs = {}
for name, spec in fn.structured_input_signature[1].items():
    value = raw[name]
    kwargs[name] = tf.constant(list(value) if value.dtype == object else value, dtype=spec.dtype)
result = fn(**kwargs)
np.savez(out, **{k: v.numpy() for k, v in result.items()})
print(json.dumps({"inputs": {k: [str(s.dtype.name), s.shape.as_list()] for k, s in fn.structured_input_signature[1].items()},
                  "outputs": {k: [str(s.dtype.name), s.shape.as_list()] for k, s in fn.structured_outputs.items()}}))
'''


def _call_serving(serving: Serving, raw: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    import tensorflow as tf

    kwargs = {s.name: tf.constant(list(raw[s.name]) if raw[s.name].dtype == object else raw[s.name], dtype=s.dtype)
              for s in serving.input_signature}
    return {k: np.asarray(v) for k, v in serving.serve(**kwargs).items()}


def _compare(expected: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray]) -> list[str]:
    problems = []
    for key, want in expected.items():
        if key not in got:
            problems.append(f"output {key!r} missing")
            continue
        have = got[key]
        if want.dtype.kind in "fc":
            diff = float(np.max(np.abs(want.astype(np.float64) - have.astype(np.float64)))) if want.size else 0.0
            if want.shape != have.shape or not diff <= TOLERANCE:
                problems.append(f"output {key!r} differs by {diff:.3g} (tolerance {TOLERANCE})")
        elif want.shape != have.shape or not np.array_equal(want, have):
            problems.append(f"output {key!r} differs: {want.tolist()[:3]} vs {have.tolist()[:3]}")
    return problems


def verify_saved_model(path, serving: Serving, workdir: pathlib.Path) -> dict:
    """Load `path` in a clean process without zoo, run sample raw inputs, compare.

    Returns:
        The exported signature ({"inputs": {name: [dtype, shape]}, "outputs": ...}).

    Raises:
        ExportError: the process failed or outputs differ beyond `TOLERANCE`.
    """
    path, workdir = pathlib.Path(path).resolve(), pathlib.Path(workdir).resolve()  # the child runs in workdir
    raw = serving.samples()
    np.savez(workdir / "inputs.npz", **raw)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    proc = subprocess.run(
        [sys.executable, "-I", "-c", _VERIFY_SCRIPT, str(path), str(workdir / "inputs.npz"), str(workdir / "outputs.npz")],
        capture_output=True, text=True, env=env, cwd=workdir, timeout=600, preexec_fn=die_with_parent,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-6:])
        raise ExportError(f"the SavedModel did not load and run in a clean process without zoo:\n{tail}")
    got = dict(np.load(workdir / "outputs.npz", allow_pickle=True))
    problems = _compare(_call_serving(serving, raw), got)
    if problems:
        raise ExportError("the reloaded SavedModel disagrees with the in-memory model: " + "; ".join(problems))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _write_archive(path: pathlib.Path, serving: Serving, endpoints: Mapping[str, tuple]) -> None:
    """Write `serving.model`, the recipe's resources and `endpoints` ({name: (fn, input_signature)}, in that
    order) as a SavedModel at `path`."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(serving.model)
    for resource in serving.trackables():
        archive.track(resource)
    for endpoint, (fn, signature) in endpoints.items():
        archive.add_endpoint(endpoint, fn, input_signature=signature)
    archive.write_out(str(path), verbose=False)


def _dtype_policies(model) -> set[str]:
    """The names of the dtype policies of `model` and all its layers, e.g. {"mixed_bfloat16"}."""
    return {layer.dtype_policy.name for layer in model._flatten_layers(include_self=True, recursive=True)}


def float32_twin(model):
    """`model` rebuilt to compute in float32, with the same weights; `model` itself when it already does.

    A mixed-precision model (`mixed_bfloat16`, `mixed_float16`) keeps float32
    variables, so the twin's weights are exactly the model's; only its
    arithmetic differs (float32 instead of bfloat16/float16).  TensorFlow Lite
    converts the twin where it cannot convert the original (exact GELU in
    bfloat16 lowers to `Erfc`, which has no TFLite kernel; in float32 it
    becomes TFLite's GELU).  Inputs and outputs keep their shapes and dtypes
    (e.g. uint8 images `(N, H, W, 3)` -> logits `(N, K)`).
    """
    import keras

    if _dtype_policies(model) <= {"float32"}:
        return model

    def to_float32(node):  # every dtype policy in the serialised model -> float32
        if isinstance(node, dict):
            if node.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and isinstance(node.get("config"), dict):
                return {**node, "config": {**node["config"], "name": "float32"}}
            return {k: "float32" if k == "dtype" and isinstance(v, str) and v.startswith("mixed_") else to_float32(v)
                    for k, v in node.items()}
        if isinstance(node, list):
            return [to_float32(v) for v in node]
        return node

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")  # sublayers made without an explicit dtype follow the global policy
    try:
        twin = keras.saving.deserialize_keras_object(to_float32(keras.saving.serialize_keras_object(model)))
    finally:
        keras.config.set_dtype_policy(previous)
    if not _dtype_policies(twin) <= {"float32"}:
        raise ExportError(f"cannot make a float32 copy of {model.name}: layers still compute in "
                          f"{', '.join(sorted(_dtype_policies(twin) - {'float32'}))}")
    twin.set_weights(model.get_weights())
    return twin


def tflite_signature(path, signature: str):
    """A signature of a `.tflite` file as a function: `(call, input_names)`.

    `call(**{name: array})` -> {output name: numpy array}, e.g. for an
    image export's `serve_pixels`: `image` uint8 `(N, H, W, 3)` ->
    `probabilities` float32 `(N, K)`; the batch size may change between
    calls.  TensorFlow's interpreter is used (LiteRT is its successor); its
    deprecation warning and XNNPACK's log line are kept off the terminal.

    Raises:
        RuntimeError: the file needs ops the Python interpreter cannot run (TF select ops).
    """
    import tensorflow as tf

    with warnings.catch_warnings(), silenced_stderr():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        runner = tf.lite.Interpreter(model_path=str(path)).get_signature_runner(signature)

    def call(**inputs):
        with silenced_stderr():  # XNNPACK's "Created ... delegate" line comes with the first call
            return runner(**inputs)

    return call, list(runner.get_input_details())


def _tflite_probabilities(call, name: str, x: np.ndarray) -> np.ndarray:
    """`probabilities` of a `tflite_signature` call for each row of `x`, one input at a time: float32 (N, K)."""
    return np.concatenate([call(**{name: x[i:i + 1]})["probabilities"] for i in range(len(x))])


def _convert_tflite(saved_model: pathlib.Path, serving: Serving, out: pathlib.Path, work: pathlib.Path,
                    data=None) -> dict:
    """Convert the recipe's tensor-input endpoint to TensorFlow Lite and check parity.

    String decoding cannot run on TFLite builtins, so the converted signature
    takes the model's tensors (pixels, token ids); ops without a builtin
    kernel fall back to TF select ops.  A mixed-precision model is converted
    from its float32 twin (`float32_twin`, written to a SavedModel under
    `work`): the file computes in float32.  Parity: the TFLite file against
    what it was converted from (top-1 agreement >= 0.99), and, for a twin,
    the agreement with the exported (mixed-precision) signature, reported.
    """
    import tensorflow as tf

    endpoint = serving.tflite_endpoint
    if endpoint is None:
        raise ExportError(f"TensorFlow Lite export is available for image and text classifiers, "
                          f"not {serving.spec.modality} models")
    twin = float32_twin(serving.model)
    converted = serving if twin is serving.model else load_serving(serving.spec, twin, serving.info,
                                                                    serving.preprocessor, serving.options)
    fn, signature = converted.extra_endpoints()[endpoint]
    source = saved_model
    if converted is not serving:  # a SavedModel of the twin's endpoint alone, in the export's scratch directory
        source = work / "float32"
        _write_archive(source, converted, {endpoint: (fn, signature)})
    converter = tf.lite.TFLiteConverter.from_saved_model(str(source), signature_keys=[endpoint])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    try:
        with silenced_stderr():  # the converter dumps its whole MLIR module to stderr when it fails
            flat = converter.convert()
    except Exception as exc:  # tf.lite's ConverterError: ops with neither a builtin nor a select-TF kernel
        ops = sorted(set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", str(exc))))
        why = (f"no TFLite kernel for the op(s) {', '.join(ops)}" if ops
               else (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200])
        raise ExportError(f"TensorFlow Lite cannot convert this {serving.spec.name} model ({why}); export without "
                          "--tflite and serve the SavedModel") from exc
    out.write_bytes(flat)
    x = np.asarray(data) if data is not None else serving.tensor_samples(64)

    def batched(f):
        return np.concatenate([np.asarray(f(x[i:i + 32])["probabilities"]) for i in range(0, len(x), 32)])

    ref = batched(fn)
    try:
        runner, (name,) = tflite_signature(out, endpoint)
        lite = _tflite_probabilities(runner, name, x)
    except RuntimeError as exc:
        out.unlink()
        raise ExportError(f"{serving.spec.name} converts to TensorFlow Lite only with TF select ops "
                          f"({str(exc).split('Node number')[-1].strip()[:120]}), which the Python interpreter "
                          "cannot run, so parity cannot be checked; recurrent layers do this (their loop "
                          "becomes TensorList ops). Serve the SavedModel, or use a non-recurrent model") from exc
    agreement = float((ref.argmax(-1) == lite.argmax(-1)).mean())
    max_diff = float(np.abs(ref - lite).max())
    if agreement < 0.99:
        raise ExportError(f"TensorFlow Lite model agrees with the {'SavedModel' if converted is serving else 'float32 copy'} "
                          f"it was converted from on only {agreement:.1%} of {len(x)} inputs")
    spec = signature[0]
    report = {"file": out.name, "signature": endpoint, "examples": len(x), "top1_agreement": agreement,
              "max_probability_diff": max_diff, "compute_dtype": "float32",
              "input": {"name": name, "dtype": spec.dtype.name, "shape": spec.shape.as_list()}}
    if converted is not serving:  # what the float32 file gives against the mixed-precision signature it stands for
        served = batched(serving.extra_endpoints()[endpoint][0])
        report.update({"converted_from": "float32 copy of the model (same weights)",
                       "model_dtype_policy": ", ".join(sorted(_dtype_policies(serving.model) - {"float32"})),
                       "top1_agreement_with_saved_model": float((served.argmax(-1) == lite.argmax(-1)).mean()),
                       "max_probability_diff_with_saved_model": float(np.abs(served - lite).max())})
    return report


def _model_card(name, version, spec, info, meta, signature, extra) -> tuple[dict, str]:
    metrics = meta.get("metrics", {})
    config = meta.get("config", {})
    card = {
        "name": name,
        "version": version,
        "model": spec.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "spec": spec.to_dict(),
        "hyperparameters": {"model": {**config.get("model_args", dict(spec.defaults)), **config.get("fitted_args", {})},
                            "train": config.get("train", dict(spec.train))},
        "data": info,
        "metrics": metrics,
        "signature": {"serving_default": signature, "raw_input": spec.raw_input},
        "run_dir": meta.get("run_dir"),
        **extra,
    }
    test = metrics.get("test", {})
    headline = ", ".join(f"{k} {v:.4f}" for k, v in test.items() if isinstance(v, float))
    sig_in = ", ".join(f"{k}: {d} {s}" for k, (d, s) in signature.get("inputs", {}).items())
    sig_out = ", ".join(f"{k}: {d} {s}" for k, (d, s) in signature.get("outputs", {}).items())
    served, unserved = tta_views(extra.get("serving_options")), tta_views(extra.get("serving_options_not_served"))
    tta_note = (f"; the signature serves the same test-time augmentation ({served}; `zoo export --no-tta`: one view)"
                if served else f" (measured with test-time augmentation, {unserved}, which this export does not "
                "serve: expect less)" if unserved else "")
    md = f"""# {name} (version {version})

{spec.description}

- model: `{spec.name}` ({spec.modality}, {spec.task.name}); reference: {spec.reference or '-'}
- data: `{spec.dataset_name}`, {info.get('source', 'see model_card.json')}
- test metrics: {headline or 'not evaluated'}{tta_note}
- parameters: {metrics.get('params', '?')}; training time: {metrics.get('train_seconds', '?')} s

## Signature `serving_default`

- inputs: {sig_in}  ({spec.raw_input})
- outputs: {sig_out}
{("- bad inputs: " + extra["notes"]) if extra.get("notes") else ""}

```python
import tensorflow as tf
m = tf.saved_model.load("{name}/{version}")
m.signatures["serving_default"](**inputs)
```

Hyperparameters, data split and the full metrics are in `model_card.json`.
"""
    if extra.get("serving_notes"):
        md += "\n## Using the signature\n\n" + extra["serving_notes"] + "\n"
    lite = extra.get("tflite")
    if lite:
        md += (f"\n## TensorFlow Lite\n\n`{lite['file']}`: signature `{lite['signature']}` on the model's tensors "
               f"(the same as the SavedModel's `{lite['signature']}`), computing in {lite['compute_dtype']}; "
               f"top-1 agreement with what it was converted from {lite['top1_agreement']:.1%} of {lite['examples']} "
               "inputs.")
        if "model_dtype_policy" in lite:
            md += (f" The model computes in {lite['model_dtype_policy']}; the file is its float32 copy with the "
                   f"same weights (top-1 agreement with the SavedModel "
                   f"{lite['top1_agreement_with_saved_model']:.1%}, probabilities within "
                   f"{lite['max_probability_diff_with_saved_model']:.2g}).")
        md += "\n" + _tflite_usage(name, version, lite)
    return card, md


# The folder of a TFLite file's tokenizer (text models), beside it in the version directory.
TFLITE_PREPROCESSOR = "preprocessor"


def _tflite_usage(name: str, version: int, lite: Mapping[str, Any]) -> str:
    """A README snippet that calls the card's `model.tflite` (its input as recorded by `_convert_tflite`)."""
    inp = lite.get("input")
    if not inp:  # cards written before the input was recorded
        return ""
    dims = ["batch" if d is None and i == 0 else "n" if d is None else str(d) for i, d in enumerate(inp["shape"])]
    example = ", ".join("1" if d in ("batch", "n") else d for d in dims)
    tokens = (f"\nThe token ids come from the tokenizer in `{lite['preprocessor']}/` (`vocabulary.txt`: the word on "
              "line k, counting from 0, has id k + 2; 0 is padding, 1 an unknown word; `preprocessor.json` says how "
              f"text is standardised); `zoo predict {name}/{version}/{lite['file']} TEXT` tokenises and runs the file.\n"
              if lite.get("preprocessor") else "")
    return tokens + (
        f"\n```python\nimport numpy as np\nimport tensorflow as tf  # or the Interpreter of ai_edge_litert\n"
        f"run = tf.lite.Interpreter(model_path=\"{name}/{version}/{lite['file']}\")"
        f".get_signature_runner(\"{lite['signature']}\")\n"
        f"run({inp['name']}=np.zeros(({example}{',' if len(dims) == 1 else ''}), np.{inp['dtype']}))[\"probabilities\"]"
        f"  # {inp['name']}: {inp['dtype']} ({', '.join(dims)}), as the SavedModel's {lite['signature']} takes it\n"
        "```\n")


def export_model(
    model_or_run_dir,
    name: str | None = None,
    base_dir: str | os.PathLike = "saved_models",
    *,
    info: Mapping[str, Any] | None = None,
    preprocessor=None,
    verify: bool = True,
    tflite: bool = False,
    tflite_data: np.ndarray | None = None,
    tta: bool = True,
) -> pathlib.Path:
    """Export a trained model as `<base_dir>/<name>/<version>/` (TF Serving layout).

    Args:
        model_or_run_dir: a finished run directory (preferred: it carries the
            data info, preprocessor and metrics), or a `keras.Model`.
        name: export name; defaults to the run's model name.  Required (and
            must be a registered model name) when passing a model.
        base_dir: export root.
        info: dataset info (class names...) when passing a model.
        preprocessor: the fitted preprocessor when passing a model.
        verify: reload in a clean process without zoo and compare outputs.
        tflite: also write `model.tflite` (image and text classifiers) with a parity check.
        tflite_data: model inputs for the TFLite parity check, e.g. uint8
            images `(N, H, W, 3)` (default: 64 synthetic inputs).
        tta: image classifiers: serve the test-time augmentation the run's
            test metrics (metrics.json) were measured with (`serving_options`),
            so the export scores what its model card reports; False: one
            view (the card then says its figure used views it does not
            serve).  A `keras.Model` export has no run metrics: one view.

    Returns:
        Path of the new version directory.

    Raises:
        ExportError: missing/unfinished run, unwritable output, failed verification.
    """
    spec, model, info, preprocessor, meta, name = _resolve(model_or_run_dir, name, info, preprocessor)
    measured = serving_options(spec, meta.get("metrics"))  # the views the run's test figure used
    options = measured if tta else {}
    serving = load_serving(spec, model, info, preprocessor, options)
    model_dir = pathlib.Path(base_dir).resolve() / name  # absolute: the verifying child runs elsewhere
    created = not model_dir.exists()
    try:
        tmp = owned_temp_dir(model_dir, _TMP_PREFIX)
    except OSError as exc:
        raise ExportError(f"cannot write exports under {model_dir}: {exc.strerror or exc}; choose a writable --out") from exc
    remove_stale_temporaries(model_dir, _TMP_PREFIX)  # what a killed export left
    work = tmp / ".verify"  # inside the temporary: removed with it, whatever happens
    work.mkdir()
    try:
        saved = tmp / "model"
        _write_archive(saved, serving, {"serving_default": (serving.serve, serving.input_signature),
                                        **serving.extra_endpoints()})
        signature = verify_saved_model(saved, serving, work) if verify else {}
        extra = {"verified": bool(verify), "tolerance": TOLERANCE if verify else None}
        if options:
            extra["serving_options"] = options
        elif measured:  # --no-tta: the card's figure used views this export does not serve
            extra["serving_options_not_served"] = measured
        if getattr(serving, "card_notes", None):  # what the signature's inputs mean (e.g. sampler settings)
            extra["serving_notes"] = serving.card_notes()
        if tflite:
            extra["tflite"] = _convert_tflite(saved, serving, saved / "model.tflite", work, tflite_data)
            if serving.preprocessor is not None:  # the file takes token ids: its tokenizer goes beside it
                serving.preprocessor.save(saved / TFLITE_PREPROCESSOR)
                extra["tflite"]["preprocessor"] = TFLITE_PREPROCESSOR
        shutil.rmtree(work)
        for item in saved.iterdir():  # SavedModel files at the version root, as TF Serving expects
            item.rename(tmp / item.name)
        saved.rmdir()
        while True:
            version = next_version(model_dir)
            card, md = _model_card(name, version, spec, info, meta, signature, {**extra, "notes": serving.notes})
            (tmp / "model_card.json").write_text(json.dumps(jsonable(card), indent=2))
            (tmp / "README.md").write_text(md)
            try:
                os.rename(tmp, model_dir / str(version))  # atomic; fails if another export took the number
                return model_dir / str(version)
            except OSError:
                if (model_dir / str(version)).exists():
                    continue
                raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created:  # leave no empty saved_models/<name>/ behind
            with contextlib.suppress(OSError):
                model_dir.rmdir()
        raise


# ---------------------------------------------------------------------------
# predict


def predict(target: str, items: Sequence[str], *, run_dir: str | None = None, top_k: int | None = None,
            read_files: bool = False, generation: Mapping[str, Any] | None = None) -> list[dict]:
    """Run a SavedModel directory, its TensorFlow Lite file or a registered model's trained run on raw inputs.

    Args:
        target: a SavedModel version directory (with its `model_card.json`),
            the `model.tflite` in one (`zoo export --tflite`; inputs are
            decoded or tokenised here as the SavedModel would, then the file
            runs), or a registered model name (its run: `run_dir`, default
            `runs/NAME`).
        items: image/WAV file paths, or text strings, as the model's modality needs.
        top_k: how many classes to list for classifiers (default 3); for
            text generation, the k of the top_k sampler.
        read_files: text models: `items` are files whose UTF-8 text is used.
        generation: text-generation settings (sampler, num_return_sequences,
            max_length, temperature, top_p, seed); an error for other models.

    Returns:
        One dict per input, in order, e.g. {"input": "cat.jpg", "label": "cat",
        "probability": 0.93, ...}; an input that cannot be read gets
        {"input": ..., "error": "<what is wrong>"} and the others are still
        predicted; when none can be read, ValueError says why.
    """
    import tensorflow as tf

    if top_k is not None and int(top_k) < 1:
        raise ValueError(f"--top-k must be at least 1 (got {top_k}): how many classes to list per input")
    path = pathlib.Path(target)
    if path.suffix == ".tflite":
        return _predict_tflite(path, items, top_k, read_files, generation)
    if path.is_dir():
        card_path = path / "model_card.json"
        if not card_path.exists():
            raise ValueError(f"{path} has no model_card.json: point at a version directory written by `zoo export` "
                             "(e.g. saved_models/NAME/1)")
        card = read_json(card_path, "model card")
        if card.get("model") not in _names():
            raise ValueError(f"{path}: unknown model {card.get('model')!r} in its model card")
        serving = load_serving(get_spec(card["model"]), None, card.get("data", {}))
        raw, rows_in, failed = _read_each(serving, items, read_files, _options(serving, top_k, generation))
        if rows_in:
            try:
                fn = tf.saved_model.load(str(path)).signatures["serving_default"]
            except Exception as exc:  # corrupt or partial SavedModel
                raise ValueError(f"{path} is not a loadable SavedModel ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:200]}); re-export it with `zoo export`") from exc
            kwargs = {k: tf.constant(list(v) if v.dtype == object else v) for k, v in raw.items()}
            outputs = {k: v.numpy() for k, v in fn(**kwargs).items()}
            return _merge_rows(items, serving.rows(rows_in, outputs, top_k or 3), failed)
        return _merge_rows(items, [], failed)
    if target not in _names():
        if os.sep in target or target.startswith(".") or path.suffix or path.exists():
            raise ValueError(f"{target}: no such SavedModel directory; pass a version directory written by "
                             "`zoo export` (e.g. saved_models/NAME/1) or a registered model name with --run-dir")
        get_spec(target)  # raises with close matches
    from zoo.training import load_run

    run = Run(run_dir or os.path.join("runs", target))
    spec, model, config = load_run(run.path)
    if spec.name != target:
        raise ValueError(f"{run.given} holds a {spec.name} run, not {target}; pass the run dir of a {target} run")
    serving = load_serving(spec, model, run.read("data_info", {}), load_run_preprocessor(run),
                           serving_options(spec, run.read("metrics")))  # as its export would serve
    raw, rows_in, failed = _read_each(serving, items, read_files, _options(serving, top_k, generation))
    rows = serving.rows(rows_in, _call_serving(serving, raw), top_k or 3) if rows_in else []
    return _merge_rows(items, rows, failed)


def _predict_tflite(path: pathlib.Path, items, top_k, read_files, generation) -> list[dict]:
    """`predict` on a `model.tflite` beside its `model_card.json`: inputs made into tensors here, one call per input."""
    card_path = path.parent / "model_card.json"
    if not path.is_file():
        raise ValueError(f"{path}: no such file; pass the model.tflite of a version directory written by "
                         "`zoo export --tflite`")
    card = read_json(card_path, "model card") if card_path.exists() else {}
    lite = card.get("tflite")
    if not lite or lite.get("file") != path.name or card.get("model") not in _names():
        raise ValueError(f"{path}: not a TensorFlow Lite file written by `zoo export --tflite` (its version "
                         "directory's model_card.json does not list it); predict with the SavedModel directory")
    spec = get_spec(card["model"])
    preprocessor = None
    if lite.get("preprocessor"):
        from zoo.data import load_preprocessor

        preprocessor = load_preprocessor(path.parent / lite["preprocessor"])
    elif spec.preprocessor:
        raise ValueError(f"{path}: this {spec.name} file takes token ids and its export has no tokenizer beside it "
                         "(exported before zoo wrote one); re-export with `zoo export --tflite`, or predict with "
                         "the SavedModel directory")
    serving = load_serving(spec, None, card.get("data", {}), preprocessor)
    raw, rows_in, failed = _read_each(serving, items, read_files, _options(serving, top_k, generation))
    if not rows_in:
        return _merge_rows(items, [], failed)
    x = serving.tensor_inputs(raw)
    try:
        run, (name,) = tflite_signature(path, lite["signature"])
    except (RuntimeError, ValueError) as exc:  # not a flatbuffer, or truncated
        raise ValueError(f"{path} is not a loadable TensorFlow Lite file ({str(exc).splitlines()[0][:160]}); "
                         "re-export it with `zoo export --tflite`") from exc
    probs = _tflite_probabilities(run, name, x)
    ids = probs.argmax(-1)
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in serving.class_names]
    outputs = {"probabilities": probs, "probability": probs[:, -1], "class_id": ids,
               "label": np.array([names[i].encode() for i in ids], dtype=object)}  # what the SavedModel returns
    return _merge_rows(items, serving.rows(rows_in, outputs, top_k or 3), failed)


def _options(serving: Serving, top_k, generation) -> dict:
    """Keyword arguments of the recipe's `read_inputs`: generation settings reach only a text-generation recipe."""
    if getattr(serving, "generation", False):
        return {**dict(generation or {}), "top_k": top_k}
    used = sorted(k for k, v in (generation or {}).items() if v is not None)
    if used:
        raise ValueError(f"{', '.join('--' + k.replace('_', '-') for k in used)}: generation settings are for "
                         f"text-generation models; {serving.spec.name} is a {serving.spec.task.name} model")
    return {}


def _read_each(serving: Serving, items: Sequence[str], read_files: bool = False, options: Mapping[str, Any] | None = None):
    """Read every input on its own: -> (raw inputs of the readable ones, those items, {index: error})."""
    options = dict(options or {})
    if read_files and serving.reads_files:
        raise ValueError(f"--read-files is for text models; this {serving.spec.modality} model reads its "
                         "inputs from files already")
    good, texts, failed = [], [], {}
    for i, item in enumerate(items):
        try:
            text = _read_text_file(item) if read_files else item
            serving.read_inputs([text], **options)
            good.append(item)
            texts.append(text)
        except ValueError as exc:
            failed[i] = str(exc)
    return (serving.read_inputs(texts, **options) if texts else {}), good, failed


def _read_text_file(item: str) -> str:
    path = pathlib.Path(item)
    if not path.is_file():
        raise ValueError(f"{item}: no such file (--read-files reads each input as a file)")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{item}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _merge_rows(items, rows, failed) -> list[dict]:
    """Rows in input order; an unreadable input gets {"input": ..., "error": ...} in its place.

    Raises:
        ValueError: no input could be read (the message lists why, one per input).
    """
    if failed and len(failed) == len(items):
        raise ValueError("; ".join(failed[i] for i in sorted(failed)))
    rows, out = iter(rows), []
    for i, item in enumerate(items):
        row = {"input": str(item), "error": failed[i]} if i in failed else next(rows)
        out.extend(row if isinstance(row, list) else [row])  # a list: several results of one input (generation)
    return out


def _names():
    from zoo.registry import MODELS

    return MODELS.names()
