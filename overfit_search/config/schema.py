"""Pydantic models of the sweep file, one per YAML section (DESIGN.md §3)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from overfit_search.config.knobs import (
    KNOBS_BY_NAME,
    Knob,
    Span,
    alternative_groups,
    knobs_of,
)
from overfit_search.models.catalog import APPLICATIONS, BUILTINS, SCHEMES
from overfit_search.pruning.presets import PRESETS


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """Where the images come from and how they are split."""

    source: Literal["folder", "digits"] = "folder"
    dir: Path | None = None
    image_size: Annotated[int, Field(ge=8, le=1024)] = 224
    validation_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    split: Literal["stratified", "sorted"] = "stratified"
    group_pattern: str | None = None
    # share of each class held out as a test split (from the training side), evaluated once
    # for the final model by retrain/export; trials never see it
    test_fraction: Annotated[float, Field(gt=0.0, lt=0.5)] | None = None
    seed: int = 0
    # digits only: which digits to use and how many training images per class
    digits_classes: list[Annotated[int, Field(ge=0, le=9)]] = Field(
        default_factory=lambda: [5, 6, 7, 8, 9]
    )
    train_per_class: Annotated[int, Field(ge=2)] | None = None

    @field_validator("group_pattern")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"is not a valid regular expression ({exc})") from exc
        if compiled.groups < 1:
            raise ValueError("must have a capturing group that names the source")
        return value

    @model_validator(mode="after")
    def _dir_for_folder(self) -> Self:
        if self.source == "folder" and self.dir is None:
            raise ValueError("dir: required when source is 'folder'")
        return self


class HeadConfig(_Section):
    """The classification head put on the backbone."""

    pooling: Literal["avg", "max"] = "avg"
    hidden_units: Annotated[int, Field(ge=0)] = 0
    attention_heads: Annotated[int, Field(ge=0)] = 0


class ModelConfig(_Section):
    """The backbone and its head."""

    backbone: str = "mobilenet_v2"
    weights: str = "imagenet"
    preprocess: Literal["auto", "tf", "torch", "caffe", "unit", "none"] = "auto"
    """How uint8 pixels in [0, 255] are scaled before the backbone: ``tf`` ([-1, 1]),
    ``torch`` (ImageNet mean/std), ``caffe`` (BGR, ImageNet mean subtracted), ``unit``
    ([0, 1]), ``none`` (raw 0-255: the model rescales itself), or ``auto``: a
    ``keras.applications`` name or a ``builtin:`` uses its own; a ``file:``/``tfhub:`` model
    whose input path starts with a Rescaling or Normalization layer gets ``none``; any other is
    probed before the first trial (``overfit_search.models.probe``) and the choice is written
    into the results' sweep.yaml."""
    batchnorm: Literal["frozen", "train"] = "frozen"
    """``frozen``: every BatchNormalization layer of the backbone stays non-trainable, so it
    runs in inference mode with its pretrained statistics, also in the unfrozen layers (the
    Keras transfer-learning guide's advice); ``train``: those in unfrozen layers train."""
    head: HeadConfig = Field(default_factory=HeadConfig)

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, value: str) -> str:
        if value.startswith(SCHEMES):
            scheme, _, rest = value.partition(":")
            if not rest:
                raise ValueError(f"'{scheme}:' needs a target after the colon")
            if scheme == "builtin" and rest not in BUILTINS:
                raise ValueError(
                    f"unknown builtin backbone '{rest}'; choose one of: {', '.join(BUILTINS)}"
                )
            return value
        if value not in APPLICATIONS:
            names = ", ".join(sorted(APPLICATIONS))
            raise ValueError(
                f"unknown backbone '{value}'; choose a keras.applications name ({names}), "
                "or file:PATH[#LAYER], tfhub:HANDLE_OR_DIR, builtin:NAME"
            )
        return value

    @property
    def scheme(self) -> str:
        """``application``, ``file``, ``tfhub`` or ``builtin``."""
        if self.backbone.startswith(SCHEMES):
            return self.backbone.partition(":")[0]
        return "application"


