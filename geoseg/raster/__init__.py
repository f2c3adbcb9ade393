"""Raster input and output: reading scenes with their validity, the tile grid, resampling, blending,
the mask and probability GeoTIFFs, safe outputs, the resume journal, styles and display."""
