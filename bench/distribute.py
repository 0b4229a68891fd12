"""Data-parallel overhead on one machine: `zoo train` under each tf.distribute strategy.

    python bench/distribute.py                     # ~6 min on 2 cores
    python bench/distribute.py --limit 2560 --epochs 4 --rounds 3

Trains `cifar10_resnet` (width 16) with the same global batch three ways,
alternated round by round in one run so that a busy machine hurts all alike:

  1x2        one process, 2 intra-op threads, no strategy
  2x1        two worker processes (MultiWorkerMirroredStrategy, TF_CONFIG on
             localhost), 1 intra-op thread each
  mirrored   one process, 2 threads, MirroredStrategy over 2 logical CPU devices

Images/s is the training set size divided by the epoch time (history.json),
over the epochs after the first (which traces the step); the epoch time
includes the per-epoch validation pass, the same in every setting.  Test
accuracy after the fixed number of epochs compares 1 and 2 workers (and
mirrored).  On one machine no speed-up is expected: the table shows what the
collective costs and that accuracy does not change.

Writes JSON to --out and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from common import cpu_info  # noqa: E402
from zoo.distribute import free_local_ports  # noqa: E402
from zoo.run import Run  # noqa: E402
from zoo.io import write_json  # noqa: E402

SETTINGS = ("1x2", "2x1", "mirrored")




def run_setting(setting: str, run_dir: pathlib.Path, args) -> dict:
    base = [sys.executable, "-m", "zoo.cli", "train", "cifar10_resnet", "--run-dir", str(run_dir),
            "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--limit", str(args.limit),
            "--set", "width=16", "--seed", "0"]
    if args.data_dir:
        base += ["--data-dir", args.data_dir]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    if setting == "2x1":
        hosts = ",".join(f"localhost:{p}" for p in free_local_ports(2))
        cmds = [base + ["--worker-hosts", hosts, "--task-index", str(i)] for i in range(2)]
        threads = "1"
    else:
        cmds = [base + (["--distribute", "mirrored", "--devices", "2"] if setting == "mirrored" else ["--distribute", "none"])]
        threads = "2"
    env.update(TF_NUM_INTRAOP_THREADS=threads, OMP_NUM_THREADS=threads)
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              start_new_session=True) for c in cmds]
    errs = [p.communicate(timeout=args.timeout)[1] for p in procs]
    wall = time.perf_counter() - t0
    for p, e in zip(procs, errs):
        if p.returncode:
            raise SystemExit(f"{setting} failed ({p.returncode}):\n{e[-3000:]}")
    run = Run(run_dir)
    history, metrics, info = run.read("history"), run.read("metrics"), run.read("data_info")
    n = int(info["num_train"]) // args.batch_size * args.batch_size  # drop_remainder when training
    seconds = history["seconds"][1:] or history["seconds"]
    return {"setting": setting, "images_per_s": n / statistics.median(seconds), "epoch_seconds": history["seconds"],
            "test_accuracy": metrics["test"]["accuracy"], "wall_seconds": wall, "distribute": metrics["distribute"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("ZOO_DATA_DIR"))
    p.add_argument("--limit", type=int, default=1280, help="training (and test) examples")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128, help="global batch, the same in every setting")
    p.add_argument("--rounds", type=int, default=2, help="rounds of the three settings, alternated")
    p.add_argument("--timeout", type=int, default=900)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "distribute.json"))
    args = p.parse_args(argv)

    machine = cpu_info()
    rows = []
    with tempfile.TemporaryDirectory(prefix="zoo-bench-dist-") as tmp:
        for r in range(args.rounds):
            for setting in SETTINGS:
                row = run_setting(setting, pathlib.Path(tmp) / f"{setting}-{r}", args)
                row["round"] = r
                rows.append(row)
                print(f"round {r} {setting}: {row['images_per_s']:.1f} images/s, "
                      f"accuracy {row['test_accuracy']:.3f}", file=sys.stderr)
                shutil.rmtree(pathlib.Path(tmp) / f"{setting}-{r}", ignore_errors=True)
    summary = {}
    for s in SETTINGS:
        mine = [row for row in rows if row["setting"] == s]
        summary[s] = {"images_per_s": statistics.median(row["images_per_s"] for row in mine),
                      "test_accuracy": statistics.mean(row["test_accuracy"] for row in mine),
                      "accuracies": [row["test_accuracy"] for row in mine]}
    result = {"machine": machine, "args": vars(args), "rows": rows, "summary": summary,
              "load_average_at_end": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d")}
    write_json(args.out, result)

    ref = summary["1x2"]["images_per_s"]
    print(f"| setting | images/s (median of {args.rounds}) | vs 1x2 | test accuracy after {args.epochs} epochs (mean) |")
    print("|---|---|---|---|")
    names = {"1x2": "1 worker x 2 threads", "2x1": "2 workers x 1 thread (multi-worker)",
             "mirrored": "mirrored, 2 logical CPU devices"}
    for s in SETTINGS:
        v = summary[s]
        accs = ", ".join(f"{a:.3f}" for a in v["accuracies"])
        print(f"| {names[s]} | {v['images_per_s']:.1f} | {v['images_per_s'] / ref:.2f} | {v['test_accuracy']:.3f} ({accs}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