class FloatRange(_Section):
    """A searched float knob."""

    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.low > self.high:
            raise ValueError(f"low must be <= high, got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got low={self.low}")
        return self


class IntRange(_Section):
    """A searched integer knob."""

    low: int
    high: int
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.low > self.high:
            raise ValueError(f"low must be <= high, got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got low={self.low}")
        return self


FloatKnob = float | FloatRange
IntKnob = int | IntRange


# Everything below about the knobs derives from the knob table (config/knobs.py).

TRAIN_KNOBS: tuple[str, ...] = tuple(knob.name for knob in knobs_of("train"))
"""The train settings a sweep may search (``TrainConfig.knobs``) and a baseline may pin."""

KNOB_BOUNDS: dict[str, tuple[float, float]] = {
    knob.name: (knob.low, knob.high) for knob in knobs_of("search")
}
"""Valid bounds of each search knob, checked for fixed values and for both ends of a range."""
KNOBS: tuple[str, ...] = tuple(KNOB_BOUNDS)
"""The ``search`` section's knobs (both freezing knobs), in table order."""


def knob_default(knob: Knob) -> FloatKnob | IntKnob | None:
    """A knob's default as the schema holds it: a fixed number, a range, or None.

    Args:
        knob: A row of the knob table.

    Returns:
        A new ``FloatRange`` / ``IntRange`` for a :class:`~overfit_search.config.knobs.Span`
        default (each call a fresh one), an ``int`` / ``float`` for a fixed default, else None.
    """
    default = knob.default
    if default is None:
        return None
    if isinstance(default, Span):
        if knob.integer:
            return IntRange(low=int(default.low), high=int(default.high), log=default.log)
        return FloatRange(low=default.low, high=default.high, log=default.log)
    return int(default) if knob.integer else float(default)


def _knob_field(name: str) -> Any:
    """The pydantic ``Field`` of knob ``name``, its default taken from the knob table."""
    knob = KNOBS_BY_NAME[name]
    if isinstance(knob.default, Span) and knob.alternatives is None:
        return Field(default_factory=lambda: knob_default(knob))
    # a knob of a group of alternatives starts unset: SearchConfig fills in the group's first
    # when the sweep gives none of them
    return Field(default=None if knob.alternatives is not None else knob_default(knob))


class TrainConfig(_Section):
    """How each trial trains."""

    batch_size: Annotated[int, Field(ge=1)] = 32
    max_epochs: Annotated[int, Field(ge=1)] = 30
    optimizer: Literal["adam", "sgd", "adamw"] = "adam"
    # true: float16 where a GPU is visible, else bfloat16; or name one; the output layer and the
    # variables stay float32 (Keras's mixed policies), float16 gets Keras's loss scaling
    mixed_precision: bool | Literal["float16", "bfloat16"] = False
    trial_timeout: Annotated[float, Field(gt=0)] | None = None
    keep_best_weights: Annotated[int, Field(ge=0)] = 3
    # Horizontal flips: auto asks the data before the first trial (models/flips.py): off when a
    # linear probe reads mirror images clearly worse (digits, text, handed signs), else on.
    augment_flip: bool | Literal["auto"] = "auto"
    # weights/shuffle/dropout seed; None: one per trial derived from study.seed (best.yaml sets
    # the winning trial's, so a retrain repeats it)
    seed: int | None = None
    # Two-phase fine-tuning (the Keras transfer-learning guide): the first head_epochs epochs
    # train the head with the whole backbone frozen; then the trial's frozen_fraction /
    # frozen_layers applies and training goes on, recompiled, at learning_rate *
    # finetune_lr_factor. max_epochs counts both phases; epochs are numbered 1..max_epochs
    # across them. 0: one phase (the trial's freezing from the first epoch). head_epochs equal
    # to max_epochs trains the head only (a retrain whose best epoch fell in the head phase).
    # Both may be searched: a {low, high[, log]} range here is sampled per trial like a knob.
    head_epochs: IntKnob = _knob_field("head_epochs")
    finetune_lr_factor: FloatKnob = _knob_field("finetune_lr_factor")
    # Batches per compiled call (Keras's compile(steps_per_execution=...)): fewer round trips
    # between Python and the graph, which dominate small models on CPUs; same updates as 1.
    # Batch-level callbacks (the stop and timeout checks) then run once per N batches.
    steps_per_execution: Annotated[int, Field(ge=1)] = 8

    @field_validator(*TRAIN_KNOBS)
    @classmethod
    def _knob_bounds(cls, value: Any, info: ValidationInfo) -> Any:
        return _check_bounds(str(info.field_name), value)

    @model_validator(mode="after")
    def _head_within_max(self) -> Self:
        most = self.head_epochs.high if isinstance(self.head_epochs, IntRange) else self.head_epochs
        if most > self.max_epochs:
            raise ValueError(
                f"train.head_epochs: must be at most train.max_epochs ({self.max_epochs}), "
                f"which counts both phases, got {most}"
            )
        return self

    def knobs(self) -> dict[str, FloatKnob | IntKnob]:
        """The train settings that may be searched (``TRAIN_KNOBS``), by name."""
        return {name: getattr(self, name) for name in TRAIN_KNOBS}


