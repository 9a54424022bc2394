"""Find out a backbone's input convention, and whether its features can separate the classes.

A ``file:`` or ``tfhub:`` model says nothing about the pixel scale it was trained on, and a
wrong guess leaves every trial at chance. The probe finds out: it extracts the frozen
backbone's features (pooled to a vector) for a seeded sample of training and validation images
under each candidate convention (:data:`~overfit_search.models.catalog.PREPROCESS_CONVENTIONS`),
fits a linear probe (scikit-learn's LogisticRegression on standardized features) on the
training sample, scores it on the validation sample (log loss and accuracy) and picks the
convention with the lowest log loss; conventions within :data:`SE_TIE` standard errors of it
count as tied, and a tie goes to the convention whose inputs best match the backbone's first
BatchNormalization statistics (:func:`choose`).

The same table is the setup check: if even the best convention's validation accuracy is not
clearly above chance (a one-sided binomial test, :func:`binomial_sf`, at level
:data:`ALPHA` divided by the number of conventions tried), the backbone's features cannot
separate these classes as they are fed, and ``run`` stops before the first trial.

Keras and scikit-learn are imported inside the functions that need them: the sampling, the
test and the table (:func:`probe_sample`, :class:`ProbeResult`) are numpy only, so the sweep
driver uses them without loading TensorFlow.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from overfit_search.models.catalog import PREPROCESS_CONVENTIONS
from overfit_search.models.probe_level import ALPHA

if TYPE_CHECKING:
    from overfit_search.config.schema import ModelConfig, Sweep
    from overfit_search.data.dataset import ImageData

TRAIN_PER_CLASS = 40
"""Training images per class in the probe's sample (at most)."""
VAL_PER_CLASS = 40
"""Validation images per class in the probe's sample (at most)."""
MAX_SAMPLE = 400
"""Images at most on each side of the probe's sample (fewer per class with many classes)."""
MIN_PER_CLASS = 2
"""Images per class on each side at least, whatever :data:`MAX_SAMPLE` says."""
BATCH = 32
"""Batch size of the feature extraction."""
CHUNK = 256
"""Images scaled to float at a time."""
SE_TIE = 2.0
"""Conventions whose validation log loss is within this many standard errors (of the paired
per-image differences) of the lowest count as tied; the backbone's BatchNormalization
statistics then decide (:func:`choose`)."""

Images = npt.NDArray[np.uint8]
Labels = npt.NDArray[np.int32]


@dataclass
class ProbeRow:
    """One convention's linear probe.

    Attributes:
        convention: The ``model.preprocess`` value tried.
        val_log_loss: Log loss of the probe on the validation sample (inf when the features
            were not finite).
        val_accuracy: Its accuracy there.
        p_value: One-sided binomial p-value of that accuracy against chance.
        bn_mismatch: How far the inputs of the backbone's first BatchNormalization layer are
            from its moving statistics (:func:`bn_mismatch`), or None without one.
        note: Why a row could not be scored, else "".
    """

    convention: str
    val_log_loss: float
    val_accuracy: float
    p_value: float
    bn_mismatch: float | None = None
    note: str = ""


