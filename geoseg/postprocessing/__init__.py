"""Landslide regions from probabilities: the recipe, connected components across blocks and the
watershed split of one region."""
