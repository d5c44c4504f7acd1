"""Runs fuzz_worker.py in a subprocess and turns its outcome into a test result: a crash
(signal), a hang (watchdog) or any recorded failure fails the test and names the case."""
from __future__ import annotations

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run_fuzz(suite: str, default_examples: int, timeout: float = 1800) -> dict:
    examples = int(os.environ.get("SAAT_FUZZ_EXAMPLES", default_examples))
    cmd = [sys.executable, os.path.join(HERE, "fuzz_worker.py"), suite, "--examples", str(examples)]
    if os.environ.get("SAAT_FUZZ_RANDOM"):
        cmd.append("--random")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONFAULTHANDLER="1")
    p = subprocess.run(cmd, cwd=HERE, env=env, capture_output=True, text=True, timeout=timeout)
    lines = p.stdout.splitlines()
    cases = [ln for ln in lines if ln.startswith("CASE ")]
    summary = next((json.loads(ln[8:]) for ln in lines if ln.startswith("SUMMARY ")), None)
    if p.returncode != 0 or summary is None:
        last = cases[-1] if cases else "(before the first case)"
        raise AssertionError(
            f"fuzz worker '{suite}' died with return code {p.returncode} "
            f"({'signal ' + str(-p.returncode) if p.returncode < 0 else 'exit'}) during\n  {last}\n"
            f"stderr tail:\n{p.stderr[-3000:]}")
    # the count the closing note of issue 9 reports
    print(f"\nfuzz[{suite}]: {summary['cases']} cases over {summary['targets']} targets in {summary['seconds']} s: "
          f"{summary['ok']} returned, {summary['raised']} raised a named error, "
          f"{summary['interrupted']} long valid runs interrupted by the alarm, "
          f"{len(summary['failures'])} failures")
    assert summary["cases"] >= summary["targets"] * min(examples, 10), summary
    assert not summary["failures"], "\n".join(summary["failures"][:30])
    return summary
