"""``opscm serve`` options from ``OPSCM_<OPTION>`` variables: derived from the argparse
definitions, the command line wins, a bad value gets the command line's own error."""

import contextlib
import io
import subprocess
import sys
from pathlib import Path

import pytest

from opscm.cli import _parsers, parse_args
from opscm.cli_env import environment_options

README = Path(__file__).resolve().parents[2] / "README.md"


def _serve(argv=(), **environ):
    return parse_args(["serve", *argv], environ)


def _refusal(argv=(), **environ) -> str:
    """What the parser says on stderr when it refuses (exit status 2)."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), pytest.raises(SystemExit) as stop:
        _serve(argv, **environ)
    assert stop.value.code == 2
    return stderr.getvalue()


def test_every_option_has_its_variable():
    _, serve = _parsers()
    names = {name for _, name in environment_options(serve)}
    assert {"OPSCM_PORT", "OPSCM_DATA_DIR", "OPSCM_TLS_SELF_SIGNED", "OPSCM_DATABASE_URL", "OPSCM_METRICS_PORT"} <= names
    assert len(names) == len([a for a in serve._actions if a.option_strings and a.dest != "help"])


def test_values_come_from_the_environment_converted_as_on_the_command_line():
    args = _serve(OPSCM_PORT="4600", OPSCM_DATA_DIR="/srv/opscm", OPSCM_THROTTLE_RATE="2.5", OPSCM_REGIONS="eu-west-1")
    assert args.port == 4600 and args.data_dir == Path("/srv/opscm")
    assert args.throttle_rate == 2.5 and args.regions == ("eu-west-1",)
    assert _serve().port == 4580, "no variable: the default"


def test_the_command_line_wins():
    assert _serve(["--port", "4601"], OPSCM_PORT="4600").port == 4601
    assert _serve(["--port=4601"], OPSCM_PORT="4600").port == 4601
    assert _serve(["--po", "4601"], OPSCM_PORT="4600").port == 4601, "an abbreviation counts as given"
    # A rival of an exclusive group given on the command line wins over the environment's.
    args = _serve(["--tls-cert", "c.pem", "--tls-key", "k.pem"], OPSCM_TLS_SELF_SIGNED="1")
    assert args.tls_cert == Path("c.pem") and not args.tls_self_signed


@pytest.mark.parametrize("value, wanted", [("1", True), ("true", True), ("YES", True), ("on", True),
                                           ("0", False), ("false", False), ("no", False), ("off", False), ("", False)])
def test_flags(value, wanted):
    assert _serve(OPSCM_TLS_SELF_SIGNED=value).tls_self_signed is wanted


def test_a_flag_with_another_word_is_refused():
    assert "argument --tls-self-signed: invalid value of OPSCM_TLS_SELF_SIGNED: 'maybe' (use 1 or 0)" in _refusal(
        OPSCM_TLS_SELF_SIGNED="maybe"
    )


@pytest.mark.parametrize("option, value", [("--port", "abc"), ("--log-level", "loud"), ("--workers", "0"),
                                           ("--metrics", "maybe"), ("--metrics-port", "70000"), ("--regions", "not a region")])
def test_a_bad_value_gets_the_command_lines_error(option, value):
    from_environment = _refusal(**{"OPSCM_" + option[2:].upper().replace("-", "_"): value})
    assert from_environment == _refusal([option, value])
    assert f"argument {option}: " in from_environment


def test_exclusive_options_both_from_the_environment_are_refused_as_on_the_command_line():
    message = _refusal(OPSCM_TLS_SELF_SIGNED="1", OPSCM_TLS_CERT="c.pem")
    assert "not allowed with argument" in message
    assert "not allowed with argument" in _refusal(["--tls-self-signed", "--tls-cert", "c.pem"])


def test_a_real_opscm_serve_refuses_a_bad_variable_as_it_refuses_the_option(tmp_path):
    def run(*argv, **environ):
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path), **environ}
        return subprocess.run([sys.executable, "-m", "opscm", "serve", "--data-dir", str(tmp_path), *argv],
                              capture_output=True, text=True, env=env, timeout=60)

    by_variable, by_option = run(OPSCM_PORT="eighty"), run("--port", "eighty")
    assert by_variable.returncode == by_option.returncode == 2
    assert by_variable.stderr == by_option.stderr
    assert "argument --port: invalid int value: 'eighty'" in by_variable.stderr


def test_the_readme_options_table_names_every_variable():
    text = README.read_text()
    table = text[text.index("## `opscm serve` options"):]
    rows = table[: table.index("\n\n", table.index("| option"))].splitlines()
    _, serve = _parsers()
    for action, name in environment_options(serve):
        option = next(o for o in action.option_strings if o.startswith("--"))
        assert any(f"`{option}" in row and f"`{name}`" in row for row in rows), f"{option} / {name} not in the README table"
