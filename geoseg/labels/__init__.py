"""Labels from vector layers, label rasters and RGB masks, read per tile; the synthetic sample
scene."""
