"""The systemd unit of the README: the same as contrib/systemd/opscm.service, every OPSCM_*
setting in it a valid serve option, and the unit accepted by ``systemd-analyze verify``."""

import shutil
import subprocess
import sys
from pathlib import Path

from opscm.cli import parse_args
from tests.support.requirements import require

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "contrib" / "systemd" / "opscm.service"


def _environment(unit: str) -> dict[str, str]:
    pairs = [line.removeprefix("Environment=").split("=", 1) for line in unit.splitlines() if line.startswith("Environment=")]
    return dict(pairs)


def test_the_readme_shows_the_unit_as_shipped():
    assert f"```ini\n{UNIT.read_text()}```" in (ROOT / "README.md").read_text()


def test_the_units_settings_are_serve_options():
    environment = _environment(UNIT.read_text())
    args = parse_args(["serve"], environment)
    assert args.data_dir == Path("/var/lib/opscm") and args.tls_self_signed and args.log_format == "json"
    assert "ExecStart=/opt/opscm/bin/opscm serve\n" in UNIT.read_text()


def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    require(analyze, "systemd-analyze (Debian package systemd)")
    opscm = Path(sys.executable).with_name("opscm")
    command = str(opscm) if opscm.exists() else f"{sys.executable} -m opscm"
    unit = tmp_path / "opscm.service"  # verify wants ExecStart's program to exist here
    unit.write_text(UNIT.read_text().replace("/opt/opscm/bin/opscm", command))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
