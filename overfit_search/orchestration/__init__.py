"""The only package that imports Ray: searcher, stopper, trainable, launch."""
