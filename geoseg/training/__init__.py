"""Training: datasets and chips read through the tiler, the tf.data input, augmentation, losses and
metrics, the strategy, the loop and its outputs, and the post-processing tuned on validation
scenes."""
