"""The benches that score an export on data it never saw run end to end through `tf.saved_model.load` alone.

Each bench (image_shift, text_ood, translator_ood, speech_shift) is run as a
user runs it, on a tiny untrained export of its family (`serve_fixtures`)
and a few items of the real test data, and must write a report whose
figures are fractions of what it scored; the export's own figures are not
the point (the models are untrained), the bench's plumbing is.
"""

import json

import pytest
import tensorflow as tf

from bench_fixtures import load_bench as _bench
from serve_fixtures import EXPORTERS


def test_load_export_reads_the_card_and_warms_up_once(tmp_path):
    common = _bench("common")
    export = EXPORTERS["text"](tmp_path)
    calls = []
    card, fn = common.load_export(export, warm_up=lambda f: calls.append(f(text=tf.constant(["a film"]))))
    assert card["model"] == "imdb_bilstm_attention"
    assert len(calls) == 1 and calls[0]["probability"].shape == (1,)
    assert 0.0 <= float(fn(text=tf.constant(["awful"]))["probability"][0]) <= 1.0


@pytest.mark.parametrize("family, bench, args", [
    ("image", "image_shift", ["--limit", "8"]),
    ("speech", "speech_shift", ["--limit", "4"]),
    ("text", "text_ood", ["--limit", "16", "--short", "8"]),
    ("translation", "translator_ood", ["--limit", "6"]),
])
def test_export_bench_runs_on_a_tiny_export(family, bench, args, tmp_path, shared_data_dir, capsys):
    export = EXPORTERS[family](tmp_path / "exports")
    out = tmp_path / "report.json"
    assert _bench(bench).main([str(export), "--data-dir", str(shared_data_dir), *args, "--out", str(out)]) in (0, None)
    report = json.loads(out.read_text())
    assert report["cpu"]["cores"] >= 1
    printed = capsys.readouterr().out
    if family in ("image", "speech"):  # one export, a row per change of the input
        rows = report["changes"]
        assert "clean" in rows and len(rows) > 5
        assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows.values())
        assert "| clean | " in printed
    elif family == "text":
        row = report["models"]["imdb_bilstm_attention"]
        assert report["imdb_test_reviews"] == 16 and report["short"]["reviews"] == 8
        assert 0.0 <= row["imdb_test"] <= 1.0 and 0.0 <= row["ood"] <= 1.0
        assert row["card_test_accuracy"] is None and "not in the card" in printed  # an untrained export has no test figure
    else:
        sets = report["models"]["multi30k_transformer"]["sets"]
        assert sets["test_2016_flickr"]["sentences"] == 6
        assert all(len(s["translations"]) == s["sentences"] for s in sets.values())
        assert all(0.0 <= s["bleu"] <= 100.0 for s in sets.values())
