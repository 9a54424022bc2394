"""Backbones, head and augmentation. Importing this package does not import Keras;
its sub-modules (except :mod:`catalog`, :mod:`probe_level`, :mod:`flips` and :mod:`probe`, which
import it lazily) do."""
