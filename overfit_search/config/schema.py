"""Pydantic models of the sweep file, one per YAML section (DESIGN.md §3)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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


# The train settings a sweep may search (TrainConfig.knobs) and a baseline may pin.
TRAIN_KNOBS: tuple[str, ...] = ("head_epochs", "finetune_lr_factor")


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
    head_epochs: IntKnob = 0
    finetune_lr_factor: FloatKnob = 0.1
    # Batches per compiled call (Keras's compile(steps_per_execution=...)): fewer round trips
    # between Python and the graph, which dominate small models on CPUs; same updates as 1.
    # Batch-level callbacks (the stop and timeout checks) then run once per N batches.
    steps_per_execution: Annotated[int, Field(ge=1)] = 8

    @field_validator("head_epochs")
    @classmethod
    def _head_epochs_bounds(cls, value: IntKnob) -> IntKnob:
        low = value.low if isinstance(value, IntRange) else value
        if low < 0:
            raise ValueError(f"{_which(value, low)}must be >= 0, got {low}")
        return value

    @field_validator("finetune_lr_factor")
    @classmethod
    def _factor_bounds(cls, value: FloatKnob) -> FloatKnob:
        low = value.low if isinstance(value, FloatRange) else value
        if low <= 0:
            raise ValueError(f"{_which(value, low)}must be > 0, got {low:g}")
        return value

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


# Valid bounds of each knob, checked for fixed values and for both ends of a range.
KNOB_BOUNDS: dict[str, tuple[float, float]] = {
    "dropout": (0.0, 0.99),
    "l2": (0.0, 1.0),
    "learning_rate": (1e-12, 10.0),
    "augmentation": (0.0, 1.0),
    "frozen_fraction": (0.0, 1.0),
    "frozen_layers": (0, 100_000),
}
KNOBS: tuple[str, ...] = tuple(KNOB_BOUNDS)


def _check_bounds(name: str, value: Any) -> Any:
    lo, hi = KNOB_BOUNDS[name]
    ends = [value.low, value.high] if isinstance(value, FloatRange | IntRange) else [value]
    for end in ends:
        if end is None:
            continue
        if end < lo:
            raise ValueError(f"{_which(value, end)}must be >= {lo:g}, got {end:g}")
        if end > hi:
            raise ValueError(f"{_which(value, end)}must be <= {hi:g}, got {end:g}")
    return value


class SearchConfig(_Section):
    """The five knobs, each fixed or a range, and an optional baseline trial.

    ``baseline`` (the user's current setup, run first) pins knobs by name: the active search
    knobs and the two-phase train settings (``TRAIN_KNOBS``), so a one-phase setup can be
    the baseline of a two-phase sweep (``head_epochs: 0``). Knobs it leaves out are sampled.
    """

    dropout: FloatKnob = Field(default_factory=lambda: FloatRange(low=0.0, high=0.7))
    l2: FloatKnob = Field(default_factory=lambda: FloatRange(low=1e-6, high=1e-2, log=True))
    learning_rate: FloatKnob = Field(
        default_factory=lambda: FloatRange(low=1e-5, high=1e-2, log=True)
    )
    augmentation: FloatKnob = Field(default_factory=lambda: FloatRange(low=0.0, high=1.0))
    frozen_fraction: FloatKnob | None = None
    frozen_layers: IntKnob | None = None
    baseline: dict[str, float] | None = None

    @field_validator("dropout", "l2", "learning_rate", "augmentation", "frozen_fraction")
    @classmethod
    def _float_bounds(cls, value: Any, info: Any) -> Any:
        return None if value is None else _check_bounds(info.field_name, value)

    @field_validator("frozen_layers")
    @classmethod
    def _int_bounds(cls, value: Any) -> Any:
        return None if value is None else _check_bounds("frozen_layers", value)

    @model_validator(mode="after")
    def _one_freezing_knob(self) -> Self:
        if self.frozen_fraction is not None and self.frozen_layers is not None:
            raise ValueError("give frozen_fraction or frozen_layers, not both")
        if self.frozen_fraction is None and self.frozen_layers is None:
            object.__setattr__(self, "frozen_fraction", FloatRange(low=0.5, high=1.0))
        if self.baseline is not None:
            allowed = {*self.active_knobs(), *TRAIN_KNOBS}
            unknown = sorted(set(self.baseline) - allowed)
            if unknown:
                raise ValueError(
                    f"baseline: unknown knob(s) {', '.join(unknown)}; "
                    f"choose from {', '.join(sorted(allowed))}"
                )
            for key, val in self.baseline.items():
                if key == "head_epochs" and (val < 0 or val != int(val)):
                    raise ValueError(
                        f"baseline: head_epochs must be a whole number >= 0, got {val:g}"
                    )
                if key == "finetune_lr_factor" and val <= 0:
                    raise ValueError(f"baseline: finetune_lr_factor must be > 0, got {val:g}")
                if key not in TRAIN_KNOBS:
                    _check_bounds(key, val)
        return self

    def active_knobs(self) -> tuple[str, ...]:
        """The knob names this search uses (one of the two freezing knobs)."""
        freeze = "frozen_layers" if self.frozen_layers is not None else "frozen_fraction"
        return ("dropout", "l2", "learning_rate", "augmentation", freeze)


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


class NoBudgetConfig(_Section):
    name: Literal["none"] = "none"


BudgetConfig = Annotated[HalvingBudgetConfig | NoBudgetConfig, Field(discriminator="name")]

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

    ``preset`` (``safe`` | ``balanced`` | ``fast``) fills ``rule`` and ``budget`` with that
    level's settings (overfit_search/pruning/presets.py), except a part given explicitly. With
    no ``preset``, ``rule`` or ``budget`` at all, :data:`DEFAULT_PRESET` applies; a section that
    names only a ``rule`` gets that rule and no budget rule, as before presets existed.
    """

    preset: Literal["safe", "balanced", "fast"] | None = None
    rule: RuleConfig = Field(default_factory=GLRuleConfig)
    budget: BudgetConfig = Field(default_factory=NoBudgetConfig)
    grace_epochs: Annotated[int, Field(ge=0)] = 2
    compare: Literal["median", "none"] = "median"
    compare_min_trials: Annotated[int, Field(ge=0)] = 4
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
            for part in ("rule", "budget"):
                if part not in data:
                    data[part] = dict(PRESETS[name][part])
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
        if self.objective.mode == "pareto" and self.pruning.budget.name == "halving":
            raise ValueError(
                "pruning.budget: halving ranks trials on val_loss alone and cannot run with "
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
