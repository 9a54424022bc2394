"""One trial's training loop and clean metrics (imports Keras)."""