@dataclass
class ProbeResult:
    """The probe's table, its choice and the setup check's verdict.

    Attributes:
        rows: One per convention tried, in the order tried.
        chosen: The convention :func:`choose` picked (the lowest validation log loss, ties
            broken by BatchNormalization statistics).
        decided_by: ``probe`` (several conventions compared), or how the single convention
            tried was known: ``application``, ``builtin``, ``rescaling``, ``sweep``.
        num_classes: Classes.
        train_images: Images in the training sample.
        val_images: Images in the validation sample.
        chance: Accuracy of always guessing the largest class of the validation sample (at
            least 1 / classes): what the binomial test compares with.
        threshold: The p-value the best accuracy must be under (``ALPHA / len(rows)``).
        seconds: Wall seconds the probe took (model load, features, probes).
        notes: Other findings (e.g. horizontal flips on), one line each.
        flip: The flip check's :class:`~overfit_search.models.flips.FlipVerdict` as a dict
            (``train.augment_flip: auto``), or None when it was not asked for.
    """

    rows: list[ProbeRow]
    chosen: str
    decided_by: str
    num_classes: int
    train_images: int
    val_images: int
    chance: float
    threshold: float
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    flip: dict[str, Any] | None = None

    @property
    def best(self) -> ProbeRow:
        """The chosen convention's row."""
        return next(r for r in self.rows if r.convention == self.chosen)

    @property
    def ok(self) -> bool:
        """Whether the best validation accuracy is significantly above chance."""
        best = max(self.rows, key=lambda r: r.val_accuracy)
        return best.p_value < self.threshold

    @property
    def conclusive(self) -> bool:
        """Whether the validation sample is large enough for the test to pass at all: even
        every image right would not be significant on a handful of images."""
        return binomial_sf(self.val_images, self.val_images, self.chance) < self.threshold

    @property
    def passed(self) -> bool:
        """The setup check's outcome: ok, or too few validation images to tell (never blocks)."""
        return self.ok or not self.conclusive

    def tried(self) -> str:
        """The conventions tried and their validation accuracies, in one phrase."""
        return ", ".join(f"{r.convention} {r.val_accuracy:.2f}" for r in self.rows)

    def verdict(self) -> str:
        """One line: ok, or why the features cannot separate the classes."""
        best = max(self.rows, key=lambda r: r.val_accuracy)
        if not self.ok and not self.conclusive:
            return (
                f"inconclusive: {self.val_images} validation images are too few to tell a "
                f"linear probe's accuracy from chance ({self.chance:.2f}) at p < "
                f"{self.threshold:.2g} (validation accuracy: {self.tried()}); not blocking"
            )
        if self.ok:
            chosen = self.best
            also = (
                ""
                if chosen is best
                else f"; the chosen {chosen.convention}: {chosen.val_accuracy:.2f}"
            )
            return (
                f"ok: a linear probe on the frozen backbone's features reaches validation "
                f"accuracy {best.val_accuracy:.2f} with preprocess {best.convention} (chance "
                f"{self.chance:.2f}, p={best.p_value:.2g} < {self.threshold:.2g}{also})"
            )
        return (
            f"the backbone's features do not separate the classes: a linear probe on "
            f"{self.val_images} validation images stayed at chance ({self.chance:.2f}) under "
            f"every input convention tried (validation accuracy: {self.tried()}; best "
            f"p={best.p_value:.2g}, needs < {self.threshold:.2g}); check the model file, the "
            "layer named after '#', and the data, or pass --force"
        )

    def table(self) -> str:
        """The table as plain text, the chosen convention marked."""
        head = f"{'preprocess':<11}{'val_log_loss':>13}{'val_accuracy':>14}{'p_value':>10}"
        lines = [head + f"{'bn_mismatch':>13}"]
        for r in self.rows:
            mark = "  <- chosen" if r.convention == self.chosen else ""
            note = f"  ({r.note})" if r.note else ""
            bn = "-" if r.bn_mismatch is None else f"{r.bn_mismatch:.3g}"
            lines.append(
                f"{r.convention:<11}{r.val_log_loss:>13.4f}{r.val_accuracy:>14.3f}"
                f"{r.p_value:>10.2g}{bn:>13}{mark}{note}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (non-finite log losses become None)."""
        doc = asdict(self)
        for row in doc["rows"]:
            if not math.isfinite(row["val_log_loss"]):
                row["val_log_loss"] = None
        doc["ok"] = self.ok
        doc["passed"] = self.passed
        doc["verdict"] = self.verdict()
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ProbeResult:
        """The inverse of :meth:`to_dict`."""
        rows = [
            ProbeRow(
                convention=r["convention"],
                val_log_loss=math.inf if r["val_log_loss"] is None else float(r["val_log_loss"]),
                val_accuracy=float(r["val_accuracy"]),
                p_value=float(r["p_value"]),
                bn_mismatch=None if r.get("bn_mismatch") is None else float(r["bn_mismatch"]),
                note=str(r.get("note", "")),
            )
            for r in doc["rows"]
        ]
        return cls(
            rows,
            chosen=str(doc["chosen"]),
            decided_by=str(doc["decided_by"]),
            num_classes=int(doc["num_classes"]),
            train_images=int(doc["train_images"]),
            val_images=int(doc["val_images"]),
            chance=float(doc["chance"]),
            threshold=float(doc["threshold"]),
            seconds=float(doc.get("seconds", 0.0)),
            notes=list(doc.get("notes", [])),
            flip=doc.get("flip"),
        )


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): the one-sided p-value of ``k`` hits in ``n``.

    Summed exactly in log space (no scipy), so it stays accurate for a few thousand trials.
    """
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    lgn = math.lgamma(n + 1)
    terms = [
        lgn - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
        for i in range(k, n + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def _per_class(labels: Labels, per_class: int, rng: np.random.Generator) -> npt.NDArray[np.intp]:
    picked: list[npt.NDArray[np.intp]] = []
    for cls in np.unique(labels):
        where = np.flatnonzero(labels == cls)
        take = min(per_class, len(where))
        picked.append(np.sort(rng.choice(where, size=take, replace=False)))
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.intp)


def probe_sample(data: ImageData, seed: int) -> tuple[Images, Labels, Images, Labels]:
    """A seeded, per-class sample of the training and validation images for the probe.

    Up to :data:`TRAIN_PER_CLASS` / :data:`VAL_PER_CLASS` images per class, at most
    :data:`MAX_SAMPLE` on each side (at least :data:`MIN_PER_CLASS` per class). Small arrays
    (copied out of a memory map), cheap to send to a worker.

    Args:
        data: The sweep's decoded data (its test split is never used).
        seed: Seed of the ``numpy.random.Generator`` that picks the images.

    Returns:
        ``(x_train, y_train, x_val, y_val)``.
    """
    rng = np.random.default_rng(seed)
    k = max(1, data.num_classes)
    per_train = max(MIN_PER_CLASS, min(TRAIN_PER_CLASS, MAX_SAMPLE // k))
    per_val = max(MIN_PER_CLASS, min(VAL_PER_CLASS, MAX_SAMPLE // k))
    tr = _per_class(np.asarray(data.y_train), per_train, rng)
    va = _per_class(np.asarray(data.y_val), per_val, rng)
    return (
        np.ascontiguousarray(data.x_train[tr]),
        np.asarray(data.y_train[tr], dtype=np.int32),
        np.ascontiguousarray(data.x_val[va]),
        np.asarray(data.y_val[va], dtype=np.int32),
    )


def flip_note(sweep: Sweep) -> str | None:
    """The note about class-dependent augmentation when horizontal flips are on, else None."""
    if sweep.train.augment_flip is not True:  # off, or auto: the probe's flip check decides
        return None
    return (
        "train.augment_flip is true: horizontal flips change the class of digits, text, hand "
        "signs and other handed images; set train.augment_flip: auto (the default) to have "
        "the data checked, or false for such data"
    )


def _first_batchnorm(model: Any) -> Any:
    """The first BatchNormalization layer of a functional backbone's own graph, or None."""
    import keras

    if not isinstance(model, keras.Model) or not getattr(model, "_is_graph_network", True):
        return None
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            return layer
    return None


