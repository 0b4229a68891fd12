"""CIFAR-10 image classifiers: the tutorial CNN, a fast ResNet and a small ViT.

All three take raw pixels, `uint8` of shape `(batch, 32, 32, 3)`: rescaling
and normalisation are layers of the model, so an exported model needs no
preprocessing beyond decoding the image.  They return logits `(batch, 10)`
(float32 even under a mixed-precision policy); the export adds the softmax.

References:
    - TensorFlow tutorial "Convolutional Neural Network (CNN)" (cifar10_cnn).
    - D. Page, "How to train your ResNet" (2018), the ResNet-9 of the
      DAWNBench fast CIFAR-10 records (cifar10_resnet).
    - A. Dosovitskiy et al., "An Image is Worth 16x16 Words" (2020), scaled
      down for 32x32 images (cifar10_vit).
"""

from __future__ import annotations

import keras
from keras import layers

from zoo.layers import AttentionPooling, LearnedPositionEmbedding, TransformerEncoderBlock
from zoo.registry import register_model

NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)
# Per-channel statistics of the CIFAR-10 training set, on the 0-1 scale.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

_COMMON = dict(
    modality="image",
    task="classification",
    dataset="cifar10",
    inputs={"image": {"shape": list(IMAGE_SHAPE), "dtype": "uint8", "range": [0, 255]}},
    raw_input="encoded image bytes (JPEG or PNG), resized to 32x32",
    preprocessor="decode_image: bytes -> uint8 (32, 32, 3); normalisation is inside the model",
    metrics=("accuracy", "confusion_matrix"),
)


def _pixels(name: str) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """The raw-pixel input and its normalised float view `(batch, 32, 32, 3)`."""
    image = keras.Input(IMAGE_SHAPE, dtype="uint8", name="image")
    x = layers.Rescaling(1.0 / 255, name=f"{name}_rescale")(image)
    x = layers.Normalization(
        mean=CIFAR10_MEAN, variance=[s * s for s in CIFAR10_STD], name=f"{name}_normalize"
    )(x)
    return image, x


def _classifier(x, num_classes: int, scale: float = 1.0, name: str = "logits"):
    """Dense logits kept in float32 under mixed precision: `(batch, num_classes)`."""
    x = layers.Dense(num_classes, name=name, dtype="float32")(x)
    if scale != 1.0:
        x = layers.Rescaling(scale, name=f"{name}_scale", dtype="float32")(x)
    return x


# ---------------------------------------------------------------------------
# Tutorial CNN


def _conv_bn(x, filters: int, name: str, pool: bool = False):
    """3x3 conv -> batch norm -> ReLU (-> 2x2 max pool)."""
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
    x = layers.ReLU(name=f"{name}_relu")(x)
    if pool:
        x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    return x


@register_model(
    **_COMMON,
    train={
        "epochs": 10,
        "batch_size": 32,
        "optimizer": "adam",
        "learning_rate": 1e-3,
        "schedule": "constant",
        "weight_decay": 0.0,
        "label_smoothing": 0.0,
        "data": {"augment": False},
    },
    reference="TensorFlow tutorial 'Convolutional Neural Network (CNN)' (about 70% test accuracy)",
)
def cifar10_cnn(*, num_classes: int = NUM_CLASSES, filters: tuple = (32, 64, 64), dense_units: int = 64):
    """The classic small CNN: Conv32-pool-Conv64-pool-Conv64, Dense64, Dense10.

    Args:
        num_classes: number of output logits.
        filters: channels of the three 3x3 valid convolutions.
        dense_units: width of the hidden dense layer.

    Returns:
        keras.Model: `uint8 (batch, 32, 32, 3)` -> logits `(batch, num_classes)`.
    """
    image = keras.Input(IMAGE_SHAPE, dtype="uint8", name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(image)  # the tutorial divides by 255
    for i, f in enumerate(filters):
        x = layers.Conv2D(f, 3, activation="relu", name=f"conv{i + 1}")(x)
        if i < len(filters) - 1:
            x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense_units, activation="relu", name="dense")(x)
    return keras.Model(image, _classifier(x, num_classes), name="cifar10_cnn")


# ---------------------------------------------------------------------------
# Fast ResNet (ResNet-9 of the DAWNBench records)


