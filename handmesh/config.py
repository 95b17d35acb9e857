"""Typed configuration helpers: one dataclass per concern, saved to and rebuilt from plain dicts."""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from typing import Any, TypeVar

from handmesh.errors import HandmeshError

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


def _hint_of(cls: type, path: str) -> Any:
    """The type hint of a dotted field path ("smoothing.beta") of dataclass `cls`, or None if it has none."""
    head, _, rest = path.partition(".")
    hint = typing.get_type_hints(cls).get(head)
    if rest:
        return _hint_of(hint, rest) if dataclasses.is_dataclass(hint) else None
    return hint


def _split_override(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise HandmeshError(f"override {item!r} is not of the form field=value")
    key, text = item.split("=", 1)
    return key.strip().replace("-", "_"), text


def apply_overrides(cfg: T, overrides: list[str]) -> T:
    """Return a copy of `cfg` with `field=value` overrides applied (types follow the field's hint; a nested
    config's field is `outer.field=value`)."""
    values = {}
    for item in overrides:
        key, text = _split_override(item)
        hint = _hint_of(type(cfg), key)
        if hint is None or dataclasses.is_dataclass(hint):
            raise HandmeshError(f"{type(cfg).__name__} has no field {key!r}")
        try:
            values[key] = _parse_value(text, hint)
        except ValueError as exc:  # int("x"), float("x"), bad JSON, not a boolean
            raise HandmeshError(f"override {item!r}: {exc}") from None
    return replace_paths(cfg, values)


def split_overrides(overrides: list[str], *classes: type) -> list[list[str]]:
    """Route each `field=value` to the first of several config classes that has the field (one list per
    class, in order); a field none of them has is an error naming them all."""
    routed: list[list[str]] = [[] for _ in classes]
    for item in overrides:
        key, _ = _split_override(item)
        owner = next((i for i, cls in enumerate(classes) if _hint_of(cls, key) is not None), None)
        if owner is None:
            names = " or ".join(cls.__name__ for cls in classes)
            raise HandmeshError(f"--set {item}: no {names} field named {key!r}")
        routed[owner].append(item)
    return routed


def add_overrides_option(parser: argparse.ArgumentParser, help: str) -> None:
    """Add the repeatable `--set FIELD=VALUE` option (read back as `args.overrides`, see `apply_overrides`)."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE", help=help
    )


def option(
    help: str,
    choices: typing.Sequence[Any] | None = None,
    metavar: str | None = None,
    inline: bool = False,
    bounds: tuple[float, float] | None = None,
) -> dict:
    """Field metadata for `add_config_options`: `field(default=..., metadata=option("help", choices=...))`;
    `inline` (a nested config): its options keep their own names, without the outer field's; `bounds`
    (low, high) makes the option refuse numbers (each item of a tuple) outside them, and NaN."""
    meta: dict[str, Any] = {"help": help, "inline": inline}
    if choices is not None:
        meta["choices"] = tuple(choices)
    if metavar is not None:
        meta["metavar"] = metavar
    if bounds is not None:
        meta["bounds"] = (float(bounds[0]), float(bounds[1]))
    return meta


def check_bounds(value: Any, bounds: tuple[float, float] | None) -> None:
    """ValueError unless `value` (a number, or a tuple/list of them) is within `bounds`; NaN never is."""
    if bounds is None or value is None:
        return
    low, high = bounds
    for item in value if isinstance(value, tuple | list) else (value,):
        if isinstance(item, bool) or not isinstance(item, int | float) or not low <= item <= high:
            raise ValueError(f"must be between {low:g} and {high:g}, got {item!r}")


def _metavar(hint: Any) -> str:
    """A typed placeholder for the option's value: INT, FLOAT, TEXT, BOOL, FLOAT,... and |none if optional."""
    inner = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = len(inner) < len(typing.get_args(hint))
    if optional:
        hint = inner[0]
    if typing.get_origin(hint) in (tuple, list):
        item = typing.get_args(hint)[0] if typing.get_args(hint) else str
        name = _metavar(item) + ",..."
    else:
        name = {int: "INT", float: "FLOAT", bool: "BOOL", str: "TEXT"}.get(hint, "JSON")
    return name + "|none" if optional else name


def _converter(hint: Any, flag: str, bounds: tuple[float, float] | None = None) -> Any:
    """An argparse `type=` callable that parses text by the field's type hint (and checks its bounds)."""

    def convert(text: str) -> Any:
        try:
            value = _parse_value(text, hint)
            check_bounds(value, bounds)
            return value
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{flag}: {exc}") from None

    convert.__name__ = _metavar(hint).lower()  # argparse names the type in "invalid ... value" messages
    return convert


def _config_fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)]