def _feature_model(backbone: Any, image_size: int) -> tuple[Any, Any]:
    """Preprocessed RGB → [resize] → backbone → pooled vector; with a BatchNormalization layer
    of the backbone's own (the first), two more outputs: the per-image, per-channel means of
    that layer's input and of its square. Built once: only the input scaling differs between
    conventions, and it is applied outside (one compilation, not five)."""
    import keras
    from keras import ops

    inputs = keras.Input((image_size, image_size, 3))
    x = inputs
    if backbone.input_size is not None and backbone.input_size != image_size:
        x = keras.layers.Resizing(backbone.input_size, backbone.input_size)(x)
    bn = _first_batchnorm(backbone.model)
    stats: list[Any] = []
    if bn is not None:
        try:
            bn_in = keras.Model(backbone.model.inputs, bn.input)(x)
            axes = tuple(range(1, len(bn_in.shape) - 1))
            flat = ops.mean(bn_in, axis=axes) if axes else bn_in
            squares = ops.mean(ops.square(bn_in), axis=axes) if axes else ops.square(bn_in)
            stats = [flat, squares]
        except Exception:  # a graph Keras cannot cut there: no statistics, the probe stands
            bn, stats = None, []
    feats = backbone.model(x, training=False)
    if isinstance(feats, dict):
        feats = next(iter(feats.values()))
    if len(feats.shape) == 4:
        feats = keras.layers.GlobalAveragePooling2D()(feats)
    elif len(feats.shape) > 2:
        feats = keras.layers.Flatten()(feats)
    return keras.Model(inputs, [feats, *stats]), bn


