"""airbench's training tricks in the image family (#16): alternating flip, the BatchNorm-bias
learning-rate multiplier, lookahead, and flip + translate test-time augmentation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from applications.image.callbacks import Lookahead
from applications.image.data import make_image_dataset
from applications.image.models import PartialDirac, ScaledBias, cifar10_airbench
from zoo.data import DataError
from zoo.tasks.classification import _translated, predict_logits


def _images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def _flips(ds, images):
    """Which images (by label = index) a pass over `ds` flipped."""
    seen = {}
    for x, y in ds:
        for xi, yi in zip(x.numpy(), y.numpy()):
            if np.array_equal(xi, images[yi]):
                seen[int(yi)] = False
            else:
                np.testing.assert_array_equal(xi, images[yi][:, ::-1])
                seen[int(yi)] = True
    return np.array([seen[i] for i in range(len(images))])


def test_alternating_flip_flips_each_image_on_every_other_pass():
    images = _images(40)
    ds = make_image_dataset(images, np.arange(40), batch_size=8, training=True, pad=0, flip=True,
                            alternate_flip=True, seed=3)
    passes = [_flips(ds, images) for _ in range(4)]
    assert 0.2 < passes[0].mean() < 0.8  # the first pass flips a random half
    for a, b in zip(passes, passes[1:]):
        assert (a != b).all()  # each image seen both ways in any two consecutive passes
    # the same seed draws the same first pass; random flips (the default) do not alternate
    again = make_image_dataset(images, np.arange(40), batch_size=8, training=True, pad=0, alternate_flip=True, seed=3)
    np.testing.assert_array_equal(_flips(again, images), passes[0])
    plain = make_image_dataset(images, np.arange(40), batch_size=8, training=True, pad=0, seed=3)
    a, b = _flips(plain, images), _flips(plain, images)
    assert (a == b).any()


def test_alternating_flip_without_flip_is_refused():
    with pytest.raises(DataError, match="alternate_flip needs flip=True"):
        make_image_dataset(_images(4), np.arange(4), batch_size=2, training=True, flip=False, alternate_flip=True)


def test_scaled_bias_moves_lr_scale_times_as_far_under_sgd():
    x = np.ones((4, 3), "float32")

    def one_step(layer):
        layer.build((None, 3))
        opt = keras.optimizers.SGD(0.1)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x))
        opt.apply_gradients(zip(tape.gradient(loss, layer.trainable_variables), layer.trainable_variables))
        return np.asarray(layer(np.zeros((1, 3), "float32")))[0]  # the effective bias

    plain, scaled = one_step(ScaledBias(1.0)), one_step(ScaledBias(64.0))
    np.testing.assert_allclose(plain, -0.4 * np.ones(3), rtol=1e-6)
    np.testing.assert_allclose(scaled, 64 * plain, rtol=1e-5)


def test_scaled_bias_config_round_trip_and_bad_scale():
    layer = ScaledBias(16.0, name="b")
    again = ScaledBias.from_config(layer.get_config())
    assert again.lr_scale == 16.0 and again.name == "b"
    with pytest.raises(ValueError, match="lr_scale must be > 0"):
        ScaledBias(0.0)


def test_partial_dirac_passes_the_first_channels_through_and_draws_the_rest():
    init = PartialDirac(seed=1)
    kernel = np.asarray(init((3, 3, 8, 16)))
    conv = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)
    x = np.random.default_rng(0).normal(size=(2, 5, 5, 8)).astype("float32")
    conv.build(x.shape)
    conv.kernel.assign(kernel)
    y = np.asarray(conv(x))
    np.testing.assert_allclose(y[..., :8], x, atol=1e-6)  # identity filters for the 8 input channels
    rest = kernel[..., 8:]
    bound = 1 / np.sqrt(3 * 3 * 8)  # PyTorch's default fan-in uniform
    assert np.abs(rest).max() <= bound and rest.std() > 0.4 * bound
    # fewer outputs than inputs: every filter is an identity; a Dense kernel is the plain uniform
    np.testing.assert_array_equal(np.asarray(init((3, 3, 8, 4)))[1, 1, :4, :4], np.eye(4))
    dense = np.asarray(PartialDirac(dirac=False, seed=2)((64, 10)))
    assert np.abs(dense).max() <= 1 / 8 and not np.any(dense == 1.0)
    again = PartialDirac.from_config(init.get_config())
    np.testing.assert_array_equal(np.asarray(again((3, 3, 8, 16))), kernel)  # the same seed draws the same kernel


def test_airbench_init_is_a_builder_setting_that_survives_keras_saving(tmp_path):
    model = cifar10_airbench(widths=(8, 16, 16), whiten_fit=False, init="airbench")
    kernel = np.asarray(model.get_layer("block2_conv1").kernel)
    np.testing.assert_array_equal(kernel[1, 1, :8, :8], np.eye(8))  # 8 channels in, identity on the first 8 filters
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(np.asarray(again.get_layer("block2_conv1").kernel), kernel)
    glorot = np.asarray(cifar10_airbench(widths=(8, 16, 16), whiten_fit=False).get_layer("block2_conv1").kernel)
    assert not np.allclose(glorot[1, 1, :8, :8], np.eye(8))
    with pytest.raises(ValueError, match="init must be 'airbench' or 'keras'"):
        cifar10_airbench(widths=(8, 16, 16), init="dirac")


def _constant_gradient_model():
    """One weight w (init 0) whose loss gradient is always 1: plain SGD at lr 0.1 gives w = -0.1 * steps."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
    model.compile(keras.optimizers.SGD(0.1), loss=lambda y, p: keras.ops.mean(p))
    return model