def _check_bounds(name: str, value: Any) -> Any:
    """``value`` (a fixed value or a range) of knob ``name``, checked against its table bounds.

    Raises:
        ValueError: A fixed value, or an end of the range, is out of bounds.
    """
    knob = KNOBS_BY_NAME[name]
    ends = [value.low, value.high] if isinstance(value, FloatRange | IntRange) else [value]
    for end in ends:
        if end is None:
            continue
        if _below(knob, end):
            raise ValueError(f"{_which(value, end)}must be {_floor(knob)}, got {_shown(knob, end)}")
        if end > knob.high:
            raise ValueError(f"{_which(value, end)}must be <= {knob.high:g}, got {end:g}")
    return value


def _below(knob: Knob, value: float) -> bool:
    """Whether ``value`` is under the knob's lower bound (or at it, for an open bound)."""
    return bool(value < knob.low or (knob.low_open and value == knob.low))


def _floor(knob: Knob) -> str:
    """``">= 0"`` or, for an open lower bound, ``"> 0"``."""
    return f"{'>' if knob.low_open else '>='} {knob.low:g}"


def _shown(knob: Knob, value: float) -> str:
    """``value`` in a bounds message: ``:g``, except a train setting's whole number as it is
    (the messages these settings have always had)."""
    if knob.section == "train" and knob.integer and isinstance(value, int):
        return str(value)
    return f"{value:g}"


def _check_baseline_pin(name: str, value: float) -> None:
    """Check a baseline's pinned value of train setting ``name`` against its table bound (and,
    for an integer setting, that it is whole).

    Raises:
        ValueError: The value is below the setting's bound, or not whole where it must be.
    """
    knob = KNOBS_BY_NAME[name]
    if _below(knob, value) or (knob.integer and value != int(value)):
        whole = "a whole number " if knob.integer else ""
        raise ValueError(f"baseline: {name} must be {whole}{_floor(knob)}, got {value:g}")