def _residual(x, filters: int, name: str):
    """Two conv-bn-relu blocks with an identity shortcut."""
    y = _conv_bn(x, filters, f"{name}_a")
    y = _conv_bn(y, filters, f"{name}_b")
    return layers.Add(name=f"{name}_add")([x, y])


@register_model(
    **_COMMON,
    train={
        "epochs": 10,
        "batch_size": 512,
        "optimizer": "sgd",
        "learning_rate": 0.2,
        "momentum": 0.9,
        "nesterov": True,
        "schedule": "onecycle",
        "warmup": 0.25,
        "weight_decay": 5e-3,
        "label_smoothing": 0.2,
        "data": {"augment": True, "pad": 4, "flip": True, "cutout": 8},
    },
    reference="D. Page, 'How to train your ResNet' (2018): ResNet-9, 94% in 24 epochs at width 64",
)
def cifar10_resnet(*, num_classes: int = NUM_CLASSES, width: int = 64, logit_scale: float = 0.125):
    """ResNet-9 for fast CIFAR-10 training (prep, 3 stages, 2 residual blocks).

    Channels are `width * (1, 2, 4, 8)`; width 64 is the published network,
    smaller widths trade accuracy for speed on CPUs.

    Args:
        num_classes: number of output logits.
        width: channels of the first convolution.
        logit_scale: multiplier on the final logits (0.125 in the reference).

    Returns:
        keras.Model: `uint8 (batch, 32, 32, 3)` -> logits `(batch, num_classes)`.
    """
    image, x = _pixels("input")
    x = _conv_bn(x, width, "prep")
    x = _conv_bn(x, 2 * width, "layer1", pool=True)
    x = _residual(x, 2 * width, "layer1_res")
    x = _conv_bn(x, 4 * width, "layer2", pool=True)
    x = _conv_bn(x, 8 * width, "layer3", pool=True)
    x = _residual(x, 8 * width, "layer3_res")
    x = layers.GlobalMaxPooling2D(name="pool")(x)
    return keras.Model(image, _classifier(x, num_classes, logit_scale), name="cifar10_resnet")


# ---------------------------------------------------------------------------
# Small vision transformer from the shared layers


@register_model(
    **_COMMON,
    train={
        "epochs": 30,
        "batch_size": 128,
        "optimizer": "adamw",
        "learning_rate": 1e-3,
        "schedule": "cosine",
        "warmup": 0.1,
        "weight_decay": 0.05,
        "label_smoothing": 0.1,
        "data": {"augment": True, "pad": 4, "flip": True, "cutout": 0},
    },
    reference="Dosovitskiy et al. 2020 (ViT), scaled to 32x32 with 4x4 patches",
)
def cifar10_vit(
    *,
    num_classes: int = NUM_CLASSES,
    patch_size: int = 4,
    dim: int = 128,
    depth: int = 6,
    num_heads: int = 4,
    mlp_dim: int = 256,
    dropout: float = 0.1,
):
    """A small ViT: patch embedding + learned positions + Transformer encoder + attention pooling.

    Args:
        num_classes: number of output logits.
        patch_size: side of the square patches (32 must be divisible by it).
        dim: token width.
        depth: number of `TransformerEncoderBlock`s.
        num_heads: attention heads per block.
        mlp_dim: hidden width of each block's feed-forward network.
        dropout: dropout inside the blocks.

    Returns:
        keras.Model: `uint8 (batch, 32, 32, 3)` -> logits `(batch, num_classes)`.
    """
    if IMAGE_SHAPE[0] % patch_size:
        raise ValueError(f"patch_size={patch_size} must divide the image side {IMAGE_SHAPE[0]}")
    image, x = _pixels("input")
    x = layers.Conv2D(dim, patch_size, strides=patch_size, name="patch_embed")(x)
    x = layers.Reshape((-1, dim), name="patches")(x)  # (batch, num_patches, dim)
    x = layers.Add(name="add_position")([x, LearnedPositionEmbedding((IMAGE_SHAPE[0] // patch_size) ** 2, name="position")(x)])
    for i in range(depth):
        x = TransformerEncoderBlock(
            num_heads, mlp_dim, dropout=dropout, activation="gelu", normalize_first=True, name=f"block{i + 1}"
        )(x)
    x = layers.LayerNormalization(epsilon=1e-6, name="norm")(x)
    x = AttentionPooling(name="pool")(x)
    return keras.Model(image, _classifier(x, num_classes), name="cifar10_vit")
