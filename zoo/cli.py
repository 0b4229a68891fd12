"""The `zoo` command line: list | info | train | evaluate | export | predict.

    zoo list 'cifar10_*' --modality image
    zoo info cifar10_resnet
    zoo train cifar10_resnet --epochs 10 --set width=32 --set data.cutout=0
    zoo evaluate cifar10_resnet --run-dir runs/cifar10_resnet
    zoo export cifar10_resnet --run-dir runs/cifar10_resnet --out saved_models
    zoo predict saved_models/cifar10_resnet/1 cat.jpg dog.png --json

Errors (unknown names, bad settings, missing data) print one line naming the
problem and the fix, and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """`["width=32", "data.cutout=0", "optimizer=sgd"]` -> {"width": 32, "data": {"cutout": 0}, ...}.

    Values are read as JSON when they parse (numbers, true/false, lists), else as strings.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*["-" * w for w in widths]), *(fmt.format(*map(str, r)) for r in rows)])


def cmd_list(args) -> int:
    import zoo

    names = zoo.list_models(args.pattern, modality=args.modality)
    if not names:
        print(f"no model matches {args.pattern!r}" + (f" in modality {args.modality}" if args.modality else ""), file=sys.stderr)
        return 1
    rows = [[n, s.modality, s.task.name, s.dataset_name, s.description] for n in names for s in [zoo.get_spec(n)]]
    print(_table(rows, ["name", "modality", "task", "dataset", "description"]))
    return 0


def cmd_info(args) -> int:
    import zoo

    info = zoo.model_info(args.name)
    if args.params:
        info["params"] = int(zoo.create_model(args.name).count_params())
    print(json.dumps(info, indent=2, default=str))
    return 0


def cmd_train(args) -> int:
    from zoo import distribute

    if args.worker_hosts or args.task_index is not None:
        if not (args.worker_hosts and args.task_index is not None):
            raise ValueError("--worker-hosts and --task-index go together (every worker gets the same hosts, its own index)")
        distribute.write_tf_config(args.worker_hosts, args.task_index)
    distribute.make_strategy(args.distribute, args.devices)  # before any other TensorFlow op
    from zoo.training import fit

    result = fit(
        args.name,
        run_dir=args.run_dir or os.path.join("runs", args.name),
        data_dir=args.data_dir,
        epochs=args.epochs,
        batch_size=args.batch_size,
        limit=args.limit,
        overrides=parse_set(args.set),
        seed=args.seed,
        precision=args.precision,
        jit_compile=args.xla,
        distribute=args.distribute,
        devices=args.devices,
        budget_minutes=args.budget_minutes,
    )
    if args.export and distribute.is_chief():  # once, on the chief, from the final weights
        from zoo.export import export_model

        print(export_model(result.run_dir, name=args.name, base_dir=args.export), file=sys.stderr)
    test = result.metrics.get("test", {})
    summary = {k: v for k, v in test.items() if isinstance(v, (int, float))}
    print(json.dumps({"run_dir": str(result.run_dir), "train_seconds": result.metrics.get("train_seconds"), "test": summary}, indent=2))
    return 0


