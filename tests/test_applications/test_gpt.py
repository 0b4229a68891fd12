"""imdb_gpt / imdb_gpt_classifier: causal mask, cache == recomputation for every sampler, seeds,
sampler identities, it learns, saving, pre-trained initialisation, the IMDB pipelines."""

import keras
import numpy as np
import pytest

import zoo
from applications.gpt.models import GPTClassifier, GPTLanguageModel
from applications.gpt.task import SAMPLERS, END_ID, START_ID, generate, language_model_task

VOCAB = 24  # ids 4..23 are "words"
TINY = dict(vocabulary_size=VOCAB, max_length=16, embedding_dim=32, num_layers=2, num_heads=2, intermediate_dim=64,
            dropout=0.0)


def _lm(**kw):
    return zoo.create_model("imdb_gpt", **{**TINY, **kw})


PROMPTS = np.array([[5, 6, 7], [9, 0, 0]], np.int32)


def test_causal_mask_does_not_leak_the_future():
    model = _lm()
    rng = np.random.default_rng(0)
    x = rng.integers(4, VOCAB, (3, 12)).astype(np.int32)
    x[:, 0] = START_ID
    base = np.asarray(model(x))
    for t in (0, 5, 10):
        y = x.copy()
        y[:, t + 1:] = rng.integers(4, VOCAB, y[:, t + 1:].shape)
        out = np.asarray(model(y))
        np.testing.assert_allclose(out[:, : t + 1], base[:, : t + 1], atol=1e-5)
        assert np.abs(out[:, t + 1:] - base[:, t + 1:]).max() > 1e-4  # the later positions do see it


def test_padding_is_inert():
    model = _lm()
    x = np.array([[2, 5, 6, 7]], np.int32)
    padded = np.array([[2, 5, 6, 7, 0, 0, 0]], np.int32)
    np.testing.assert_allclose(np.asarray(model(padded))[:, :4], np.asarray(model(x)), atol=1e-5)


def test_cached_step_logits_equal_the_full_forward_pass():
    model = _lm()
    x = np.array([[2, 5, 6, 7, 8, 9, 10, 11]], np.int32)
    full = np.asarray(model(x))
    cache = model.init_cache(1, 16)
    for t in range(x.shape[1]):
        logits, _, cache = model.call_with_cache(x[:, t:t + 1], cache, t)
        np.testing.assert_allclose(np.asarray(logits)[:, 0], full[:, t], atol=1e-4)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_cache_equals_recomputation_for_every_sampler(sampler):
    model = _lm()
    kw = dict(sampler=sampler, seed=3, num_return_sequences=2, max_length=12, top_k=5)
    cached, plen = generate(model, PROMPTS, **kw)
    uncached, plen2 = generate(model, PROMPTS, cached=False, **kw)
    np.testing.assert_array_equal(np.asarray(cached), np.asarray(uncached))
    np.testing.assert_array_equal(np.asarray(plen), [4, 4, 2, 2])
    out = np.asarray(cached)
    assert out.shape == (4, 12)
    np.testing.assert_array_equal(out[:2, :4], [[2, 5, 6, 7]] * 2)  # prompts kept, START first
    assert not np.isin(out[:, 1:], [1, 2]).any()  # never [UNK] or [START]


@pytest.mark.parametrize("sampler", ["top_k", "top_p", "random"])
def test_seeded_sampling_is_reproducible(sampler):
    model = _lm()
    kw = dict(sampler=sampler, num_return_sequences=3, max_length=14, top_k=8, top_p=0.95)
    a = np.asarray(generate(model, PROMPTS, seed=11, **kw)[0])
    b = np.asarray(generate(model, PROMPTS, seed=11, **kw)[0])
    c = np.asarray(generate(model, PROMPTS, seed=12, **kw)[0])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a[0], a[1])  # the return sequences differ from each other


def test_top_k_1_and_beam_width_1_equal_greedy():
    model = _lm()
    greedy = np.asarray(generate(model, PROMPTS, sampler="greedy", max_length=14)[0])
    top1 = np.asarray(generate(model, PROMPTS, sampler="top_k", top_k=1, seed=5, max_length=14)[0])
    beam1 = np.asarray(generate(model, PROMPTS, sampler="beam", num_beams=1, max_length=14)[0])
    np.testing.assert_array_equal(top1, greedy)
    np.testing.assert_array_equal(beam1, greedy)


def test_low_temperature_sampling_equals_greedy():
    model = _lm()
    greedy = np.asarray(generate(model, PROMPTS, sampler="greedy", max_length=14)[0])
    cold = np.asarray(generate(model, PROMPTS, sampler="random", temperature=1e-4, seed=2, max_length=14)[0])
    np.testing.assert_array_equal(cold, greedy)


def _counting(n, seed):
    """[START] a a+1 a+2 ... (words 4..23 cycling), then [END] after 6-12 words; inputs/targets shifted."""
    rng = np.random.default_rng(seed)
    seqs = np.zeros((n, 15), np.int32)
    for i in range(n):
        length = rng.integers(6, 13)
        a = rng.integers(0, 20)
        seqs[i, 0] = START_ID
        seqs[i, 1:length + 1] = 4 + (a + np.arange(length)) % 20
        seqs[i, length + 1] = END_ID
    return seqs[:, :-1], seqs[:, 1:]


