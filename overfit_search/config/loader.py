"""Load and validate a sweep file, with one-line errors that name the setting."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from overfit_search.config.schema import Sweep
from overfit_search.errors import ConfigError

# Parts of a pydantic error location that name a union branch, not a setting.
_BRANCHES = {"float", "int", "str", "bool", "FloatRange", "IntRange", "dict[str,float]"}
_SCALAR_BRANCHES = {"float", "int", "str", "bool"}
_TAGGED = {"rule", "scheduler", "budget"}
_SHOW_INPUT = {
    "float_parsing",
    "int_parsing",
    "float_type",
    "int_type",
    "int_from_float",
    "bool_parsing",
    "string_type",
    "literal_error",
    "greater_than",
    "greater_than_equal",
    "less_than",
    "less_than_equal",
    "string_pattern_mismatch",
    "model_type",
    "dict_type",
    "list_type",
}


def load_sweep(path: str | Path, overrides: dict[str, Any] | None = None) -> Sweep:
    """Read, validate and resolve a sweep file.

    Args:
        path: The YAML file.
        overrides: Dotted settings applied over the file before validation,
            e.g. ``{"study.trials": 3}``.

    Returns:
        The validated sweep, with relative paths made absolute against the current directory.

    Raises:
        ConfigError: The file is missing, not YAML, or a setting is wrong; the message names
            the file and the dotted path of the setting.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such sweep file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        found = "an empty file" if raw is None else f"a {type(raw).__name__}"
        raise ConfigError(f"{path}: the sweep file must be a mapping of sections, found {found}")
    return sweep_from_dict(raw, source=str(path), overrides=overrides)


def sweep_from_dict(
    raw: dict[str, Any], source: str = "<sweep>", overrides: dict[str, Any] | None = None
) -> Sweep:
    """Validate a sweep given as a mapping (``source`` names it in errors)."""
    raw = _apply_overrides(raw, overrides or {})
    try:
        sweep = Sweep.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, raw)) from None
    return resolve_paths(sweep)


def resolve_paths(sweep: Sweep) -> Sweep:
    """Make the sweep's relative paths absolute against the current directory."""
    if sweep.data.dir is not None and not sweep.data.dir.is_absolute():
        sweep.data.dir = sweep.data.dir.resolve()
    backbone = sweep.model.backbone
    if sweep.model.scheme == "file":
        target, sep, layer = backbone[len("file:") :].partition("#")
        sweep.model.backbone = f"file:{Path(target).resolve()}{sep}{layer}"
    weights = sweep.model.weights
    if weights not in ("imagenet", "none") and not Path(weights).is_absolute():
        sweep.model.weights = str(Path(weights).resolve())
    return sweep


def _apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = _deep_copy(raw)
    for dotted, value in overrides.items():
        node = out
        *parents, leaf = dotted.split(".")
        for key in parents:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        node[leaf] = value
    return out


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _lookup(raw: Any, loc: tuple[Any, ...]) -> Any:
    node = raw
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_dict or in_list:
            node = node[part]
        else:
            return None
    return node


def _clean_loc(loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], str | None]:
    """Drop union-branch names from a location; return it and the branch taken, if any."""
    parts: list[Any] = []
    branch = None
    for i, part in enumerate(loc):
        text = str(part)
        if text in _BRANCHES or text.startswith(("function-", "constrained-")):
            branch = text
            continue
        if i > 0 and str(loc[i - 1]) in _TAGGED and isinstance(part, str):
            continue  # the discriminator's tag, e.g. pruning.rule.gl.alpha
        parts.append(part)
    return tuple(parts), branch


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the last key of ``loc`` (for did-you-mean)."""
    model: type[BaseModel] = Sweep
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        candidates = [field.annotation, *getattr(field.annotation, "__args__", ())]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model


def _shown_key(part: Any) -> str:
    """A key as written in the file, quoted when it is empty or holds odd characters."""
    text = str(part)
    if text and text.isprintable() and not any(c.isspace() or c in ".'\"" for c in text):
        return text
    return repr(text)


def format_validation_error(exc: ValidationError, source: str, raw: dict[str, Any]) -> str:
    """Turn pydantic's report into ``FILE: dotted.path: message``: the first problem, and a
    second line naming the other settings at fault, if any."""
    lines: list[str] = []
    where: list[str] = []
    for err in exc.errors():
        loc, branch = _clean_loc(tuple(err["loc"]))
        value = _lookup(raw, loc)
        if branch is not None:
            # A knob is a number or a range: report only the branch the input looks like.
            scalar_input = not isinstance(value, dict)
            if scalar_input != (branch in _SCALAR_BRANCHES) and value is not None:
                continue
        dotted = ".".join(_shown_key(p) for p in loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            model = _model_at(loc)
            names = list(model.model_fields) if model else []
            close = difflib.get_close_matches(str(loc[-1]), names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            valid = f" (valid: {', '.join(names)})" if names and not close else ""
            msg = f"unknown setting{hint}{valid}"
        elif err["type"] == "missing":
            msg = "required setting is missing"
        elif err["type"] in _SHOW_INPUT:
            msg = f"{msg}, got {err.get('input')!r}"
        head, sep, rest = msg.partition(": ")
        if sep and head.replace("_", "").replace(".", "").isalnum() and " " not in head:
            # a validator naming a sub-setting ("high: must be ...") or a whole path
            dotted = head if "." in head or not dotted else f"{dotted}.{head}"
            msg = rest
        line = f"{source}: {dotted}: {msg}" if dotted else f"{source}: {msg}"
        if line not in lines:
            lines.append(line)
            where.append(dotted or "(top level)")
    if not lines:  # every error was a discarded branch; fall back to the first
        first = exc.errors()[0]
        lines.append(f"{source}: {'.'.join(map(str, first['loc']))}: {first['msg']}")
    if len(lines) == 1:
        return lines[0]
    more = ", ".join(dict.fromkeys(where[1:]))
    return f"{lines[0]}\n  also wrong: {more}"
