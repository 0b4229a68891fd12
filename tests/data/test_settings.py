"""zoo.data settings: data/cache folders, checksums, atomic writes, the registry."""

from __future__ import annotations

import hashlib
import json
import pathlib

import numpy as np
import pytest

import zoo.data as zd
from zoo.data import DataError


# ---------------------------------------------------------------------------
# resolve_data_dir
# ---------------------------------------------------------------------------


def test_data_dir_argument_wins_over_env(tmp_path, monkeypatch):
    arg, env = tmp_path / "arg", tmp_path / "env"
    arg.mkdir()
    env.mkdir()
    monkeypatch.setenv("ZOO_DATA_DIR", str(env))
    assert zd.resolve_data_dir(arg) == arg
    assert zd.resolve_data_dir(str(arg)) == arg
    assert zd.resolve_data_dir() == env
    assert zd.resolve_data_dir("") == env  # empty argument counts as not given


def test_data_dir_none_when_unset(monkeypatch):
    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)
    assert zd.resolve_data_dir() is None
    monkeypatch.setenv("ZOO_DATA_DIR", "")
    assert zd.resolve_data_dir() is None


def test_missing_data_dir_error_names_path_and_fix(tmp_path, monkeypatch):
    missing = tmp_path / "nope"
    with pytest.raises(DataError) as err:
        zd.resolve_data_dir(missing)
    msg = str(err.value)
    assert str(missing) in msg and "does not exist" in msg
    assert "--data-dir" in msg and "ZOO_DATA_DIR" in msg

    monkeypatch.setenv("ZOO_DATA_DIR", str(missing))
    with pytest.raises(DataError, match="ZOO_DATA_DIR"):
        zd.resolve_data_dir()


def test_data_dir_that_is_a_file(tmp_path):
    f = tmp_path / "cifar10-jpeg.tar.gz"
    f.write_bytes(b"x")
    with pytest.raises(DataError, match="not a directory"):
        zd.resolve_data_dir(f)


def test_data_error_is_value_error():
    assert issubclass(DataError, ValueError)


# ---------------------------------------------------------------------------
# cache_dir
# ---------------------------------------------------------------------------


def test_cache_dir_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "zc"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    d = zd.cache_dir("cifar10", "abc")
    assert d == (tmp_path / "zc" / "cifar10" / "abc").resolve() and d.is_dir()

    monkeypatch.delenv("ZOO_CACHE_DIR")
    assert zd.cache_dir("x") == (tmp_path / "xdg" / "zoo" / "x").resolve()

    monkeypatch.delenv("XDG_CACHE_HOME")
    assert zd.cache_dir("x") == (tmp_path / "home" / ".cache" / "zoo" / "x").resolve()
    assert (tmp_path / "home" / ".cache" / "zoo" / "x").is_dir()


def test_cache_dir_refuses_the_repository(monkeypatch):
    repo = pathlib.Path(zd.__file__).resolve().parents[2]
    monkeypatch.setenv("ZOO_CACHE_DIR", str(repo / "cache"))
    with pytest.raises(DataError, match="inside the repository"):
        zd.cache_dir("x")
    assert not (repo / "cache").exists()


# ---------------------------------------------------------------------------
# verify_file
# ---------------------------------------------------------------------------


def _data_dir_with(tmp_path, content=b"hello world\n", listed_digest=None):
    d = tmp_path / "data"
    (d / "sub").mkdir(parents=True)
    f = d / "sub" / "file.bin"
    f.write_bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    (d / "SHA256SUMS").write_text(f"{listed_digest or digest}  sub/file.bin\n0000  other.bin\n")
    return d, f, digest


def test_verify_file_returns_digest(tmp_path):
    d, f, digest = _data_dir_with(tmp_path)
    assert zd.verify_file(f, d) == digest
    assert zd.verify_file("sub/file.bin", d) == digest  # relative to the data dir
    assert zd.verify_file(f) == digest  # no data dir: hash only


