"""Polygons from class masks: block by block, merged, measured, written with their style."""
