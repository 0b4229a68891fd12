"""A user without the offline copies: tensorflow-datasets and the pinned Multi30k download.

No test may reach the network, so each goes as far as it can offline: the
real loaders run with no data directory, every import and builder step runs,
and the HTTP layer is replaced by one that fails at once.  The error must then
be about the network (not a missing module) and say what to do instead.
"""

import pytest

from zoo.data import DataError


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No data directory, a private TFDS folder, and an HTTP layer that fails at once."""
    import urllib.request

    import requests

    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))

    def no_network(*args, **kwargs):
        raise requests.exceptions.ConnectionError("network unreachable (offline test)")

    def no_url(*args, **kwargs):
        raise urllib.error.URLError("network unreachable (offline test)")

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", no_network)
    monkeypatch.setattr(urllib.request, "urlopen", no_url)
    monkeypatch.setattr("keras.src.utils.file_utils.urlretrieve", no_url)  # keras.utils.get_file's own import


def _load(name):
    if name == "cifar10":
        from applications.image.data import load_cifar10_arrays

        return load_cifar10_arrays("train")
    if name == "imdb_reviews":
        from applications.text.data import load_imdb_texts

        return load_imdb_texts("train")
    from applications.speech.data import load_fsdd_recordings

    return load_fsdd_recordings()


@pytest.mark.parametrize("name", ["cifar10", "imdb_reviews", "spoken_digit"])
def test_tfds_fallback_gets_as_far_as_the_download(offline, monkeypatch, name):
    monkeypatch.setattr("zoo.data.download_hosts_unreachable", lambda urls, timeout=5.0: None)  # past the probe
    with pytest.raises(DataError) as info:
        _load(name)
    msg = str(info.value)
    assert f"tensorflow-datasets could not load {name!r}" in msg
    assert "ConnectionError" in msg, msg  # it reached the download: no missing module on the way
    assert "ModuleNotFoundError" not in msg and "ImportError" not in msg
    assert "--data-dir" in msg and "ZOO_DATA_DIR" in msg


@pytest.fixture
def refused_sockets(monkeypatch):
    """No proxy, and every TCP connection refused; yields the addresses that were tried."""
    import socket

    tried = []

    def refuse(address, *args, **kwargs):
        tried.append(address)
        raise OSError("network unreachable (offline test)")

    monkeypatch.setattr(socket, "create_connection", refuse)
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    return tried


@pytest.mark.parametrize("name", ["cifar10", "spoken_digit"])
def test_offline_tfds_fallback_fails_fast_naming_the_host(offline, refused_sockets, monkeypatch, name):
    """Offline, the download hosts are probed before tensorflow-datasets starts its minutes of retries."""
    import time

    import tensorflow_datasets as tfds

    def no_load(*args, **kwargs):
        raise AssertionError("tensorflow-datasets was asked to download although the host is unreachable")

    monkeypatch.setattr(tfds, "load", no_load)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_load)
    start = time.monotonic()
    with pytest.raises(DataError) as info:
        _load(name)
    msg = str(info.value)
    assert time.monotonic() - start < 30
    host = {"cifar10": "www.cs.toronto.edu", "spoken_digit": "github.com"}[name]
    assert refused_sockets and refused_sockets[0] == (host, 443)
    assert f"cannot reach {host}:443" in msg and "offline" in msg and "--data-dir" in msg


def test_download_probe_steps_aside_for_a_proxy(refused_sockets, monkeypatch):
    from zoo.data import download_hosts_unreachable

    assert "cannot reach example.org:80" in download_hosts_unreachable(["http://example.org/a.tar.gz"])
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.local:3128")
    assert download_hosts_unreachable(["https://example.org/a.tar.gz"]) is None


def test_tfds_prepare_dependencies_are_installed():
    """What the builders import lazily while preparing (after the download) is installed."""
    from tensorflow_datasets.core import lazy_imports_lib

    assert lazy_imports_lib.lazy_imports.pydub.AudioSegment  # spoken_digit decodes its WAVs with pydub
    import importlib_resources  # noqa: F401  (download_and_prepare reads its checksum files with it)


def test_multi30k_download_is_pinned_and_says_what_to_do_offline(offline):
    from applications.translation.data import MULTI30K_SHA256, load_pairs

    assert len(MULTI30K_SHA256) == 6 and all(len(d) == 64 for d in MULTI30K_SHA256.values())
    with pytest.raises(DataError, match="Multi30k could not be downloaded.*network unreachable.*multi30k/dataset.*--data-dir"):
        load_pairs("train")


def test_multi30k_download_checks_the_pinned_digest(monkeypatch, tmp_path):
    """A file that arrives with other bytes is refused (get_file compares the SHA-256)."""
    from applications.translation.data import load_pairs

    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)

    def fake_retrieve(url, filename, *args, **kwargs):
        with open(filename, "wb") as f:
            f.write(b"not the real file")
        return filename, None

    monkeypatch.setattr("keras.src.utils.file_utils.urlretrieve", fake_retrieve)
    with pytest.raises(DataError, match="Multi30k could not be downloaded.*(corrupt|hash|match)"):
        load_pairs("val")
