"""Typed configuration helpers: one dataclass per concern, saved to and rebuilt from plain dicts."""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass as a JSON-safe dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_dict(cls: type[T], data: dict[str, Any], strict: bool = True) -> T:
    """Rebuild dataclass `cls` from a dict; unknown keys are an error when `strict`."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown and strict:
        raise ValueError(f"{cls.__name__}: unknown field(s) {sorted(unknown)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            continue
        if isinstance(value, list) and typing.get_origin(hints[key]) is tuple:
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def save_json(cfg: Any, path: str | Path) -> None:
    """Write a dataclass config as indented JSON."""
    Path(path).write_text(json.dumps(to_dict(cfg), indent=2) + "\n")


def _parse_value(text: str, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if text.lower() in ("none", "null") and type(None) in typing.get_args(hint):
        return None
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        hint = args[0]
        origin = typing.get_origin(hint)
    if hint is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"not a boolean: {text!r}")
    if origin is tuple or origin is list:
        inner = typing.get_args(hint)[0] if typing.get_args(hint) else str
        items = [_parse_value(t, inner) for t in text.split(",") if t != ""]
        return tuple(items) if origin is tuple else items
    if hint in (int, float, str):
        return hint(text)
    return json.loads(text)


def apply_overrides(cfg: T, overrides: list[str]) -> T:
    """Return a copy of `cfg` with `field=value` overrides applied (types follow the field's hint)."""
    hints = typing.get_type_hints(type(cfg))
    changes = {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form field=value")
        key, text = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if key not in hints:
            raise ValueError(f"{type(cfg).__name__} has no field {key!r}")
        changes[key] = _parse_value(text, hints[key])
    return dataclasses.replace(cfg, **changes)


def add_overrides_option(parser: argparse.ArgumentParser, help: str) -> None:
    """Add the repeatable `--set FIELD=VALUE` option (read back as `args.overrides`, see `apply_overrides`)."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE", help=help
    )


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    """Add `--field-name VALUE` options for every field of `cls` (default None = keep the config's)."""
    for f in dataclasses.fields(cls):
        flag = "--" + prefix + f.name.replace("_", "-")
        parser.add_argument(
            flag,
            dest=prefix.replace("-", "_") + f.name,
            default=None,
            metavar="V",
            help=f"{cls.__name__}.{f.name} (default {f.default!r})"
            if f.default is not dataclasses.MISSING
            else None,
        )


def dataclass_from_args(cfg: T, args: argparse.Namespace, prefix: str = "") -> T:
    """Apply the options added by `add_dataclass_args` that the user set."""
    overrides = []
    for f in dataclasses.fields(type(cfg)):
        value = getattr(args, prefix.replace("-", "_") + f.name, None)
        if value is not None:
            overrides.append(f"{f.name}={value}")
    return apply_overrides(cfg, overrides)
