"""Task definitions (grids, tokenisers, checkers, data splits) for the shipped models."""
