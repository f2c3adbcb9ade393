"""geoseg command lines for the Processing algorithms, one builder per command.

Plain Python, so geoseg's test suite checks every line built here against the real command
line parser. Each builder returns the arguments after the executable; those that do work ask
for ``--progress json``. File outputs chosen in QGIS get ``--overwrite``: QGIS's save dialog
has already asked before replacing a file.

The bundled models are geoseg's to list (``geoseg models --json``, :func:`model_choices`):
the plugin names none itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

PROGRESS = ["--progress", "json"]

MODELS_ARGS = ["models", "--json"]
"""``geoseg models --json``: the bundled models, the default first."""


@dataclass(frozen=True)
class ModelChoice:
    """A bundled model as the algorithms offer it: the name ``--model`` takes, and a label."""

    name: str
    label: str


def model_choices(listing: str) -> list[ModelChoice]:
    """The bundled models of a ``geoseg models --json`` output, the default first.

    >>> model_choices('[{"name": "demo", "imagery": "synthetic 8-bit RGB", '
    ...               '"pixel_size_m": 3.0, "license": "Apache-2.0", "default": true}]')
    [ModelChoice(name='demo', label='demo: synthetic 8-bit RGB, ~3 m pixels (Apache-2.0)')]

    Raises
    ------
    ValueError
        The text is not such a listing.
    """
    try:
        models = json.loads(listing)
        if not isinstance(models, list) or not models:
            raise ValueError("no list of models")
        choices = []
        for model in models:
            size = model["pixel_size_m"]
            pixels = f", ~{_number(size)} m pixels" if size else ""
            choices.append(ModelChoice(str(model["name"]), f"{model['name']}: "
                                       f"{model['imagery']}{pixels} ({model['license']})"))
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"not a geoseg models --json listing ({exc})") from None
    return choices


def _number(value: float) -> str:
    """A number as geoseg reads it: no trailing ``.0`` on whole numbers.

    >>> _number(0.5), _number(64.0), _number(3)
    ('0.5', '64', '3')
    """
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _options(**values: object) -> list[str]:
    """``--name value`` for each value that is set; ``True`` gives a bare flag.

    >>> _options(threshold=0.4, overlap=None, min_area=0, resume=True, quiet=False)
    ['--threshold', '0.4', '--min-area', '0', '--resume']
    """
    args: list[str] = []
    for name, value in values.items():
        option = "--" + name.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            args.append(option)
        elif isinstance(value, (int, float)):
            args += [option, _number(value)]
        else:
            args += [option, str(value)]
    return args


def _bands(bands: Sequence[int]) -> str | None:
    return ",".join(str(band) for band in bands) if bands else None


def predict_args(
    scene: str, mask: str, *, probabilities: str | None = None, polygons: str | None = None,
    model: str | None = None, bands: Sequence[int] = (), threshold: float | None = None,
    overlap: int | None = None, device: str = "auto", batch_size: int | None = None,
    window: str | None = None, resolution: str | None = None, resume: bool = False,
    uncertainty: str | None = None,
) -> list[str]:
    """``geoseg predict``: a class mask, optionally probabilities, uncertainty and polygons."""
    return ["predict", scene, "--out", mask, *_options(
        probabilities=probabilities, uncertainty=uncertainty, vector=polygons, model=model,
        bands=_bands(bands),
        threshold=threshold, overlap=overlap, device=device, batch_size=batch_size,
        window=window, resolution=resolution, resume=resume), "--overwrite", *PROGRESS]


def vectorize_args(
    mask: str, polygons: str, *, probabilities: str | None = None, min_area: float = 0.0,
    simplify: float = 0.0, fill_holes: float = 0.0, connectivity: int = 8,
) -> list[str]:
    """``geoseg vectorize``: polygons of a class mask."""
    return ["vectorize", mask, "--out", polygons, *_options(
        probabilities=probabilities, min_area=min_area, simplify=simplify,
        fill_holes=fill_holes, connectivity=connectivity), "--overwrite", *PROGRESS]


def evaluate_args(
    scene: str, labels: str, report: str, *, model: str | None = None,
    bands: Sequence[int] = (), threshold: float | None = None, overlap: int | None = None,
    device: str = "auto", iou_threshold: float | None = None, objects: bool = True,
    overwrite: bool = False,
) -> list[str]:
    """``geoseg evaluate``: accuracy of a model on a labelled scene, with a report folder."""
    return ["evaluate", scene, "--labels", labels, "--out", report, *_options(
        model=model, bands=_bands(bands), threshold=threshold, overlap=overlap, device=device,
        iou_threshold=iou_threshold, no_objects=not objects, overwrite=overwrite), *PROGRESS]


def tile_args(
    scene: str, labels: str, out_dir: str, *, tile_size: int | None = None,
    overlap: int | None = None,
    bands: Sequence[int] = (), chip_format: str = "tif", split: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0, min_foreground: float | None = None, keep_empty: float = 1.0,
    overwrite: bool = False,
) -> list[str]:
    """``geoseg tile``: training chips of a labelled scene (``None``: geoseg's tile size and
    overlap)."""
    return ["tile", scene, "--labels", labels, "--out", out_dir, *_options(
        tile_size=tile_size, overlap=overlap, bands=_bands(bands), format=chip_format,
        split=",".join(_number(share) for share in split), seed=seed,
        min_foreground=min_foreground, keep_empty=keep_empty, overwrite=overwrite), *PROGRESS]


def train_args(
    config: str, out_dir: str, *, dataset: str | None = None,
    scene: tuple[str, str] | None = None, valid_scene: tuple[str, str] | None = None,
    epochs: int | None = None, monitor: str | None = None, resume: bool = False,
    overwrite: bool = False,
) -> list[str]:
    """``geoseg train``: a model from a config, on a dataset folder or a labelled scene.

    ``scene`` and ``valid_scene`` are (scene, labels) pairs.
    """
    args = ["train", config, "--out", out_dir, *_options(dataset=dataset)]
    if scene is not None:
        args += ["--scene", scene[0], "--labels", scene[1]]
    if valid_scene is not None:
        args += ["--valid-scene", valid_scene[0], "--valid-labels", valid_scene[1]]
    return args + _options(epochs=epochs, monitor=monitor, resume=resume,
                           overwrite=overwrite) + PROGRESS
