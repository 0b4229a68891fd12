"""`zoo serve`: exports served over TensorFlow Serving's REST API, with a Gradio demo page.

    zoo serve saved_models/cifar10_cnn saved_models/imdb_bilstm_attention --port 8501
    curl localhost:8501/v1/models/cifar10_cnn
    curl -d '{"instances": [{"b64": "'$(base64 -w0 cat.jpg)'"}]}' localhost:8501/v1/models/cifar10_cnn:predict

The server needs no zoo model code: each version is `tf.saved_model.load`ed
and its signatures called (`serving_default` unless the request names
another); `model_card.json` is read only for the demo page's labels.
Parts: `repository` (versions on disk, polled), `codec` (TF Serving's JSON
mapping), `batching` (server-side batching), `app` (FastAPI routes, uvicorn),
`demo` (the Gradio page at /demo: one tab per model, calling the same
predict path as the REST API; needs the `demo` extra).

Implemented as in TF Serving's REST API page
(https://www.tensorflow.org/tfx/serving/api_rest): `GET /v1/models/NAME[/versions/N]`
(model status), `GET /v1/models/NAME[/versions/N]/metadata` (signature defs,
the SavedModel's own protos as JSON), `POST /v1/models/NAME[/versions/N]:predict`
with `{"instances": ...}` (answer `{"predictions": ...}`) or `{"inputs": ...}`
(answer `{"outputs": ...}`), optional `"signature_name"`, `{"b64": ...}` binary
strings, `NaN`/`Infinity` tokens, errors as `{"error": "..."}`: 400 for a bad
request, 404 for an unknown model, version or URL.

Differences from TF Serving (what a client might notice):

- All versions found are served and the highest is the default, as TF
  Serving's `model_version_policy {all {}}`; TF Serving's default policy
  serves only the latest version.
- A model's name is its directory's name (TF Serving: `--model_name` or a
  model config file); no `--model_config_file`, no gRPC port.
- Version labels (`/labels/LABEL`) and the `:classify` / `:regress` verbs are
  not implemented (404 and 400, saying so).  Exports here carry predict
  signatures only.
- `{"b64": ...}` is accepted for any string input, and a plain JSON string
  for a `_bytes` input (its UTF-8 bytes); string outputs not ending in
  `_bytes` are returned as UTF-8 text with invalid bytes replaced.
- The `--host` default is 127.0.0.1 (TF Serving listens on all interfaces);
  pass `--host 0.0.0.0` to expose it.
- Batching is on by default (`--max-batch-size 32 --batch-timeout-ms 0`:
  a batch takes what queued while the previous one ran, without waiting;
  `--max-batch-size 1` turns it off); TF Serving's is off unless
  `--enable_batching`.  Requests join only when their non-batch dimensions
  agree (no padding of variable-length inputs), and a request larger than
  the maximum runs alone instead of being split.
- A version that fails to load is reported with state `END` and its error,
  retried on the next 4 polls, then only when its `saved_model.pb` changes
  (TF Serving retries 5 times, a minute apart).
- Error message wording differs; the status codes and the `{"error": ...}`
  shape are the same.  Extra routes: `/` (redirects to `/demo/`) and
  `/demo/...` (the Gradio app: its page, `/demo/config`, and its own API
  under `/demo/gradio_api/`, e.g. `call/imdb_bilstm_attention_classify`);
  with `--no-demo` or without gradio, `/` answers JSON naming the models.
- Not a server difference but visible through it: `imdb_bilstm_attention`
  exports answer two more outputs, `tokens` and `attention` (per token,
  padded to the vectorizer's sequence length, 256), in every `:predict`.
"""

from zoo.server.app import RunningServer, create_app, running, serve
from zoo.server.codec import RequestError
from zoo.server.repository import ModelRepository, NotFound

__all__ = ["serve", "running", "RunningServer", "create_app", "ModelRepository", "NotFound", "RequestError"]