def test_verify_file_mismatch_names_file_and_digests(tmp_path):
    wrong = "ab" * 32
    d, f, digest = _data_dir_with(tmp_path, listed_digest=wrong)
    with pytest.raises(DataError) as err:
        zd.verify_file(f, d)
    msg = str(err.value)
    assert str(f) in msg and wrong in msg and digest in msg


def test_verify_file_unlisted_is_not_checked(tmp_path):
    d, _, _ = _data_dir_with(tmp_path)
    g = d / "unlisted.txt"
    g.write_text("x")
    assert zd.verify_file(g, d) == hashlib.sha256(b"x").hexdigest()


def test_verify_file_missing_names_path(tmp_path):
    d, _, _ = _data_dir_with(tmp_path)
    with pytest.raises(DataError) as err:
        zd.verify_file(d / "missing.tar.gz", d)
    assert str(d / "missing.tar.gz") in str(err.value)


def test_verify_file_memoised_per_size_and_mtime(tmp_path, monkeypatch):
    d, f, digest = _data_dir_with(tmp_path)
    calls = []
    real = zd._sha256
    monkeypatch.setattr(zd, "_sha256", lambda p, *a: calls.append(p) or real(p, *a))
    zd._DIGESTS.clear()
    assert zd.verify_file(f, d) == digest
    assert zd.verify_file(f, d) == digest
    assert len(calls) == 1
    f.write_bytes(b"changed, and longer than before\n")  # size (and mtime) change
    with pytest.raises(DataError, match="checksum mismatch"):
        zd.verify_file(f, d)
    assert len(calls) == 2


# ---------------------------------------------------------------------------
# atomic_write / write_json
# ---------------------------------------------------------------------------