class SearchConfig(_Section):
    """The five knobs, each fixed or a range, and an optional baseline trial.

    ``baseline`` (the user's current setup, run first) pins knobs by name: the active search
    knobs and the two-phase train settings (``TRAIN_KNOBS``), so a one-phase setup can be
    the baseline of a two-phase sweep (``head_epochs: 0``). Knobs it leaves out are sampled.
    """

    # One field per search knob of the knob table (config/knobs.py), in its order, defaults
    # from it; tests/config/test_knob_table.py fails when the two disagree.
    dropout: FloatKnob = _knob_field("dropout")
    l2: FloatKnob = _knob_field("l2")
    learning_rate: FloatKnob = _knob_field("learning_rate")
    augmentation: FloatKnob = _knob_field("augmentation")
    frozen_fraction: FloatKnob | None = _knob_field("frozen_fraction")
    frozen_layers: IntKnob | None = _knob_field("frozen_layers")
    baseline: dict[str, float] | None = None

    @field_validator(*KNOBS)
    @classmethod
    def _knob_bounds(cls, value: Any, info: ValidationInfo) -> Any:
        return None if value is None else _check_bounds(str(info.field_name), value)

    @model_validator(mode="after")
    def _one_freezing_knob(self) -> Self:
        for names in alternative_groups().values():
            given = [name for name in names if getattr(self, name) is not None]
            if len(given) > 1:
                raise ValueError(
                    f"give {' or '.join(given)}, {'not both' if len(given) == 2 else 'only one'}"
                )
            if not given:
                object.__setattr__(self, names[0], knob_default(KNOBS_BY_NAME[names[0]]))
        if self.baseline is not None:
            allowed = {*self.active_knobs(), *TRAIN_KNOBS}
            unknown = sorted(set(self.baseline) - allowed)
            if unknown:
                raise ValueError(
                    f"baseline: unknown knob(s) {', '.join(unknown)}; "
                    f"choose from {', '.join(sorted(allowed))}"
                )
            for key, val in self.baseline.items():
                if key in TRAIN_KNOBS:
                    _check_baseline_pin(key, val)
                else:
                    _check_bounds(key, val)
        return self

    def active_knobs(self) -> tuple[str, ...]:
        """The knob names this search uses (one of the two freezing knobs), in table order.

        Of a group of alternatives (``Knob.alternatives``) the one given counts, else the
        group's first (which validation fills in).
        """
        groups = alternative_groups()
        names: list[str] = []
        for knob in knobs_of("search"):
            if knob.alternatives is None:
                names.append(knob.name)
                continue
            group = groups[knob.alternatives]
            chosen = next((n for n in group[1:] if getattr(self, n) is not None), group[0])
            if chosen not in names:
                names.append(chosen)
        return tuple(names)


class ObjectiveConfig(_Section):
    """How a trial is scored (DESIGN.md §5)."""

    # val_loss by default since issue 19: on held-out selection banks (bench/selection.py) the
    # gap-constrained choice picked trials with a higher test loss, never a lower one.
    mode: Literal["val_loss", "constrained", "pareto", "penalized"] = "val_loss"
    max_gap: Annotated[float, Field(ge=0.0)] = 0.10
    penalty_weight: Annotated[float, Field(ge=0.0)] = 1.0


class GLRuleConfig(_Section):
    name: Literal["gl"] = "gl"
    alpha: Annotated[float, Field(gt=0)] = 5.0
    patience: Annotated[int, Field(ge=1)] = 1


class PQRuleConfig(_Section):
    name: Literal["pq"]
    alpha: Annotated[float, Field(gt=0)] = 0.5
    strip: Annotated[int, Field(ge=2)] = 5


class UPRuleConfig(_Section):
    name: Literal["up"]
    strips: Annotated[int, Field(ge=1)] = 3
    strip: Annotated[int, Field(ge=1)] = 5


class GapRuleConfig(_Section):
    name: Literal["gap"]
    max_gap: Annotated[float, Field(ge=0)] = 0.15
    patience: Annotated[int, Field(ge=1)] = 2


class PeakRuleConfig(_Section):
    name: Literal["peak"]
    patience: Annotated[int, Field(ge=1)] = 3
    z: Annotated[float, Field(ge=0)] = 2.0
    min_rise: Annotated[float, Field(ge=0)] = 1.0
    smooth: Annotated[int, Field(ge=1)] = 1
    sustained: bool = False


class NoRuleConfig(_Section):
    name: Literal["none"]


RuleConfig = Annotated[
    GLRuleConfig | PQRuleConfig | UPRuleConfig | GapRuleConfig | NoRuleConfig | PeakRuleConfig,
    Field(discriminator="name"),
]


class HalvingBudgetConfig(_Section):
    name: Literal["halving"]
    first_rung: Annotated[int, Field(ge=1)] = 1
    reduction_factor: Annotated[float, Field(gt=1)] = 3.0
    min_trials: Annotated[int, Field(ge=2)] = 5
    z: Annotated[float, Field(ge=0)] = 1.0
    verify: Annotated[float, Field(ge=-1, le=1)] | None = None
    verify_trials: Annotated[int, Field(ge=3)] = 6


