"""Issue 9: hypothesis fuzz of the public API (models, codes, attacks, defences, metrics, kernels,
losses, saat.train), run in a subprocess like test_fuzz_core.py. Default: 40 examples per target
(SAAT_FUZZ_EXAMPLES raises it)."""
from fuzz_runner import run_fuzz


def test_fuzz_public_api():
    run_fuzz("api", default_examples=40)
