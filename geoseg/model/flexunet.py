"""The FlexUNet builder, and saving/loading models with their settings inside.

FlexUNet is a configurable UNet (after the reference TensorFlow-FlexUNet): ``num_layers``
levels including the bridge, ``base_filters`` doubled per level, first-level kernels
``base_kernels`` shrinking by 2 per level down to 3 (mirrored in the decoder), dropout growing
with depth, optional dilation and batch normalisation, softmax output for several classes.
Input normalisation is a :class:`keras.layers.Rescaling` layer, not a Lambda, so saved models
load in Keras ``safe_mode`` without executing arbitrary code.

Layers are named by their place: ``enc<level>_*`` for the encoder (the contracting path, its
last level the bridge: :func:`encoder_layers`), ``dec<level>_*`` for the decoder, ``normalize``
and ``probabilities``.

Saved models carry their :class:`~geoseg.settings.ModelSettings` inside the ``.keras`` archive
(see :mod:`geoseg.model.model_archive`); :func:`load_model` requires them.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

# isort: off
import geoseg.model._quiet_tf  # noqa: F401  (first: silences TensorFlow's native start-up logs)
import keras
# isort: on
from keras import layers

from geoseg.errors import ModelError
from geoseg.model.bundled import resolve_model
from geoseg.model.model_archive import read_settings, write_settings
from geoseg.raster.outputs import atomic_output
from geoseg.settings import ModelSettings

__all__ = ["ENCODER_PREFIX", "build_flexunet", "encoder_layers", "load_model",
           "resized_flexunet", "save_model"]

ENCODER_PREFIX = "enc"
"""Names of the encoder's layers start with it (``enc0_conv1``, ..., the bridge's too)."""


def _conv_block(
    x: keras.KerasTensor,
    filters: int,
    kernel: tuple[int, int],
    dropout: float,
    settings: ModelSettings,
    name: str,
) -> keras.KerasTensor:
    """Two convolutions (each optionally batch-normalised) with dropout between them."""
    for step in (1, 2):
        x = layers.Conv2D(
            filters,
            kernel,
            padding="same",
            dilation_rate=settings.dilation,
            kernel_initializer="he_normal",
            use_bias=not settings.batch_norm,
            name=f"{name}_conv{step}",
        )(x)
        if settings.batch_norm:
            x = layers.BatchNormalization(name=f"{name}_bn{step}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{step}")(x)
        if step == 1 and dropout > 0:
            x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def build_flexunet(settings: ModelSettings, name: str = "flexunet") -> keras.Model:
    """Build an (untrained, uncompiled) FlexUNet.

    Parameters
    ----------
    settings : ModelSettings
        Architecture and input settings; validated on construction.
    name : str
        Keras model name.

    Returns
    -------
    keras.Model
        Takes ``(batch, image_size, image_size, image_channels)`` float32 raw pixel values and
        returns per-pixel class probabilities ``(batch, image_size, image_size, num_classes)``.

    Examples
    --------
    >>> model = build_flexunet(ModelSettings(image_size=32, base_filters=4, num_layers=3))
    >>> model.output_shape
    (None, 32, 32, 2)
    """
    size, channels = settings.image_size, settings.image_channels
    inputs = keras.Input((size, size, channels), name="image")
    x = layers.Rescaling(1.0 / 255.0, name="normalize")(inputs) if settings.input_normalize \
        else inputs
    kernels = settings.kernel_sizes()
    dropouts = settings.dropout_rates()
    skips = []
    for level in range(settings.num_layers):
        filters = settings.base_filters * 2**level
        encoder = f"{ENCODER_PREFIX}{level}"
        x = _conv_block(x, filters, kernels[level], dropouts[level], settings, encoder)
        if level < settings.num_layers - 1:
            skips.append(x)
            x = layers.MaxPooling2D(2, name=f"{encoder}_pool")(x)
    for level in reversed(range(settings.num_layers - 1)):
        filters = settings.base_filters * 2**level
        x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"dec{level}_up")(x)
        x = layers.Concatenate(name=f"dec{level}_concat")([x, skips[level]])
        x = _conv_block(x, filters, kernels[level], dropouts[level], settings, f"dec{level}")
    activation = "softmax" if settings.num_classes > 1 else "sigmoid"
    outputs = layers.Conv2D(
        settings.num_classes, 1, activation=activation, dtype="float32", name="probabilities"
    )(x)
    return keras.Model(inputs, outputs, name=name)


def encoder_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The encoder of a FlexUNet: the layers of its contracting path and its bridge, the
    part fine-tuning may keep fixed while the decoder learns (``geoseg train
    --freeze-encoder-epochs``).

    >>> model = build_flexunet(ModelSettings(image_size=32, base_filters=4, num_layers=3))
    >>> [layer.name for layer in encoder_layers(model) if layer.weights]
    ['enc0_conv1', 'enc0_conv2', 'enc1_conv1', 'enc1_conv2', 'enc2_conv1', 'enc2_conv2']
    """
    return [layer for layer in model.layers if layer.name.startswith(ENCODER_PREFIX)]


def resized_flexunet(model: keras.Model, settings: ModelSettings, side: int) -> keras.Model:
    """The same FlexUNet (same weights) for square tiles of ``side`` pixels.

    The network is fully convolutional, so its weights do not depend on the tile size; this
    builds the architecture for another input size and copies them over.

    Raises
    ------
    ConfigError
        ``side`` is not divisible by ``2**(num_layers-1)``.
    """
    resized = build_flexunet(dataclasses.replace(settings, image_size=side), name=model.name)
    resized.set_weights(model.get_weights())
    return resized


def save_model(
    model: keras.Model,
    settings: ModelSettings,
    path: str | os.PathLike[str],
    overwrite: bool = False,
) -> Path:
    """Save ``model`` as ``.keras`` with ``settings`` inside, atomically.

    Raises
    ------
    ModelError
        The path does not end in ``.keras``.
    OutputError, OutputExistsError
        The output cannot be written or exists already without ``overwrite``.
    """
    target = Path(path)
    if target.suffix != ".keras":
        raise ModelError(f"{target}: model files must end in .keras")
    with atomic_output(target, overwrite=overwrite) as tmp:
        model.save(tmp)
        write_settings(tmp, settings)
    return target


def load_model(path: str | os.PathLike[str]) -> tuple[keras.Model, ModelSettings]:
    """Load a geoseg ``.keras`` model and its settings, in Keras safe mode, uncompiled.

    ``path`` may also name a bundled model (:func:`geoseg.model.bundled.resolve_model`).

    Raises
    ------
    ModelError
        Missing, corrupted or non-geoseg file, or weights that do not fit the settings.
    """
    path = resolve_model(path)
    settings = read_settings(path)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for corrupted archives
        raise ModelError(f"{path}: the model could not be loaded ({exc})") from exc
    expected = (settings.image_size, settings.image_size, settings.image_channels)
    if tuple(model.input_shape[1:]) != expected:
        raise ModelError(
            f"{path}: model input {model.input_shape[1:]} does not match its settings {expected}"
        )
    return model, settings
