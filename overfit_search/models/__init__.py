"""Backbones, head and augmentation. Importing this package does not import Keras;
its sub-modules (except :mod:`catalog` and :mod:`flips`) do."""
