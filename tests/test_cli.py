"""The command line (python -m saat ...), run as a user would, on a tiny mosaic benchmark."""
import json
import os
import subprocess
import sys

import pytest

SMALL = ["--n-train", "160", "--n-database", "300", "--n-query", "12"]


def run(*args, cwd=None):
    env = dict(os.environ)
    p = subprocess.run([sys.executable, "-m", "saat", *args], capture_output=True, text=True, cwd=cwd, env=env,
                       timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout


def test_info():
    d = json.loads(run("info"))
    assert "OpenBLAS" in d["blas"] and d["version"]


def test_table_writes_json_markdown_and_plots(tmp_path):
    out = tmp_path / "out"
    text = run("table", *SMALL, "--bits-list", "16", "--defence", "saat", "--out", str(out))
    assert "| 16 | none |" in text and "| 16 | saat |" in text
    assert "Claims" in text and "95 % bootstrap interval" in text
    table = json.loads((out / "table.json").read_text())
    rows = {r["defence"]: r for r in table["rows"]}
    assert set(rows) == {"none", "saat"}
    for col in ("clean", "pgd", "hag", "sdha", "center", "saat"):
        for r in rows.values():
            assert 0.0 <= r[col] <= 1.0
    for col in ("clean_t", "dhta_t", "p2p_t", "tha_t", "prosgan_t", "saat_t", "perceptibility_prosgan_t"):
        assert 0.0 <= rows["none"][col] <= 1.0 and col not in rows["saat"]
    assert (out / "pr_16.png").stat().st_size > 1000 and (out / "pn_16.png").stat().st_size > 1000
    assert len(list((out / "models").glob("*.npz"))) == 2
    # a rerun reuses the saved models (and gives the same numbers: everything is seeded)
    run("table", *SMALL, "--bits-list", "16", "--defence", "saat", "--out", str(out))
    again = {r["defence"]: r for r in json.loads((out / "table.json").read_text())["rows"]}
    assert again["none"]["saat"] == rows["none"]["saat"]


def test_train_attack_defend(tmp_path):
    out = tmp_path / "o"
    text = run("train", *SMALL, "--bits", "16", "--epochs", "2", "--k", "100", "--out", str(out))
    assert "MAP@100" in text
    model = out / "cnn-small-dpsh-16.npz"
    assert model.exists()
    res = json.loads(run("attack", *SMALL, "--model", str(model), "--attack", "saat", "--steps", "5",
                         "--n-attack", "8", "--k", "100"))
    assert res["attack"] == "SAATAttack" and res["max_abs"] <= 8 / 255 + 1e-6
    text = run("defend", *SMALL, "--model", str(model), "--defence", "cgat", "--epochs", "1", "--out", str(out))
    assert (out / "cnn-small-dpsh-16-cgat.npz").exists()


def test_bad_arguments_exit_nonzero():
    p = subprocess.run([sys.executable, "-m", "saat", "attack", "--model", "/nonexistent.npz"], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 1 and "nonexistent.npz" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run([sys.executable, "-m", "saat", "table", "--defence", "bogus"], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 2 and "bogus" in p.stderr
    p = subprocess.run([sys.executable, "-m", "saat", "table", *SMALL, "--seeds", "0"], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 1 and "'--seeds'" in p.stderr and "Traceback" not in p.stderr


def test_image_size_defaults_to_the_backbones_input():
    """--image-size: the mosaic is resized to the backbone's input side unless given (alexnet and
    vgg11: 224), and the short profile exists for paper-scale smoke runs."""
    import argparse
    from saat import __main__ as cli
    from saat.experiments import PROFILES

    def ns(**kw):
        base = dict(data=None, image_size=None, n_train=2, n_database=4, n_query=2, data_seed=0, backbone="cnn-small")
        return argparse.Namespace(**{**base, **kw})
    assert cli._data(ns()).train.images.shape[1:] == (3, 32, 32)
    assert cli._data(ns(backbone="alexnet")).query.images.shape[1:] == (3, 224, 224)
    assert cli._data(ns(backbone="vgg11", image_size=40)).database.images.shape[1:] == (3, 40, 40)
    assert cli._data(ns(), side=64).train.images.shape[1:] == (3, 64, 64)
    assert "short" in PROFILES
    out = subprocess.run([sys.executable, "-m", "saat", "table", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "short" in out.stdout and "--image-size" in out.stdout


def test_mosaic_size_follows_the_profile():
    """--profile paper runs on the mosaic's full default size (DPSH at the official learning rate
    collapses on 3000 training images); the demo and every other command on 3000/10000/500;
    explicit --n-* always win."""
    import argparse
    from saat import __main__ as cli

    def ns(**kw):
        return argparse.Namespace(**{**dict(n_train=None, n_database=None, n_query=None), **kw})
    assert cli._mosaic_sizes(ns(profile="paper")) == (5000, 20000, 1000)
    assert cli._mosaic_sizes(ns(profile="demo")) == (3000, 10000, 500) == cli._mosaic_sizes(ns())
    assert cli._mosaic_sizes(ns(profile="paper", n_train=100)) == (100, 20000, 1000)