def add_config_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    base: Any,
    only: typing.Iterable[str] | None = None,
    skip: typing.Iterable[str] = (),
    prefix: str = "",
    flag_prefix: str | None = None,
) -> None:
    """Add one `--field-name VALUE` option per field of the dataclass `base` (a class or an instance whose
    values are the shown defaults), typed by the field's hint, with the help text and choices of its
    `option(...)` metadata; a yes/no field follows `add_bool_option`'s grammar. A nested dataclass field
    adds `--outer-inner` options, or plain `--inner` ones when its metadata says `option(..., inline=True)`.
    Read them back with `config_from_args`; options the user does not give are absent from the namespace."""
    flag_prefix = prefix if flag_prefix is None else flag_prefix
    defaults = base if not isinstance(base, type) else None
    cls = type(base) if defaults is not None else base
    wanted = None if only is None else set(only)
    for f, hint in _config_fields(cls):
        if (wanted is not None and f.name not in wanted) or f.name in skip:
            continue
        path = prefix + f.name
        default = getattr(defaults, f.name) if defaults is not None else _field_default(f)
        if dataclasses.is_dataclass(hint):
            inner_flags = flag_prefix if f.metadata.get("inline") else flag_prefix + f.name + "."
            add_config_options(
                parser, default if default is not None else hint, prefix=path + ".", flag_prefix=inner_flags
            )
            continue
        flag = "--" + (flag_prefix + f.name).replace(".", "-").replace("_", "-")
        meta = f.metadata
        text = meta.get("help") or f"{cls.__name__}.{path}"
        if hint is bool:
            add_bool_option(parser, flag, text, default, dest=_DEST + path)
            continue
        choices = meta.get("choices")
        shown = "" if default is dataclasses.MISSING else f" (default: {default!r})"
        parser.add_argument(
            flag,
            dest=_DEST + path,
            type=_converter(hint, flag, meta.get("bounds")),
            choices=choices,
            metavar=meta.get("metavar") or (None if choices else _metavar(hint)),
            default=argparse.SUPPRESS,
            help=text + shown,
        )


def add_command(
    subparsers: argparse._SubParsersAction, name: str, module: Any, help: str
) -> argparse.ArgumentParser:
    """Subcommand `name` from its command module: the options (`module.add_arguments(parser)`), the
    description (`module.DESCRIPTION`, else its docstring; line breaks kept) and what runs (`module.run`,
    unless `add_arguments` set a function itself: a command made of actions, like `handmesh bench`)."""
    description = getattr(module, "DESCRIPTION", None) or module.__doc__
    parser = subparsers.add_parser(
        name, help=help, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    module.add_arguments(parser)
    if parser.get_default("func") is None:
        parser.set_defaults(func=module.run)
    return parser


def add_bool_option(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    flag: str,
    help: str,
    default: Any = False,
    dest: str | None = None,
) -> None:
    """The one grammar of a yes/no option: `--flag` sets it, `--no-flag` clears it (no value follows, so a
    positional argument after it is never taken for one). `dest` defaults to the flag's name; a config
    option (see `add_config_options`) stays absent from the namespace unless given."""
    dest = dest or flag.lstrip("-").replace("-", "_")
    absent = argparse.SUPPRESS if dest.startswith(_DEST) else default
    shown = "" if default is dataclasses.MISSING else f" (default: {'yes' if default else 'no'})"
    parser.add_argument(
        flag, dest=dest, action=argparse.BooleanOptionalAction, default=absent, help=help + shown
    )


# options added by add_config_options live under this prefix in the namespace, so that they never clash
# with a subcommand's own options and `config_from_args` knows them apart
_DEST = "config."


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def options_given(args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    """The config options the user gave on the command line: dotted field path -> parsed value."""
    start = _DEST + prefix
    return {key[len(_DEST) :]: value for key, value in vars(args).items() if key.startswith(start)}


def config_from_args(base: T, args: argparse.Namespace, only: typing.Iterable[str] | None = None) -> T:
    """`base` with the values of the options `add_config_options` added and the user gave (nested too)."""
    wanted = None if only is None else set(only)
    given = {
        path: value
        for path, value in options_given(args).items()
        if wanted is None or path.split(".")[0] in wanted
    }
    return replace_paths(base, given, strict=False)


def replace_paths(cfg: T, values: dict[str, Any], strict: bool = True) -> T:
    """Copy of `cfg` with fields set by name or dotted path ("smoothing.beta" sets a nested config's field);
    an unknown name is an error when `strict`, else skipped."""
    names = {f.name for f in dataclasses.fields(cfg)}
    direct: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for path, value in values.items():
        head, _, rest = path.partition(".")
        if head not in names:
            if strict:
                raise HandmeshError(f"{type(cfg).__name__} has no field {head!r}")
            continue
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[head] = value
    for head, inner in nested.items():
        direct[head] = replace_paths(direct.get(head, getattr(cfg, head)), inner, strict)
    return dataclasses.replace(cfg, **direct) if direct else cfg
