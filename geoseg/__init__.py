"""geoseg: find landslides in whole georeferenced scenes.

The package is importable without TensorFlow being loaded: the tiler, the stitcher and the
vectoriser are plain numpy/rasterio code. Only :mod:`geoseg.model` and
:mod:`geoseg.inference` import TensorFlow/Keras.
"""

__version__ = "0.1.0"