class MedianBudgetConfig(_Section):
    name: Literal["median"]
    grace: Annotated[int, Field(ge=1)] = 2
    min_trials: Annotated[int, Field(ge=2)] = 5
    percentile: Annotated[float, Field(gt=0, lt=100)] = 50.0
    z: Annotated[float, Field(ge=0)] = 1.0
    against: Literal["best", "mean"] = "best"


class NoBudgetConfig(_Section):
    name: Literal["none"] = "none"


BudgetConfig = Annotated[
    HalvingBudgetConfig | MedianBudgetConfig | NoBudgetConfig, Field(discriminator="name")
]

DEFAULT_PRESET: str | None = "balanced"
"""The preset a ``pruning`` section with no ``preset``, ``rule`` or ``budget`` gets.

``balanced`` since issue 18: on the held-out curve banks of bench/RESULTS.md it ran fewer epochs
than GL (alpha 5, grace 2, median) pooled and found a better best val loss, and at GL's own
epoch spend a no worse one in every one of 150 random searches. None: GL alone, as before.
"""


class NoSchedulerConfig(_Section):
    name: Literal["none"] = "none"


class ASHASchedulerConfig(_Section):
    name: Literal["asha"]
    grace_period: Annotated[int, Field(ge=1)] = 2
    reduction_factor: Annotated[float, Field(gt=1)] = 3.0


SchedulerConfig = Annotated[NoSchedulerConfig | ASHASchedulerConfig, Field(discriminator="name")]


class PruningConfig(_Section):
    """When trials stop (DESIGN.md §5).

    ``preset`` (``safe`` | ``balanced`` | ``fast``) fills ``rule``, ``budget`` and
    ``end_guard`` with that level's settings (overfit_search/pruning/presets.py), except a part
    given explicitly. ``end_guard``: the overfitting rule is not asked in the last that many
    epochs of ``train.max_epochs``. With
    no ``preset``, ``rule`` or ``budget`` at all, :data:`DEFAULT_PRESET` applies; a section that
    names only a ``rule`` gets that rule and no budget rule, as before presets existed.
    """

    preset: Literal["safe", "balanced", "fast"] | None = None
    rule: RuleConfig = Field(default_factory=GLRuleConfig)
    budget: BudgetConfig = Field(default_factory=NoBudgetConfig)
    grace_epochs: Annotated[int, Field(ge=0)] = 2
    compare: Literal["median", "none"] = "median"
    compare_min_trials: Annotated[int, Field(ge=0)] = 4
    end_guard: Annotated[int, Field(ge=0)] = 0
    scheduler: SchedulerConfig = Field(default_factory=NoSchedulerConfig)

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "preset" not in data and "rule" not in data and "budget" not in data:
            if DEFAULT_PRESET is None:
                return data
            data["preset"] = DEFAULT_PRESET
        name = data.get("preset")
        if isinstance(name, str) and name in PRESETS:
            for part, value in PRESETS[name].items():
                if part not in data:
                    data[part] = dict(value) if isinstance(value, dict) else value
        return data


class StudyConfig(_Section):
    """The Optuna study."""

    trials: Annotated[int, Field(ge=1)] = 40
    sampler: Literal["tpe", "nsga2", "random", "gp"] = "tpe"
    n_startup_trials: Annotated[int, Field(ge=0)] = 8
    seed: int = 0
    timeout: Annotated[float, Field(gt=0)] | None = None
    max_total_epochs: Annotated[int, Field(ge=1)] | None = None
    storage: str | None = None
    # with a server storage: how often each driver marks its running trials alive; a trial
    # silent for three intervals belongs to a dead driver and is failed (and re-run) on resume
    heartbeat_seconds: Annotated[int, Field(ge=1)] = 30