@pytest.mark.parametrize("every,steps,expected", [(None, 3, -0.3), (1, 4, -0.25), (2, 3, -0.25), (2, 4, -0.3),
                                                    (5, 3, -0.3)])
def test_lookahead_averages_the_weights_and_ends_on_the_average(every, steps, expected):
    model = _constant_gradient_model()
    cbs = [] if every is None else [Lookahead(every=every, decay=0.5, power=0.0)]
    model.fit(np.ones((steps, 1)), np.zeros((steps, 1)), batch_size=1, epochs=1, verbose=0, shuffle=False, callbacks=cbs)
    # every=1: the average starts at step 1 (-0.1), then a -> 0.5 a + 0.5 w: -0.15, -0.2, -0.25 (each step
    # starting from the previous average); every=2, 3 steps: -0.2 at step 2, step 3 takes it to -0.3, the end
    # folds that in: -0.25; every=2, 4 steps: -0.2, then -0.3 and -0.4 averaged to -0.3; every=5, 3 steps: no
    # update before the end, which starts the average at the trained weights (not the initial 0)
    np.testing.assert_allclose(float(model.weights[0].numpy()[0, 0]), expected, atol=1e-6)


def test_lookahead_ramp_ends_where_a_budget_ends_the_run():
    """A time budget lowers params["epochs"] after epoch 1 (shared with every callback): the ramp follows it."""
    look = Lookahead(decay=0.8, power=3.0)
    look.set_params({"steps": 10, "epochs": 10})
    assert look.decay_at(50) == pytest.approx(0.8 * 0.5**3)
    look.params["epochs"] = 5  # what zoo.training's budget does to the shared dict
    assert look.decay_at(50) == pytest.approx(0.8) and look.decay_at(25) == pytest.approx(0.8 * 0.5**3)


def test_lookahead_rejects_bad_settings():
    with pytest.raises(ValueError, match="Lookahead: need"):
        Lookahead(decay=1.0)


def test_translated_moves_the_image_and_reflects_at_the_border():
    x = tf.constant(_images(2))
    down = _translated(x, 1).numpy()
    up = _translated(x, -1).numpy()
    np.testing.assert_array_equal(down[:, 1:, 1:], x.numpy()[:, :-1, :-1])
    np.testing.assert_array_equal(down[:, 0, 1:], x.numpy()[:, 1, :-1])  # reflect: row -1 is row 1
    np.testing.assert_array_equal(up[:, :-1, :-1], x.numpy()[:, 1:, 1:])


def test_translate_tta_averages_the_original_and_two_moved_views():
    image = keras.Input((32, 32, 3), dtype="uint8")
    flat = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(image))
    model = keras.Model(image, keras.layers.Dense(10, kernel_initializer=keras.initializers.RandomNormal(seed=1))(flat))
    x, y = _images(6, seed=2), np.arange(6)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    _, got = predict_logits(model, ds, tta_translate=1)
    t = tf.constant(x)
    want = 0.5 * model(t) + 0.25 * (model(_translated(t, -1)) + model(_translated(t, 1)))
    np.testing.assert_allclose(got, np.asarray(want), atol=1e-4)
    _, plain = predict_logits(model, ds)
    assert np.abs(got - plain).max() > 1e-3
    with pytest.raises(ValueError, match="tta_translate must be"):
        predict_logits(model, ds, tta_translate=-1)


