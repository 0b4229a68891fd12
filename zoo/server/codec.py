"""TF Serving's JSON mapping: request bodies -> numpy inputs, outputs -> response bodies.

Row format `{"instances": [...]}` and columnar format `{"inputs": ...}`
(https://www.tensorflow.org/tfx/serving/api_rest#predict_api).  Binary
strings travel as `{"b64": "..."}`; outputs whose name ends in `_bytes` are
returned that way, other string outputs as UTF-8 text.  `NaN`, `Infinity`
and `-Infinity` are accepted and written as JSON tokens, as TF Serving does.

Every problem with a request raises `RequestError` (HTTP 400) naming it.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Mapping

import numpy as np

__all__ = ["RequestError", "Spec", "parse_json", "request_inputs", "rows_response", "columns_response", "dumps"]


class RequestError(ValueError):
    """A client error: the server answers HTTP 400 with `{"error": str(exc)}`."""


class Spec:
    """What a signature input accepts: `dtype` (numpy dtype or `object` for strings) and `shape` (None = any)."""

    def __init__(self, name: str, dtype, shape):
        self.name, self.dtype, self.shape = name, dtype, tuple(shape) if shape is not None else None

    @property
    def is_string(self) -> bool:
        return self.dtype == object

    @classmethod
    def from_tensor_spec(cls, name, spec) -> "Spec":
        """From a `tf.TensorSpec` (strings become `object`)."""
        import tensorflow as tf

        dtype = object if spec.dtype == tf.string else np.dtype(spec.dtype.as_numpy_dtype)
        return cls(name, dtype, None if spec.shape.rank is None else spec.shape.as_list())


def _is_b64(value) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def _b64(value, name) -> bytes:
    data = value["b64"]
    if not isinstance(data, str):
        raise RequestError(f"input {name!r}: the value of \"b64\" must be a base64 string")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(f"input {name!r}: invalid base64 ({exc}); encode the raw bytes with standard base64") from None


def _strings(value, name):
    """Nested lists of str / {"b64"} -> nested lists of bytes (raises on anything else)."""
    if isinstance(value, list):
        return [_strings(v, name) for v in value]
    if isinstance(value, str):
        return value.encode("utf-8")
    if _is_b64(value):
        return _b64(value, name)
    raise RequestError(f"input {name!r} takes strings (or {{\"b64\": ...}} for binary data), got {type(value).__name__} "
                       f"{json.dumps(value)[:60]}")


def _shape_of(value) -> tuple[int, ...]:
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return tuple(shape)


def to_array(value, spec: Spec) -> np.ndarray:
    """A JSON value (nested lists) -> numpy array of the input's dtype, shape checked.

    Raises:
        RequestError: wrong dtype, ragged nesting, base64 errors, or a shape
            the signature does not take.
    """
    if spec.is_string:
        nested = _strings(value, spec.name)
        shape = _shape_of(nested)
        arr = np.empty(shape, dtype=object)
        try:
            if shape:
                flat = np.array(nested, dtype=object)
                if flat.shape != shape:
                    raise ValueError
                arr[...] = flat
            else:
                arr[()] = nested
        except ValueError:
            raise RequestError(f"input {spec.name!r}: lists of different lengths (a tensor must be rectangular)") from None
    else:
        if _contains(value, lambda v: isinstance(v, (str, dict)) or v is None):
            raise RequestError(f"input {spec.name!r} takes {spec.dtype.name} numbers, got strings/objects/null; "
                               "send numbers (strings only go to string inputs)")
        try:
            raw = np.array(value)
        except ValueError:
            raise RequestError(f"input {spec.name!r}: lists of different lengths (a tensor must be rectangular)") from None
        if raw.dtype == object:
            raise RequestError(f"input {spec.name!r}: lists of different lengths (a tensor must be rectangular)")
        if spec.dtype.kind == "b":
            if raw.dtype.kind != "b":
                raise RequestError(f"input {spec.name!r} takes true/false, got {raw.dtype.name} values")
            arr = raw
        elif spec.dtype.kind in "iu":
            if raw.dtype.kind == "f" and not np.all(np.isfinite(raw) & (raw == np.round(raw))):
                raise RequestError(f"input {spec.name!r} takes integers ({spec.dtype.name}), got fractional numbers")
            info = np.iinfo(spec.dtype)
            if raw.size and (raw.min() < info.min or raw.max() > info.max):
                raise RequestError(f"input {spec.name!r}: values outside the range of {spec.dtype.name}")
            arr = raw.astype(spec.dtype)
        else:
            arr = raw.astype(spec.dtype)
    if spec.shape is not None:
        if arr.ndim != len(spec.shape) or any(d is not None and d != a for d, a in zip(spec.shape, arr.shape)):
            want = "(" + ", ".join("?" if d is None else str(d) for d in spec.shape) + ")"
            raise RequestError(f"input {spec.name!r} takes shape {want}, got {arr.shape}")
    return arr


def _contains(value, test) -> bool:
    if isinstance(value, list):
        return any(_contains(v, test) for v in value)
    return bool(test(value))


def parse_json(body: bytes) -> dict:
    """A `:predict` body -> its JSON object; raises `RequestError` when malformed."""
    try:
        request = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(f"malformed JSON request body: {exc}") from None
    if not isinstance(request, dict):
        raise RequestError("the request body must be a JSON object such as {\"instances\": [...]} or {\"inputs\": {...}}")
    unknown = set(request) - {"instances", "inputs", "signature_name"}
    if unknown:
        raise RequestError(f"unknown key(s) {sorted(unknown)} in the request; expected \"instances\" or \"inputs\" "
                           "(and optionally \"signature_name\")")
    if ("instances" in request) == ("inputs" in request):
        raise RequestError("the request needs exactly one of \"instances\" (row format) or \"inputs\" (columnar format)")
    if not isinstance(request.get("signature_name", ""), str):
        raise RequestError("\"signature_name\" must be a string")
    return request


def request_inputs(request: Mapping[str, Any], specs: Mapping[str, Spec]) -> tuple[str, dict[str, np.ndarray]]:
    """A parsed request + one signature's input specs -> ("row" | "columnar", {input name: numpy array}).

    Row format: every array's first dimension is the number of instances.

    Raises:
        RequestError: wrong input names, dtypes or shapes, ragged lists, bad base64.
    """
    names = list(specs)
    if "instances" in request:
        return "row", _rows(request["instances"], specs, names)
    return "columnar", _columns(request["inputs"], specs, names)


def _check_names(given, names):
    if set(given) != set(names):
        missing, extra = sorted(set(names) - set(given)), sorted(set(given) - set(names))
        parts = ([f"missing {missing}"] if missing else []) + ([f"unknown {extra}"] if extra else [])
        raise RequestError(f"wrong input names ({', '.join(parts)}); this signature takes {names}")


def _rows(instances, specs, names):
    if not isinstance(instances, list) or not instances:
        raise RequestError("\"instances\" must be a non-empty list with one entry per example")
    named = [isinstance(x, dict) and not _is_b64(x) for x in instances]
    if any(named) and not all(named):
        raise RequestError("\"instances\" mixes objects of named inputs with plain values; use one form for all")
    if all(named):
        for x in instances:
            _check_names(x, names)
        columns = {n: [x[n] for x in instances] for n in names}
    elif len(names) == 1:
        columns = {names[0]: instances}
    else:
        raise RequestError(f"this signature takes several inputs {names}: each instance must be an object "
                           "with all of them, e.g. {" + ", ".join(f'"{n}": ...' for n in names) + "}")
    return {n: to_array(columns[n], specs[n]) for n in names}


def _columns(inputs, specs, names):
    if isinstance(inputs, dict) and not _is_b64(inputs):
        _check_names(inputs, names)
        return {n: to_array(inputs[n], specs[n]) for n in names}
    if len(names) != 1:
        raise RequestError(f"this signature takes several inputs {names}: \"inputs\" must be an object with all of them")
    return {names[0]: to_array(inputs, specs[names[0]])}


def _json_value(name: str, arr: np.ndarray):
    """numpy output -> JSON-ready nested lists (strings decoded, `_bytes` outputs base64-encoded)."""
    arr = np.asarray(arr)
    if arr.dtype.kind in "SO":
        if name.endswith("_bytes"):
            enc = lambda b: {"b64": base64.b64encode(b).decode("ascii")}  # noqa: E731
        else:
            enc = lambda b: b.decode("utf-8", "replace") if isinstance(b, bytes) else str(b)  # noqa: E731
        return np.vectorize(enc, otypes=[object])(arr).tolist() if arr.ndim else enc(arr.item())
    return arr.tolist()


def rows_response(outputs: Mapping[str, np.ndarray]) -> dict:
    """`{"predictions": [...]}`: one value per row for a single output, else one object per row."""
    items = {k: _json_value(k, v) for k, v in outputs.items()}
    if len(items) == 1:
        return {"predictions": next(iter(items.values()))}
    n = len(next(iter(items.values())))
    return {"predictions": [{k: v[i] for k, v in items.items()} for i in range(n)]}


def columns_response(outputs: Mapping[str, np.ndarray]) -> dict:
    """`{"outputs": value}` for a single output, else `{"outputs": {name: value}}`."""
    items = {k: _json_value(k, v) for k, v in outputs.items()}
    return {"outputs": next(iter(items.values())) if len(items) == 1 else items}


def dumps(obj) -> bytes:
    """JSON with TF Serving's `NaN` / `Infinity` tokens for non-finite floats."""
    return json.dumps(obj, allow_nan=True, separators=(",", ":")).encode("utf-8")