def _predict(model: Any, images: Images, convention: str) -> list[npt.NDArray[np.float64]]:
    """The feature model's outputs for uint8 images scaled by ``convention`` (in chunks, so a
    sample at 224 px never exists as float32 whole)."""
    from overfit_search.models.layers import Preprocess

    scale = Preprocess(convention)
    parts: list[list[npt.NDArray[np.float64]]] = []
    for start in range(0, len(images), CHUNK):
        chunk = np.asarray(scale(images[start : start + CHUNK].astype(np.float32)))
        out = model.predict(chunk, batch_size=BATCH, verbose=0)
        outs = out if isinstance(out, list | tuple) else [out]
        parts.append([np.asarray(o, dtype=np.float64) for o in outs])
    return [np.concatenate(column) for column in zip(*parts, strict=True)]


def bn_mismatch(
    means: npt.NDArray[np.float64],
    squares: npt.NDArray[np.float64],
    moving_mean: Any,
    moving_var: Any,
    epsilon: float,
) -> float:
    """How far a batch is from what a BatchNormalization layer learnt to expect.

    The mean over channels of KL(N(batch mean, batch variance) || N(moving mean, moving
    variance)): 0 when the images arrive at the scale the backbone was trained on, large when
    they are 127 or 255 times too large or small, or shifted.

    Args:
        means: Per-image, per-channel means of the layer's input, (N, C).
        squares: The same of its square.
        moving_mean: The layer's moving mean, (C,).
        moving_var: Its moving variance, (C,).
        epsilon: Its epsilon.
    """
    m = means.mean(axis=0)
    v = np.maximum(squares.mean(axis=0) - m**2, 0.0) + epsilon
    mu = np.asarray(moving_mean, dtype=np.float64)
    s2 = np.asarray(moving_var, dtype=np.float64) + epsilon
    kl = 0.5 * (np.log(s2 / v) + (v + (m - mu) ** 2) / s2 - 1.0)
    return float(np.mean(kl))


