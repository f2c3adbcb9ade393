"""Which field of the algorithms' dialogs each geoseg parameter is: errors name the fields.

geoseg's messages name the parameters they are about (on the command line as flags: ``choose
them with --bands``). Run with ``--progress json`` it also writes the message with those
parameters marked (:func:`.runner.parse_error`), and the algorithms put the label of the
dialog's field in their place (``choose them with 'Bands, in the model's order'``), through
this one table. Plain Python: geoseg's tests check every name here is one of its parameters.
"""

from __future__ import annotations

FIELDS: dict[str, str] = {
    "scenes": "INPUT",
    "mask": "INPUT",
    "labels": "LABELS",
    "model_path": "MODEL",
    "bands": "BANDS",
    "threshold": "THRESHOLD",
    "overlap": "OVERLAP",
    "device": "DEVICE",
    "batch_size": "BATCH_SIZE",
    "window": "WINDOW",
    "resolution": "RESOLUTION",
    "resume": "RESUME",
    "overwrite": "OVERWRITE",
    "out_path": "OUTPUT",
    "probabilities_path": "PROBABILITIES",
    "uncertainty_path": "UNCERTAINTY",
    "vector_path": "POLYGONS",
    "min_area": "MIN_AREA",
    "simplify": "SIMPLIFY",
    "fill_holes": "FILL_HOLES",
    "connectivity": "CONNECTIVITY",
    "iou_threshold": "IOU_THRESHOLD",
    "tile_size": "TILE_SIZE",
    "chip_format": "FORMAT",
    "split": "SPLIT",
    "seed": "SEED",
    "min_foreground": "MIN_FOREGROUND",
    "keep_empty": "KEEP_EMPTY",
    "dataset": "DATASET",
    "epochs": "EPOCHS",
    "monitor": "MONITOR",
}
"""geoseg parameter name -> name of the algorithms' parameter (dialog field) that sets it."""

