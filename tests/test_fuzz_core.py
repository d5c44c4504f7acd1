"""Issue 9: hypothesis fuzz of every ``saat._core`` entry point, run in a subprocess so that a
segfault/abort is a failed test naming the case (see fuzz_worker.py for the corruptions and the
accepted outcomes). Default: SAAT_FUZZ_EXAMPLES=100 examples per entry point (~1 min on 2 cores);
raise it (and SAAT_FUZZ_RANDOM=1 for fresh, non-derandomized examples) for a long run."""
import os

from fuzz_runner import run_fuzz


def test_fuzz_core_entry_points():
    run_fuzz("core", default_examples=100)
