"""``OPSCM_<OPTION>`` environment variables for a command's options, derived from its argparse
definitions: one rule for every option (``--data-dir`` is ``OPSCM_DATA_DIR``), so a new option
needs nothing here.

The environment stands for options the command line does not give, and a value from it is
parsed as if it had been typed (``--port=abc``): a bad one gets the command line's own error.
A flag (``--tls-self-signed``) is set by ``1``/``true``/``yes``/``on`` and left off by
``0``/``false``/``no``/``off`` or an empty value.

Argparse keeps its options and exclusive groups in attributes without a public accessor
(``_actions``, ``_mutually_exclusive_groups``); they have not changed in many Python versions.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence

PREFIX = "OPSCM_"
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("", "0", "false", "no", "off")

_NOT_GIVEN = object()


def variable_name(action: argparse.Action, prefix: str = PREFIX) -> str | None:
    """``OPSCM_DATA_DIR`` for ``--data-dir``; None for an option without a long name."""
    option = _long_option(action)
    return prefix + option[2:].upper().replace("-", "_") if option else None


def environment_options(parser: argparse.ArgumentParser) -> list[tuple[argparse.Action, str]]:
    """Every option of ``parser`` the environment may give, with its variable's name."""
    found = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        name = variable_name(action)
        if name is not None:
            found.append((action, name))
    return found


def with_environment(parser: argparse.ArgumentParser, argv: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """``argv`` preceded by the options that ``environ`` gives and ``argv`` does not."""
    given = _given(parser, argv)
    added: list[str] = []
    for action, name in environment_options(parser):
        if name not in environ or action.dest in given or _rival_given(parser, action, given):
            continue
        option, value = _long_option(action), environ[name]
        if action.nargs != 0:
            added.append(f"{option}={value}")  # "=": a value may begin with "-"
        elif value.strip().lower() in TRUE_WORDS:
            added.append(option)
        elif value.strip().lower() not in FALSE_WORDS:
            parser.error(f"argument {option}: invalid value of {name}: {value!r} (use 1 or 0)")
    return [*added, *argv]


def _long_option(action: argparse.Action) -> str | None:
    return next((option for option in action.option_strings if option.startswith("--")), None)


def _given(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The destinations the command line sets. Argparse fills in a default only where the
    namespace has no value yet, so what still holds the marker afterwards was not given."""
    probe = argparse.Namespace(**{action.dest: _NOT_GIVEN for action, _ in environment_options(parser)})
    parser.parse_known_args(list(argv), probe)
    return {dest for dest, value in vars(probe).items() if value is not _NOT_GIVEN}


def _rival_given(parser: argparse.ArgumentParser, action: argparse.Action, given: set[str]) -> bool:
    """Whether the command line gives another option of an exclusive group of ``action``'s (it wins)."""
    return any(
        action in group._group_actions and any(other.dest in given for other in group._group_actions if other is not action)
        for group in parser._mutually_exclusive_groups
    )
