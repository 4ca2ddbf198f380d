"""``opscm --version``: the version of the installed package's metadata."""

import importlib.metadata
import subprocess
import sys


def test_version_comes_from_the_package_metadata():
    result = subprocess.run([sys.executable, "-m", "opscm", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"opscm {importlib.metadata.version('opscm')}\n"