def test_whiten_bias_false_freezes_the_bias_and_survives_keras_saving(tmp_path):
    """whiten_bias=False: the bias is not trainable, stays zero through training steps, and reloads that way;
    the default trains it.  Every conv group's convolution is a FastBackpropConv2D."""
    from zoo.layers import FastBackpropConv2D

    x, y = _images(16), np.arange(16) % 10
    for whiten_bias in (True, False):
        model = cifar10_airbench(widths=(8, 16, 16), whiten_fit=False, whiten_bias=whiten_bias)
        assert all(isinstance(model.get_layer(f"block{g}_conv{i}"), FastBackpropConv2D) for g in (1, 2, 3) for i in (1, 2))
        bias = model.get_layer("whiten").bias
        assert bias.trainable is whiten_bias
        model.compile(keras.optimizers.SGD(0.5), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, epochs=2, batch_size=8, verbose=0)
        assert bool(np.any(np.asarray(bias) != 0)) is whiten_bias
        model.save(tmp_path / f"m{whiten_bias}.keras")
        again = keras.saving.load_model(tmp_path / f"m{whiten_bias}.keras")
        assert again.get_layer("whiten").bias.trainable is whiten_bias
        np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


def _sizes(ds):
    """The image side of every batch of one pass over `ds`."""
    return [int(x.shape[1]) for x, _ in ds]


def test_progressive_resizing_shrinks_the_first_epochs_and_follows_the_epoch_it_is_told():
    from applications.image.data import TrainingPasses

    images = _images(24)
    passes = TrainingPasses(32, 24, 2)
    ds = make_image_dataset(images, np.arange(24), batch_size=8, training=True, pad=0, flip=False, passes=passes)
    assert ds.element_spec[0].shape.as_list() == [8, None, None, 3]
    assert [_sizes(ds) for _ in range(3)] == [[24] * 3, [24] * 3, [32] * 3]
    # a small batch is the antialiased shrink of the full-size one, still uint8 pixels
    passes.set_next_epoch(0)
    x, y = next(iter(ds))
    expected = tf.cast(tf.clip_by_value(tf.round(tf.image.resize(images[y.numpy()], [24, 24], antialias=True)), 0, 255),
                       tf.uint8)
    assert x.dtype == tf.uint8 and np.array_equal(x.numpy(), expected.numpy())
    passes.set_next_epoch(1)  # a run resumed in epoch 1: one more small pass, then full size
    assert [_sizes(ds) for _ in range(2)] == [[24] * 3, [32] * 3]
    passes.set_next_epoch(-1)  # outside training (the patch whitening's fit): full size
    assert _sizes(ds) == [32] * 3
    assert [passes.cost(e) for e in (0, 1, 2)] == [0.5625, 0.5625, 1.0] and passes.settings() == {
        "progressive_size": 24, "progressive_epochs": 2}
    # off: no variable shapes, every epoch costs 1
    off = TrainingPasses(32, 0, 5)
    assert not off.progressive and off.cost(0) == 1.0 and off.settings() == {}
    plain = make_image_dataset(images, np.arange(24), batch_size=8, training=True, passes=off)
    assert plain.element_spec[0].shape.as_list() == [8, 32, 32, 3]