def cmd_evaluate(args) -> int:
    from zoo.evaluation import evaluate
    from zoo.io import write_json
    from zoo.run import Run
    from zoo.training import load_run, load_run_data

    run = Run(args.run_dir)
    spec, model, config = load_run(run.path)
    if spec.name != args.name:
        raise ValueError(f"{args.run_dir} holds a {spec.name} run, not {args.name}")
    if args.tta and spec.modality != "image":  # before loading any data
        raise ValueError(f"--tta (flip test-time augmentation) is for image models; {spec.name} is a {spec.modality} model")
    train = config["train"]
    if (args.limit is not None and args.limit != config.get("limit")
            and run.preprocessor.exists()):
        raise ValueError(f"--limit {args.limit} differs from the run's ({config.get('limit')}): the loader would fit "
                         "a new vocabulary on that slice, which does not match the trained model; leave --limit out")
    data = load_run_data(spec, train, data_dir=args.data_dir or config.get("data_dir"),
                         limit=args.limit if args.limit is not None else config.get("limit"))
    options = {"tta_flip": True} if args.tta else {}
    metrics = evaluate(spec, model, data, run.path, **options)
    out = run.path / "evaluation.json"
    write_json(out, metrics)
    print(json.dumps({k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0


def cmd_export(args) -> int:
    from zoo.export import export_model

    path = export_model(args.run_dir, name=args.name, base_dir=args.out, tflite=args.tflite, verify=not args.no_verify,
                        tta=not args.no_tta)
    print(path)
    return 0


def cmd_predict(args) -> int:
    from zoo.export import predict

    generation = {k: getattr(args, k) for k in ("sampler", "num_return_sequences", "max_length", "temperature",
                                                  "top_p", "seed")}
    rows = predict(args.target, args.inputs, run_dir=args.run_dir, top_k=args.top_k, read_files=args.read_files,
                   generation=generation)
    good = [r for r in rows if "error" not in r]
    for r in rows:
        if "error" in r:
            print(f"zoo predict: error: {r['error']}", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
    elif good:
        keys = list(dict.fromkeys(k for r in good for k in r))  # rows may differ (a "note" on some)
        print(_table([[_fmt(r.get(k, "")) for k in keys] for r in good], keys))
    return 2 if len(good) < len(rows) else 0


def cmd_serve(args) -> int:
    try:
        from zoo.server import serve
    except ImportError as exc:
        raise ValueError(f"zoo serve needs the 'serve' extra ({exc.name} is not installed): pip install 'zoo[serve]'") from exc

    return serve(args.paths, host=args.host, port=args.port, max_batch_size=args.max_batch_size,
                 batch_timeout_ms=args.batch_timeout_ms, poll_seconds=args.poll_seconds,
                 demo=False if args.no_demo else None)


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, list):
        return ", ".join(_fmt(x) for x in v)
    if isinstance(v, dict):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items())
    return str(v)


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's log lines and full tracebacks of errors")
    p = argparse.ArgumentParser(prog="zoo", description="A registry of Keras models: list, train, evaluate, export, predict.",
                                parents=[common])
    sub = p.add_subparsers(dest="command", required=True)
    _add = sub.add_parser
    sub.add_parser = lambda *a, **k: _add(*a, parents=[common], **k)  # --verbose after the command too

    s = sub.add_parser("list", help="list registered models")
    s.add_argument("pattern", nargs="?", default="*", help="shell-style wildcard, e.g. 'cifar10_*'")
    s.add_argument("--modality", help="keep one modality: image, text, translation, speech, ...")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("info", help="show a model's spec as JSON")
    s.add_argument("name")
    s.add_argument("--params", action="store_true", help="also build the model and count its parameters")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("train", help="train a model into a run directory (rerun to resume)")
    s.add_argument("name")
    s.add_argument("--data-dir", help="folder with the offline datasets (default: $ZOO_DATA_DIR)")
    s.add_argument("--run-dir", help="run directory (default: runs/NAME)")
    s.add_argument("--epochs", type=positive_int)
    s.add_argument("--batch-size", type=positive_int)
    s.add_argument("--limit", type=positive_int, help="use only the first N examples of each split (smoke runs)")
    s.add_argument("--seed", type=int)
    s.add_argument("--budget-minutes", type=positive_float, metavar="MIN",
                   help="time the first epoch (the spec's budget_plan_after epochs: fsdd_ctc's 2) and train as many "
                        "of the epochs as fit in MIN minutes (default: the spec's budget_minutes setting, e.g. "
                        "fsdd_ctc's 15, unless --epochs is given)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a model argument or training setting; dotted keys reach into dicts (data.cutout=0)")
    s.add_argument("--precision", default="float32", help="float32 | mixed | mixed_bfloat16 | mixed_float16")
    s.add_argument("--xla", action="store_true", help="XLA-compile the train step")
    s.add_argument("--distribute", default="auto", choices=["auto", "none", "mirrored", "multi-worker"],
                   help="data-parallel strategy (auto: multi-worker when TF_CONFIG names several workers, "
                        "mirrored with several GPUs); --batch-size stays the global batch")
    s.add_argument("--devices", type=int, help="replicas for mirrored: GPUs, or logical CPU devices (testing)")
    s.add_argument("--worker-hosts", metavar="H:P,H:P", help="write TF_CONFIG for these workers (same list on each)")
    s.add_argument("--task-index", type=int, help="this worker's index in --worker-hosts (0 is the chief)")
    s.add_argument("--export", metavar="DIR", help="after training, export the run into DIR (on the chief only)")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("evaluate", help="evaluate a trained run on the test split")
    s.add_argument("name")
    s.add_argument("--run-dir", required=True)
    s.add_argument("--data-dir")
    s.add_argument("--limit", type=positive_int)
    s.add_argument("--tta", action="store_true", help="flip test-time augmentation (image models)")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("export", help="export a trained run as a SavedModel on raw inputs")
    s.add_argument("name")
    s.add_argument("--run-dir", required=True)
    s.add_argument("--out", default="saved_models", help="base directory (TF Serving layout NAME/VERSION)")
    s.add_argument("--tflite", action="store_true", help="also convert to TensorFlow Lite and check parity")
    s.add_argument("--no-verify", action="store_true", help="skip the clean-process verification (not recommended)")
    s.add_argument("--no-tta", action="store_true",
                   help="image models: serve one view per image, not the test-time augmentation the run was "
                        "evaluated with (the default, so the export scores what its model card reports)")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("predict", help="run a SavedModel or a trained model on image files, text or WAV files")
    s.add_argument("target", help="a SavedModel directory, its model.tflite (zoo export --tflite), or a registered "
                                  "model name (with --run-dir)")
    s.add_argument("inputs", nargs="+")
    s.add_argument("--run-dir", help="run directory when TARGET is a model name (default: runs/NAME)")
    s.add_argument("--top-k", type=positive_int,
                   help="classes listed per input (classifiers; default 3); text generation: k of --sampler top_k")
    s.add_argument("--read-files", action="store_true",
                   help="text models: the inputs are files whose UTF-8 text is used (image and speech models always read files)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    g = s.add_argument_group("text generation (language models such as imdb_gpt)")
    g.add_argument("--sampler", help="greedy | beam | top_k | top_p | random (default top_p)")
    g.add_argument("--num-return-sequences", type=int, help="continuations per prompt (default 1)")
    g.add_argument("--max-length", type=int, help="total tokens: start + prompt + continuation (default 64)")
    g.add_argument("--temperature", type=float, help="divide the logits by this (default 1.0)")
    g.add_argument("--top-p", type=float, help="p of the top_p sampler (default 0.9)")
    g.add_argument("--seed", type=int, help="seed of the random samplers (same seed, same text)")
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser("serve", help="serve exports over TF Serving's REST API, with a Gradio demo page at /demo")
    s.add_argument("paths", nargs="+", metavar="MODEL_DIR", help="model directories of numbered versions, e.g. saved_models/NAME")
    s.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0: all)")
    s.add_argument("--port", type=int, default=8501)
    s.add_argument("--max-batch-size", type=int, default=32, help="most rows per batched call; 1 turns batching off")
    s.add_argument("--batch-timeout-ms", type=float, default=0.0,
                   help="how long a batch waits for more requests (0: takes what queued while the last one ran)")
    s.add_argument("--poll-seconds", type=float, default=1.0, help="how often to look for new versions (0: never)")
    s.add_argument("--no-demo", action="store_true", help="REST API only: no Gradio demo page at /demo")
    s.set_defaults(func=cmd_serve)
    return p


USER_ERRORS = (KeyError, ValueError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def report_errors(prog: str, fn, *args, verbose: bool = False) -> int:
    """Run `fn(*args)`; a user error (bad name, setting, path or data) prints one line and returns 2.

    Shared by the `zoo` command and the example scripts, so both answer a
    mistake the same way.  With `verbose` the traceback is shown as well.
    """
    from zoo.export import ExportError

    try:
        return fn(*args)
    except (*USER_ERRORS, ExportError) as exc:
        if verbose:
            import traceback

            traceback.print_exc()
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


def quiet_unless_verbose(verbose: bool) -> None:
    """Silence TensorFlow's start-up lines, or keep them all with `verbose`."""
    if verbose:
        os.environ["ZOO_VERBOSE"] = "1"
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ ERROR lines too: a real failure raises in Python
    from zoo._tf import import_tensorflow

    import_tensorflow()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_unless_verbose(args.verbose)
    return report_errors(f"zoo {args.command}", args.func, args, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
