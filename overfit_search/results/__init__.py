"""Exports, report, dashboard launcher and retrain (no TensorFlow or Ray at import)."""