def test_atomic_write_file_and_suffix(tmp_path):
    target = tmp_path / "deep" / "arr.npy"
    with zd.atomic_write(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.endswith(".npy") and not tmp.exists()
        np.save(tmp, np.arange(3))  # np.save would append .npy to a bare name
    assert np.array_equal(np.load(target), np.arange(3))
    assert sorted(p.name for p in target.parent.iterdir()) == ["arr.npy"]


def test_atomic_write_failure_keeps_old_content(tmp_path):
    target = tmp_path / "x.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with zd.atomic_write(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_atomic_write_nothing_written(tmp_path):
    with pytest.raises(FileNotFoundError):
        with zd.atomic_write(tmp_path / "y.txt"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_replaces_directory(tmp_path):
    target = tmp_path / "export"
    (target / "old").mkdir(parents=True)
    (target / "old" / "f").write_text("1")
    with zd.atomic_write(target) as tmp:
        tmp.mkdir()
        (tmp / "saved_model.pb").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["saved_model.pb"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_write_json_roundtrip(tmp_path):
    obj = {"a": np.int64(3), "b": np.float32(0.5), "c": np.arange(2), "p": tmp_path, "s": {2, 1}}
    path = zd.write_json(tmp_path / "info.json", obj)
    text = path.read_text()
    assert text.endswith("\n")
    assert json.loads(text) == {"a": 3, "b": 0.5, "c": [0, 1], "p": str(tmp_path), "s": [1, 2]}


def test_write_text_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "vocabulary.txt"
    assert zd.write_text(target, "über\nSchön\n") == target
    assert target.read_text(encoding="utf-8") == "über\nSchön\n"  # UTF-8 whatever the locale
    with pytest.raises(UnicodeEncodeError):
        zd.write_text(target, "half\n\ud800")  # a lone surrogate cannot be encoded: the write fails midway
    assert target.read_text(encoding="utf-8") == "über\nSchön\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vocabulary.txt"]  # no temporary left behind


# ---------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------


def test_dataset_registry():
    from zoo.registry import UnknownNameError

    assert "cifar10" in zd.DATASETS
    assert "cifar10" in zd.DATASETS.names()
    with pytest.raises(UnknownNameError) as err:
        zd.load_dataset("cifar1O")
    assert "cifar10" in str(err.value)
    assert isinstance(err.value, KeyError) and isinstance(err.value, ValueError)


def test_data_bundle_fields():
    b = zd.DataBundle(train="tr", val=None, test="te", info={"n": 1})
    assert b.preprocessor is None and b.val is None and b.info == {"n": 1}


def test_data_bundle_builds_a_train_function_once_on_first_use():
    built = []
    b = zd.DataBundle(train=lambda: built.append(1) or "pipeline", val=None, test="te", info={})
    assert built == [] and not b.is_built("train") and b.is_built("test")
    b.apply("train", str.upper)  # applied when it is built
    assert built == []
    assert b.train == "PIPELINE" and b.train == "PIPELINE" and built == [1] and b.is_built("train")
    b.apply("test", str.upper)  # a built field: applied now
    assert b.test == "TE"
    with pytest.raises(AttributeError, match="nothing"):
        b.nothing

    def broken():
        raise zd.DataError("no data")

    failing = zd.DataBundle(train=broken, val=None, test="te", info={})
    with pytest.raises(zd.DataError):
        failing.train
    assert not failing.is_built("train")  # a failed build is not recorded as built


def test_an_unbuilt_train_survives_copy_repr_and_the_autotune_pass():
    import copy

    built = []
    b = zd.DataBundle(train=lambda: built.append(1) or "pipeline", val=None, test="te", info={"n": 1})
    assert "pipeline" not in repr(b) and b == zd.DataBundle(train="other", val=None, test="te", info={"n": 1})
    assert built == []  # neither repr nor == builds it
    c = copy.copy(b)
    assert c.train == "pipeline" and built == [1]
    assert not b.is_built("train") and b.train == "pipeline" and built == [1, 1]  # the original kept its builder
    d = zd.bundle_without_autotune_threads(zd.DataBundle(train=lambda: "not a dataset", val=None, test="te", info={}))
    assert d.train == "not a dataset"  # only tf.data pipelines get the option, built now or later


# ---------------------------------------------------------------------------
# load_dataset: tf.data's autotuning thread off on every pipeline of a bundle
# ---------------------------------------------------------------------------


def test_every_pipeline_of_a_bundle_runs_without_the_autotune_thread(tmp_path):
    """`load_dataset` turns tf.data autotuning off on train, val, test and family extras (here FSDD's connected test
    set), and the batches are the loader's own, in the same order."""
    from speech_fixtures import write_fsdd_archive

    data_dir = write_fsdd_archive(tmp_path, takes=7)
    kw = dict(data_dir=data_dir, batch_size=8, connected={"num_train": 6, "num_test": 4, "max_digits": 2})
    bundle = zd.load_dataset("fsdd", **kw)
    raw = zd.DATASETS.get("fsdd")(**kw)
    assert raw.train.options().autotune.enabled is not False  # the loader alone leaves it on ...
    for name in ("train", "val", "test", "test_connected"):
        ds = getattr(bundle, name)
        assert ds.options().autotune.enabled is False, name  # ... load_dataset turns it off everywhere
        for ours, theirs in zip(ds, getattr(raw, name)):
            np.testing.assert_array_equal(ours[0]["waveform"].numpy(), theirs[0]["waveform"].numpy())
            np.testing.assert_array_equal(ours[1].numpy(), theirs[1].numpy())
    assert bundle.info == raw.info
    import zoo
    from zoo.training import load_run_data

    run_data = load_run_data(zoo.get_spec("fsdd_ctc"), {"batch_size": 8, "data": {"connected": kw["connected"]}},
                             data_dir=data_dir)  # the way training calls the loader
    assert all(getattr(run_data, n).options().autotune.enabled is False for n in ("train", "val", "test"))