def linear_probe(
    f_train: npt.NDArray[np.float64],
    y_train: Labels,
    f_val: npt.NDArray[np.float64],
    y_val: Labels,
    num_classes: int,
) -> npt.NDArray[np.float64]:
    """Fit LogisticRegression on standardized training features; score it on validation.

    Returns:
        The predicted class probabilities of the validation features, (M, num_classes).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(f_train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        clf = LogisticRegression(C=1.0, max_iter=300).fit(scaler.transform(f_train), y_train)
        part = clf.predict_proba(scaler.transform(f_val))
    proba = np.full((len(f_val), num_classes), 1e-12)
    proba[:, clf.classes_.astype(int)] = part
    proba /= proba.sum(axis=1, keepdims=True)
    return proba


def choose(rows: list[ProbeRow], losses: dict[str, npt.NDArray[np.float64]]) -> str:
    """The chosen convention (see :data:`SE_TIE`).

    The lowest validation log loss, unless other conventions are not significantly worse
    (their mean paired difference in per-image log loss is within :data:`SE_TIE` standard
    errors) and the backbone has BatchNormalization statistics: then, among those, the one
    whose inputs match the statistics best (lowest ``bn_mismatch``). A linear probe on
    standardized features barely sees a pure change of scale, and the statistics do.
    """
    best = min(rows, key=lambda r: r.val_log_loss)
    if best.bn_mismatch is None or not math.isfinite(best.val_log_loss):
        return best.convention
    tied = [best]
    for r in rows:
        if r is best or r.bn_mismatch is None or r.convention not in losses:
            continue
        diff = losses[r.convention] - losses[best.convention]
        se = float(np.std(diff, ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else 0.0
        if float(np.mean(diff)) <= SE_TIE * se:
            tied.append(r)
    return min(tied, key=lambda r: math.inf if r.bn_mismatch is None else r.bn_mismatch).convention


def probe_backbone(
    model_cfg: ModelConfig,
    image_size: int,
    sample: tuple[Images, Labels, Images, Labels],
    num_classes: int,
    conventions: tuple[str, ...] | None = None,
    mirror: bool = False,
) -> ProbeResult:
    """Build the frozen backbone and run the linear probe under each candidate convention.

    Args:
        model_cfg: The sweep's model section (``backbone`` and ``preprocess`` are read).
        image_size: ``data.image_size``.
        sample: ``(x_train, y_train, x_val, y_val)`` from :func:`probe_sample`.
        num_classes: Classes of the sweep.
        conventions: Conventions to try; default: every one of
            :data:`~overfit_search.models.catalog.PREPROCESS_CONVENTIONS` when the backbone's
            convention is a guess (``file:``/``tfhub:`` with ``preprocess: auto`` and no
            Rescaling layer of its own), else only the known one.
        mirror: Also run the flip check (``train.augment_flip: auto``): under the chosen
            convention, do the validation images' mirror images keep their class
            (:func:`~overfit_search.models.flips.flip_verdict`)?

    Returns:
        The table, the chosen convention (:func:`choose`) and the setup check's verdict.
    """
    from keras.ops import convert_to_numpy as to_numpy

    from overfit_search.models.backbones import build_backbone

    start = time.perf_counter()
    x_tr, y_tr, x_va, y_va = sample
    backbone = build_backbone(model_cfg, image_size)
    if conventions is None:
        guess = backbone.preprocess_from == "guess"
        conventions = PREPROCESS_CONVENTIONS if guess else (backbone.preprocess,)
    decided_by = "probe" if len(conventions) > 1 else backbone.preprocess_from
    images = np.concatenate([x_tr, x_va])
    counts = np.bincount(y_va, minlength=num_classes)
    chance = max(1.0 / num_classes, float(counts.max()) / max(1, len(y_va)))
    rows: list[ProbeRow] = []
    losses: dict[str, npt.NDArray[np.float64]] = {}
    features: dict[str, npt.NDArray[np.float64]] = {}
    model, bn = _feature_model(backbone, image_size)
    for convention in conventions:
        outs = _predict(model, images, convention)
        feats = outs[0].reshape(len(images), -1)
        mismatch = None
        if len(outs) == 3 and bn is not None and np.isfinite(outs[1]).all():
            moving = (to_numpy(bn.moving_mean), to_numpy(bn.moving_variance))
            mismatch = bn_mismatch(outs[1], outs[2], *moving, bn.epsilon)
        f_tr, f_va = feats[: len(x_tr)], feats[len(x_tr) :]
        if not np.isfinite(feats).all():
            rows.append(ProbeRow(convention, math.inf, 0.0, 1.0, None, "non-finite features"))
            continue
        features[convention] = feats
        proba = linear_probe(f_tr, y_tr, f_va, y_va, num_classes)
        per_image = -np.log(proba[np.arange(len(y_va)), y_va])
        losses[convention] = per_image
        accuracy = float(np.mean(proba.argmax(axis=1) == y_va))
        hits = round(accuracy * len(y_va))
        p_value = binomial_sf(hits, len(y_va), chance)
        rows.append(ProbeRow(convention, float(per_image.mean()), accuracy, p_value, mismatch))
    chosen = choose(rows, losses)
    flip = None
    if mirror and chosen in features:
        from overfit_search.models.flips import flip_verdict, probe_hits

        feats = features[chosen]
        mirrored = _predict(model, np.ascontiguousarray(x_va[:, :, ::-1]), chosen)[0]
        plain_hits, mirrored_hits = probe_hits(
            feats[: len(x_tr)], y_tr, feats[len(x_tr) :], mirrored.reshape(len(x_va), -1), y_va
        )
        flip = asdict(flip_verdict(plain_hits, mirrored_hits))
    return ProbeResult(
        rows,
        chosen,
        decided_by,
        num_classes,
        len(y_tr),
        len(y_va),
        chance,
        ALPHA / len(rows),
        seconds=time.perf_counter() - start,
        flip=flip,
    )