def test_it_learns_to_count_and_generation_continues_the_pattern():
    keras.utils.set_random_seed(0)
    model = _lm()
    loss, metrics = language_model_task(zoo.get_spec("imdb_gpt"), {})
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=loss, metrics=metrics)
    x, y = _counting(1500, 0)
    history = model.fit(x, y, batch_size=64, epochs=6, verbose=0).history
    assert history["loss"][-1] < history["loss"][0] / 4
    assert history["perplexity"][-1] < 2.0
    out = np.asarray(generate(model, np.array([[10, 11, 12]], np.int32), sampler="greedy", max_length=8)[0])
    np.testing.assert_array_equal(out[0, 4:8], [13, 14, 15, 16])


def test_keras_round_trip_lm_and_classifier(tmp_path):
    lm = _lm()
    clf = zoo.create_model("imdb_gpt_classifier", **TINY, pooling="attention", lm_weight=0.5)
    x = np.array([[2, 5, 6, 3, 0], [2, 7, 3, 0, 0]], np.int32)
    for model in (lm, clf):
        path = tmp_path / f"{model.name}.keras"
        model.save(path)
        back = keras.saving.load_model(path)
        assert type(back) is type(model)
        np.testing.assert_allclose(np.asarray(back(x)), np.asarray(model(x)), atol=1e-6)
        assert back.get_config() == model.get_config()


@pytest.mark.parametrize("pooling", ["last", "attention"])
def test_classifier_starts_from_the_language_model(pooling):
    lm = _lm()
    clf = zoo.create_model("imdb_gpt_classifier", **TINY, pooling=pooling)
    clf.load_pretrained(lm)
    for a, b in zip(clf.backbone.get_weights(), lm.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = np.array([[2, 5, 6, 3, 0, 0], [2, 7, 8, 9, 10, 3]], np.int32)
    assert np.asarray(clf(x)).shape == (2, 2)
    other = zoo.create_model("imdb_gpt", **{**TINY, "embedding_dim": 16})
    with pytest.raises(ValueError, match="embedding_dim 16 vs 32"):
        clf.load_pretrained(other)


def test_last_pooling_reads_the_last_real_token():
    clf = zoo.create_model("imdb_gpt_classifier", **TINY, pooling="last")
    short = np.array([[2, 5, 6, 3]], np.int32)
    padded = np.array([[2, 5, 6, 3, 0, 0, 0]], np.int32)
    np.testing.assert_allclose(np.asarray(clf(padded)), np.asarray(clf(short)), atol=1e-5)


def test_auxiliary_language_model_loss_is_added_only_when_training():
    x = np.array([[2, 5, 6, 3, 0], [2, 7, 3, 0, 0]], np.int32)
    clf = zoo.create_model("imdb_gpt_classifier", **TINY, lm_weight=0.5)
    clf(x, training=False)
    assert not clf.losses
    clf(x, training=True)
    assert len(clf.losses) == 1 and float(clf.losses[0]) > 0.5  # 0.5 * ln(24)-ish at initialisation


# ---------------------------------------------------------------------------
# the IMDB pipelines on the tiny archive


@pytest.fixture(scope="module")
def lm_data(tiny_imdb):
    from zoo.data import load_dataset

    return load_dataset("imdb_lm", data_dir=tiny_imdb, batch_size=16, vocabulary_size=120, max_length=24)


def test_lm_batches_are_shifted_sequences(lm_data):
    x, y = next(iter(lm_data.train))
    x, y = np.asarray(x), np.asarray(y)
    assert x.shape == y.shape and x.shape[1] <= 24
    assert (x[:, 0] == START_ID).all()
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    info = lm_data.info
    assert info["num_train"] == 120 and info["num_test"] == 40 and info["vocabulary_size"] == 120
    assert info["learned_vocabulary"] <= 120


def test_core_tokenizer_matches_keras_hub_and_detokenizes(lm_data):
    import tensorflow as tf

    tok = lm_data.preprocessor
    texts = tf.constant(["Wonderful film.<br /><br />Boring!", "", "caf\u00e9 \U0001f600 zzqx", b"bad \xff bytes"])
    a = tok.encode(texts).to_list()
    b = tok.encode_core(texts).to_list()
    assert a == b
    ids = tok(texts).numpy()
    assert (ids[:, 0] == START_ID).all() and ids[1].tolist()[:2] == [START_ID, END_ID]
    back = tok.detokenize(tok(tf.constant(["Wonderful film.<br />Boring!"]))).numpy()[0].decode()
    assert back == "wonderful film. boring!"


def test_classifier_data_reuses_a_runs_tokenizer(tmp_path, tiny_imdb, lm_data):
    from zoo.data import DataError, load_dataset

    lm_data.preprocessor.save(tmp_path / "preprocessor")
    data = load_dataset("imdb_wordpiece", data_dir=tiny_imdb, batch_size=16, vocabulary_size=120, max_length=24,
                        preprocessor_from=str(tmp_path))
    assert data.preprocessor.vocabulary == lm_data.preprocessor.vocabulary
    x, y = next(iter(data.train))
    assert np.asarray(x).shape[1] <= 24 and set(np.asarray(y).tolist()) <= {0, 1}
    with pytest.raises(DataError, match="vocabulary_size 120"):
        load_dataset("imdb_wordpiece", data_dir=tiny_imdb, vocabulary_size=200, max_length=24,
                     preprocessor_from=str(tmp_path))
