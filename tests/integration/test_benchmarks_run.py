"""Every benchmark script still runs (at a tiny size): they import the test helpers and each
other, and a change there once broke benchmarks/windows.py unnoticed. Figures are not checked:
the scripts print them, they assert nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.requirements import require

ROOT = Path(__file__).resolve().parents[2]

RUNS = {
    "boot_storm": (["--nodes", "6", "--clients", "1,2", "--ca-key-bits", "2048", "--client-processes", "1"], "assoc/s="),
    "boot_storm replicas": (
        ["--nodes", "6", "--clients", "2", "--engines", "ChefAutomate", "--stores", "postgresql", "--workers", "1",
         "--replicas", "1,2", "--rounds", "2", "--client-processes", "1"],
        "2 replicas against 1: median",
    ),
    "windows": (["--nodes", "6", "--ca-key-bits", "2048"], "start to ready"),
    "mock_overhead": (["--calls", "5", "--rounds", "1"], "mock adds"),
    "mock_instructions": (["--calls", "2", "--warmup", "2"], "mock adds"),
    "associate": (["--nodes", "4", "--threads", "2", "--ca-key-bits", "2048"], "Chef AssociateNode"),
    "console_page": (["--nodes", "20", "--rounds", "1"], "median"),
}


@pytest.mark.parametrize("script", sorted(RUNS))
def test_a_benchmark_script_runs_and_prints_its_figures(script):
    arguments, expected = RUNS[script]
    if script == "mock_instructions":
        require(shutil.which("valgrind") and shutil.which("callgrind_control"), "valgrind (Debian's package)")
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{script.split()[0]}.py"), *arguments],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert expected in run.stdout and run.stdout.strip(), run.stdout[-3000:]
