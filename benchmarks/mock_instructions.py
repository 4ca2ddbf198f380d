"""The in-process mock's cost per call in instructions, which do not drift with the machine.

The calls of ``mock_overhead.py`` (the mock's describe_servers and Chef associate_node, and the
floor's: a before-send hook with a fixed answer), each counted by valgrind's callgrind in a
process of its own: after ``--warmup`` calls, callgrind counts ``--calls`` calls, then five
times as many in a second process; the difference over the calls between them is the figure
per call (what a process does once, at its start and its end, cancels out).

    .venv/bin/python benchmarks/mock_instructions.py [--calls 100] [--warmup 200]

Needs valgrind (Debian's package). Python's hash seed is fixed (``PYTHONHASHSEED=0``): with a
random one, a figure moves by ~10 K from run to run. A script, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = ("floor describe", "mock describe", "floor associate", "mock associate")


def _count(case: str, calls: int, warmup: int) -> int:
    """Instructions callgrind counted while ``calls`` calls of ``case`` ran."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
             sys.executable, __file__, "--run", case, "--calls", str(calls), "--warmup", str(warmup)],
            check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        for line in out.read_text().splitlines():
            if line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError(f"callgrind wrote no totals for {case}")


def _run(case: str, calls: int, warmup: int) -> None:
    """In the process callgrind runs: the warm-up, then the counted calls."""
    sys.path.insert(0, str(HERE))
    from mock_overhead import calls as compared_calls

    with compared_calls() as compared:
        call = compared[case]
        for i in range(warmup):
            call(i)
        # callgrind_control reaches this process through valgrind's own channel.
        subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], check=True, capture_output=True)
        for i in range(warmup, warmup + calls):
            call(i)
        subprocess.run(["callgrind_control", "-i", "off", str(os.getpid())], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--run", choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        _run(args.run, args.calls, args.warmup)
        return
    # Instructions do not depend on what else runs: one valgrind per core.
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
        few = {case: pool.submit(_count, case, args.calls, args.warmup) for case in CASES}
        many = {case: pool.submit(_count, case, 5 * args.calls, args.warmup) for case in CASES}
        per_call = {case: (many[case].result() - few[case].result()) / (4 * args.calls) for case in CASES}
    print(f"# instructions per call (callgrind; {args.calls} and {5 * args.calls} calls after {args.warmup})")
    for operation in ("describe", "associate"):
        floor, mocked = per_call[f"floor {operation}"], per_call[f"mock {operation}"]
        print(f"{operation:10} floor (fixed answer) {floor / 1e3:,.0f} K  mock {mocked / 1e3:,.0f} K  "
              f"mock adds {(mocked - floor) / 1e3:,.0f} K")


if __name__ == "__main__":
    main()
