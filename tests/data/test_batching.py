"""`zoo.data.length_sorted_batches`: exact epoch length, every element once, little padding, order kept for eval."""

import numpy as np
import tensorflow as tf

from zoo.data import length_sorted_batches


def _ragged(n, seed=0):
    """n elements `(ids (L,), other (L + 1,), label ())` with 0 as padding only: ids are 1..L."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 40, n)

    def gen():
        for i, k in enumerate(lengths):
            yield np.arange(1, k + 1, dtype=np.int32), np.full(k + 1, 7, np.int32), np.int32(i)

    sig = (tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32))
    return tf.data.Dataset.from_generator(gen, output_signature=sig), lengths


def test_training_batches_cover_every_element_once_with_an_exact_count():
    ds, lengths = _ragged(203)
    out = length_sorted_batches(ds, size=203, batch_size=16, training=True, seed=3, sort_chunk=4)
    assert int(out.cardinality()) == 13
    for epoch in range(2):
        seen, padded, batches = [], 0, 0
        for ids, other, label in out:
            batches += 1
            label = label.numpy()
            seen += label.tolist()
            # trimmed to the longest row of the batch, and rows are intact
            assert ids.shape[1] == lengths[label].max() and other.shape[1] == lengths[label].max() + 1
            for row, i in zip(ids.numpy(), label):
                np.testing.assert_array_equal(row[: lengths[i]], np.arange(1, lengths[i] + 1))
                assert (row[lengths[i]:] == 0).all()
            padded += ids.shape[0] * ids.shape[1]
        assert batches == 13 and sorted(seen) == list(range(203)), epoch
        assert padded < 1.3 * lengths.sum()  # sorted chunks: little padding (random batches would be ~2x)


def test_training_order_changes_between_epochs_and_eval_keeps_file_order():
    ds, _ = _ragged(64)
    train = length_sorted_batches(ds, size=64, batch_size=8, training=True, seed=0)
    first = [b[2].numpy().tolist() for b in train]
    second = [b[2].numpy().tolist() for b in train]
    assert first != second
    test = length_sorted_batches(ds, size=64, batch_size=10, training=False)
    labels = np.concatenate([b[2].numpy() for b in test])
    assert int(test.cardinality()) == 7 and labels.tolist() == list(range(64))
