"""The families of line features a user can switch, in one registry.

Each ``Family`` is one setting of ``features.Featurizer`` with its default, its
choices (a switch when there are none), the help of its command-line option,
and the runs it adds to ``crossval --ablation``. The CLI options, the
featurizer's saved config and the ablation are all made from ``FAMILIES``, so
a new family is a setting of the featurizer and one entry here.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

__all__ = ["Family", "FAMILIES", "add_family_options", "family_settings", "default_settings", "ablation"]


@dataclass(frozen=True)
class Family:
    """One switchable family: ``setting`` (the ``Featurizer`` keyword, and the option
    ``--setting``), its ``default``, its ``choices`` (``()``: an on/off switch), the option's
    ``help``, and ``ablation``: ``(title, value)`` runs of ``crossval --ablation``."""

    setting: str
    default: Any
    choices: tuple[str, ...]
    help: str
    ablation: tuple[tuple[str, Any], ...]


FAMILIES: tuple[Family, ...] = (
    Family("behaviour", False, (), "add the context tokens: client windows, site-relative evidence, referrer class "
           "(half the classify throughput, little gain on the shared sample: see docs/weblogs.md)",
           (("with context (client windows, site evidence, referrer class)", True),)),
    Family("agent", "class", ("class", "tokens", "off"), "the user agent as a class (browser, crawler, script, attack "
           "tool, ...), plus exact product/version tokens (learns the sample's browsers), or not at all",
           (("without the user-agent class", "off"),
            ("with exact user-agent tokens (the sample's browsers)", "tokens"))),
    Family("paths", False, (), "add exact path tokens (site vocabulary) to the path shape",
           (("with exact path tokens (the site's vocabulary)", True),)),
    Family("client", "default", ("default", "site", "paper", "all"), "what the client model reads: every group but "
           "the pace of all requests and the site-relative think time (default), those groups and the site-relative "
           "think time, the Web Bot paper's session features only, or everything",
           (("client model with the site-relative think time", "site"),
            ("client model on the paper's session features", "paper"),
            ("client model with the pace of all requests (rate, rhythm, same-second share)", "all"))),
)  # fmt: skip


def add_family_options(parser: argparse.ArgumentParser) -> None:
    """One option per family: ``--setting CHOICE`` or the switch ``--setting``."""
    for family in FAMILIES:
        name = "--" + family.setting.replace("_", "-")
        if family.choices:
            parser.add_argument(name, choices=family.choices, default=family.default, help=family.help)
        else:
            parser.add_argument(name, action="store_true", default=family.default, help=family.help)
    parser.add_argument("--no-user-agent", action="store_true", help="the same as --agent off")


def family_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The families' settings from parsed options (``--no-user-agent`` is ``--agent off``)."""
    settings = {family.setting: getattr(args, family.setting) for family in FAMILIES}
    if getattr(args, "no_user_agent", False):
        settings["agent"] = "off"
    return settings


def default_settings() -> dict[str, Any]:
    return {family.setting: family.default for family in FAMILIES}


def ablation(base: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(title, settings)`` of every ablation run: ``base`` with one family changed."""
    return [(title, {**base, family.setting: value}) for family in FAMILIES for title, value in family.ablation]
