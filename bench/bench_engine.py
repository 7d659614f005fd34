"""Engine benchmark: EP samples/s of the numba kernels against a plain numpy reference.

    python bench/bench_engine.py [--json] [--quick] [--repeats N]

What is measured: see bench/README.md and xyprop.app.benchmark (also ``xyprop bench``).
"""

from __future__ import annotations

import argparse
import json
import sys

from xyprop.app.benchmark import format_table, run_benchmarks


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the cases as JSON")
    ap.add_argument("--quick", action="store_true", help="small batches (a smoke run)")
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per case (median)")
    a = ap.parse_args(argv)
    if a.repeats < 1:
        ap.error(f"--repeats: got {a.repeats}; allowed: an integer >= 1")
    cases = run_benchmarks(quick=a.quick, repeats=a.repeats)
    if a.json:
        print(json.dumps(cases, indent=1))
    else:
        print(format_table(cases))
    return 0 if all(c["agrees"] for c in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
