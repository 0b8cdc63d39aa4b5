"""Training entry points for the models shipped with smcdiff (``python -m smcdiff.train <model> ...``)."""