class ResourcesConfig(_Section):
    """What each trial asks Ray for."""

    cpus_per_trial: Annotated[float, Field(gt=0)] = 1
    gpus_per_trial: Annotated[float, Field(ge=0)] = 0
    max_concurrent: Annotated[int, Field(ge=1)] | None = None
    ray_address: str | None = None

    @field_validator("ray_address")
    @classmethod
    def _not_ray_client(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("ray://"):
            raise ValueError(
                "Ray Client (ray://) is not supported: the driver writes the results folder, so "
                "run overfit-search on a node of the cluster with host:port or auto"
            )
        return value

    @field_validator("gpus_per_trial")
    @classmethod
    def _whole_above_one(cls, value: float) -> float:
        if value > 1 and not float(value).is_integer():
            raise ValueError(
                f"above 1 must be a whole number of GPUs (Ray shares a GPU only in fractions "
                f"below 1), got {value:g}"
            )
        return value


class Sweep(_Section):
    """One sweep file: one study."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    pruning: PruningConfig = Field(default_factory=PruningConfig)
    study: StudyConfig = Field(default_factory=StudyConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)

    @model_validator(mode="before")
    @classmethod
    def _pareto_budget(cls, data: Any) -> Any:
        """In pareto mode a preset (or the default preset) brings no budget rule: it ranks
        trials on val_loss alone and would cut the low-gap end of the front."""
        if not isinstance(data, dict) or not isinstance(data.get("objective"), dict):
            return data
        if data["objective"].get("mode") != "pareto":
            return data
        pruning = data.get("pruning")
        if pruning is None:
            pruning = {}
        if not isinstance(pruning, dict) or "budget" in pruning:
            return data
        pruning = dict(pruning)
        if "preset" not in pruning and "rule" not in pruning and DEFAULT_PRESET is not None:
            pruning["preset"] = DEFAULT_PRESET
        pruning["budget"] = {"name": "none"}
        return {**data, "pruning": pruning}

    @model_validator(mode="after")
    def _cross_section(self) -> Self:
        if self.objective.mode == "pareto" and self.pruning.budget.name != "none":
            raise ValueError(
                f"pruning.budget: {self.pruning.budget.name} ranks trials on val_loss alone and "
                "cannot run with "
                "objective.mode 'pareto' (it would cut the low-gap end of the front); use "
                "{name: none} (a preset brings no budget rule in pareto mode)"
            )
        if self.objective.mode == "pareto" and self.pruning.scheduler.name == "asha":
            raise ValueError(
                "pruning.scheduler: ASHA ranks trials on one metric and cannot run with "
                "objective.mode 'pareto'; use {name: none} or another objective mode"
            )
        if self.study.sampler == "nsga2" and self.objective.mode != "pareto":
            raise ValueError(
                "study.sampler: nsga2 is a multi-objective sampler; use it with "
                "objective.mode 'pareto'"
            )
        replicas = int(self.resources.gpus_per_trial)
        if replicas >= 2 and self.train.batch_size % replicas:
            raise ValueError(
                f"train.batch_size: {self.train.batch_size} does not split evenly over the "
                f"{replicas} GPUs of resources.gpus_per_trial (data-parallel training); use a "
                f"multiple of {replicas}"
            )
        pinned_head = (self.search.baseline or {}).get("head_epochs", 0)
        if pinned_head > self.train.max_epochs:
            raise ValueError(
                f"search.baseline: head_epochs must be at most train.max_epochs "
                f"({self.train.max_epochs}), got {pinned_head:g}"
            )
        if self.model.scheme == "tfhub" and isinstance(self.search.frozen_layers, IntRange):
            raise ValueError(
                "search.frozen_layers: a TF-Hub module is frozen all or nothing; "
                "use frozen_fraction fixed at 0 or 1 (or a fixed frozen_layers)"
            )
        return self


def _which(value: Any, end: float) -> str:
    """``"high: "`` or ``"low: "`` for a range end, nothing for a fixed value."""
    if isinstance(value, FloatRange | IntRange):
        return "high: " if end == value.high and end != value.low else "low: "
    return ""