def test_a_progressive_ramp_raises_the_side_each_epoch_and_a_resumed_run_keeps_its_place(tiny_cifar):
    from applications.image.data import TrainingPasses, cifar10

    assert TrainingPasses(32, 16, 8, progressive_ramp=True).sizes == (16, 16, 20, 20, 24, 24, 28, 28)
    assert TrainingPasses(32, 24, 6, progressive_ramp=True).sizes == (24, 24, 24, 28, 28, 28)
    assert TrainingPasses(32, 30, 2, progressive_ramp=True).sizes == (30, 30)  # less than a step to full size
    passes = TrainingPasses(32, 20, 3, progressive_ramp=True)
    ds = make_image_dataset(_images(16), np.arange(16), batch_size=8, training=True, pad=0, flip=False, passes=passes)
    assert [_sizes(ds) for _ in range(5)] == [[20] * 2, [24] * 2, [28] * 2, [32] * 2, [32] * 2]
    assert [passes.cost(e) for e in range(4)] == [(20 / 32) ** 2, (24 / 32) ** 2, (28 / 32) ** 2, 1.0]
    passes.set_next_epoch(2)  # resumed in epoch 2
    assert [_sizes(ds) for _ in range(2)] == [[28] * 2, [32] * 2]
    passes.set_next_epoch(-1)
    assert _sizes(ds) == [32] * 2
    bundle = cifar10(tiny_cifar, batch_size=20, progressive_size=20, progressive_epochs=3, progressive_ramp=True)
    assert bundle.info["augmentation"] == {**bundle.info["augmentation"], "progressive_size": 20,
                                           "progressive_epochs": 3, "progressive_ramp": True,
                                           "progressive_sizes": [20, 24, 28]}
    # without a ramp the settings say nothing of one (what runs made before the ramp recorded)
    assert "progressive_ramp" not in cifar10(tiny_cifar, progressive_size=20, progressive_epochs=3).info["augmentation"]


def test_progressive_resizing_refuses_bad_settings_by_name(tiny_cifar):
    from applications.image.data import TrainingPasses, cifar10

    with pytest.raises(DataError, match=r"progressive_size must be 0 \(off\) or in \[16, 32\] pixels, got 8"):
        cifar10(tiny_cifar, progressive_size=8, progressive_epochs=2)
    with pytest.raises(DataError, match="progressive_epochs must be >= 0, got -1"):
        cifar10(tiny_cifar, progressive_size=24, progressive_epochs=-1)
    with pytest.raises(DataError, match="needs square images of its full_size"):
        make_image_dataset(np.zeros((4, 32, 40, 3), np.uint8), np.arange(4), batch_size=2, training=True,
                           passes=TrainingPasses(32, 24, 1))
    bundle = cifar10(tiny_cifar, batch_size=20, progressive_size=24, progressive_epochs=2)
    assert bundle.info["augmentation"]["progressive_size"] == 24 and bundle.schedule.progressive_epochs == 2
    assert cifar10(tiny_cifar).schedule is None  # nothing that depends on the epoch: nothing for fit to tell
    assert cifar10(tiny_cifar, alternate_flip=True).schedule.cost(0) == 1.0


def test_airbench_takes_smaller_images_and_its_export_size_is_unchanged():
    model = cifar10_airbench(widths=(8, 16, 16))
    for side in (16, 24, 32):
        assert model(_images(2)[:, :side, :side]).shape == (2, 10)
    assert model.input_shape == (None, None, None, 3)
    import zoo

    assert zoo.get_spec("cifar10_airbench").inputs["image"]["shape"] == [32, 32, 3]  # what the export feeds


def test_val_limit_validates_each_epoch_on_a_seeded_subset_and_tests_on_all(tiny_cifar):
    from applications.image.data import cifar10

    whole = cifar10(tiny_cifar, batch_size=16)
    test_images = np.concatenate([x.numpy() for x, _ in whole.test])
    some = cifar10(tiny_cifar, batch_size=16, val_limit=10)
    val_images = np.concatenate([x.numpy() for x, _ in some.val])
    assert len(val_images) == 10 and some.info["num_val"] == 10 and some.info["num_test"] == len(test_images) == 40
    assert some.info["val_source"] == "test, 10 at random (seed 0)" and some.info["val_limit"] == 10
    rows = {im.tobytes(): i for i, im in enumerate(test_images)}
    picked = sorted(rows[im.tobytes()] for im in val_images)  # test images, not the first ten
    assert picked != list(range(10))
    again = np.concatenate([x.numpy() for x, _ in cifar10(tiny_cifar, batch_size=16, val_limit=10).val])
    assert np.array_equal(again, val_images)  # the same seed, the same subset
    assert cifar10(tiny_cifar, batch_size=16, val_limit=1000).info["num_val"] == 40  # more than there are: all
    with pytest.raises(DataError, match="val_limit must be 0 \\(all\\) or a positive number of images, got -1"):
        cifar10(tiny_cifar, val_limit=-1)
