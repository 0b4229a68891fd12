"""Loads a bench script as a module for the tests that run one (imported by them; tests/ is on sys.path)."""

import importlib.util
import pathlib

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench"


def load_bench(name):
    """bench/<name>.py as a fresh module (bench/ holds scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
