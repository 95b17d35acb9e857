"""From a config dataclass to command-line options and back: typed options, choices, nesting, --set."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

import pytest

from handmesh.config import (
    add_bool_option,
    add_config_options,
    add_overrides_option,
    apply_overrides,
    config_from_args,
    option,
    options_given,
    split_overrides,
)
from handmesh.errors import HandmeshError


@dataclass
class Inner:
    beta: float = 20.0
    enabled: bool = True


@dataclass
class Outer:
    mode: str = field(default="auto", metadata=option("how to run", choices=("auto", "on", "off")))
    count: int = field(default=3, metadata=option("how many"))
    scale: float | None = None
    colors: tuple[float, ...] = (1.0, 0.5)
    inner: Inner = field(default_factory=Inner)


def _parser(base=Outer, **kwargs) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="t")
    add_config_options(parser, base, **kwargs)
    add_overrides_option(parser, "any field")
    return parser


def test_options_are_typed_and_read_back_onto_the_base():
    args = _parser().parse_args(
        ["--count", "7", "--scale", "none", "--colors", "0.1,0.2,0.3", "--inner-beta", "2.5", "--mode", "on"]
    )
    cfg = config_from_args(Outer(count=1, inner=Inner(enabled=False)), args)
    assert cfg == Outer(mode="on", count=7, scale=None, colors=(0.1, 0.2, 0.3), inner=Inner(2.5, False))
    # options not given keep the base's values, and are not reported as given
    assert config_from_args(Outer(count=9), _parser().parse_args([])) == Outer(count=9)
    assert set(options_given(args)) == {"count", "scale", "colors", "inner.beta", "mode"}


def test_help_shows_typed_metavars_choices_help_text_and_the_base_defaults():
    text = _parser(Outer(count=5)).format_help()
    assert "--count INT" in text and "how many (default: 5)" in text
    assert "--mode {auto,on,off}" in text and "how to run" in text
    assert "--scale FLOAT|none" in text and "--colors FLOAT,..." in text
    assert "--inner-enabled, --no-inner-enabled" in text and "--inner-beta FLOAT" in text
    assert "(default: yes)" in text


def test_yes_no_options_are_switches_that_never_take_the_next_word():
    """One grammar for every yes/no option: `--name` / `--no-name`; a positional after it stays one."""
    parser = _parser()
    parser.add_argument("path")
    add_bool_option(parser, "--keep", "keep them")
    args = parser.parse_args(["--no-inner-enabled", "--keep", "data/x"])
    assert args.path == "data/x" and args.keep is True
    assert config_from_args(Outer(), args).inner.enabled is False
    args = parser.parse_args(["--inner-enabled", "p"])
    assert config_from_args(Outer(inner=Inner(enabled=False)), args).inner.enabled is True
    assert parser.parse_args(["p"]).keep is False
    assert "inner.enabled" not in options_given(parser.parse_args(["p"]))  # absent unless given


def test_an_inline_nested_config_keeps_its_own_option_names():
    @dataclass
    class Server:
        port: int = 1
        inner: Inner = field(default_factory=Inner, metadata=option("the inner part", inline=True))

    parser = _parser(Server)
    cfg = config_from_args(Server(), parser.parse_args(["--beta", "4", "--no-enabled", "--port", "2"]))
    assert cfg == Server(port=2, inner=Inner(beta=4.0, enabled=False))
    assert "--inner-beta" not in parser.format_help()


@pytest.mark.parametrize(
    "argv",
    [
        ["--count", "x"],
        ["--mode", "sideways"],
        ["--inner-enabled=maybe"],
        ["--no-inner-enabled=1"],
        ["--scale", "1,2"],
    ],
)
def test_bad_values_are_refused_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert argv[0].split("=")[0] in capsys.readouterr().err


def test_only_and_skip_choose_the_options():
    text = _parser(only=("count",)).format_help()
    assert "--count" in text and "--mode" not in text and "--inner-beta" not in text
    text = _parser(skip=("inner", "mode")).format_help()
    assert "--count" in text and "--mode" not in text and "--inner-beta" not in text


def test_set_overrides_reach_nested_fields_and_refuse_unknown_ones():
    cfg = apply_overrides(Outer(), ["count=4", "inner.enabled=false", "inner.beta=1e-3", "count=5"])
    assert cfg == dataclasses.replace(Outer(), count=5, inner=Inner(beta=1e-3, enabled=False))
    for bad in ("nope=1", "inner.nope=1", "inner=1", "count"):
        with pytest.raises(HandmeshError):
            apply_overrides(Outer(), [bad])
    with pytest.raises(HandmeshError, match="count=x"):
        apply_overrides(Outer(), ["count=x"])


def test_split_overrides_routes_each_field_to_its_config():
    outer, inner = split_overrides(["count=1", "beta=2", "inner.beta=3"], Outer, Inner)
    assert outer == ["count=1", "inner.beta=3"] and inner == ["beta=2"]
    with pytest.raises(HandmeshError, match="Outer or Inner"):
        split_overrides(["missing=1"], Outer, Inner)
