"""Prediction of whole scenes: one run, one job (predict then vectorise), many scenes and bands on
Dask, test-time augmentation, previews and info."""
