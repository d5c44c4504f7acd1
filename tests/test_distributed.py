"""saat.distributed and the Ray executor of the robustness table, on the session's local Ray
instance (conftest.local_ray: 2 CPUs, localhost only). Results must equal the single-process ones
exactly."""
import os
import shutil
import signal
import threading
import time

import numpy as np
import pytest

import saat

ray = pytest.importorskip("ray", reason="saat[ray] not installed")
import saat.distributed as D  # noqa: E402
from saat.experiments import ExperimentConfig, robustness_table  # noqa: E402


@pytest.mark.parametrize("shards", [2, 3])
@pytest.mark.parametrize("name", ["pgd", "saat", "saat_t", "dhta"])
def test_sharded_attack_evaluation_is_bit_identical(local_ray, small_data, trained, name, shards):
    m, db, tc = trained["model"], trained["db_codes"], trained["train_codes"]
    cfg = ExperimentConfig(seeds=(3,), pgd_steps=3, saat_steps=3, dhta_steps=3)
    atk = saat.experiments.make_attack(name, m, tc, small_data.train.labels, db, small_data.database.labels, cfg)
    x, y = small_data.query.images[:11], small_data.query.labels[:11]
    t = saat.attacks.select_target_labels(y, small_data.database.labels, seed=0) if atk.targeted else None
    local = saat.evaluate_attack(m, atk, x, y, db, small_data.database.labels, k=500, target_labels=t,
                                 return_images=True)
    dist = D.evaluate_attack(m, atk, x, y, db, small_data.database.labels, k=500, target_labels=t, shards=shards,
                             return_images=True)
    assert np.array_equal(local["adv_images"], dist["adv_images"])
    assert not np.array_equal(local["adv_images"], x)   # the attack did something
    for key in local:
        if key not in ("seconds", "adv_images"):
            assert local[key] == dist[key], key


def test_sharded_attack_rejects_bad_shards(local_ray, small_data, trained):
    m = trained["model"]
    atk = saat.attacks.PGD(m, steps=1)
    x, y = small_data.query.images[:3], small_data.query.labels[:3]
    for bad, exc in ((0, ValueError), (4, ValueError), (1.5, TypeError)):
        with pytest.raises(exc, match="shards"):
            D.evaluate_attack(m, atk, x, y, trained["db_codes"], small_data.database.labels, k=10, shards=bad)


def test_sharded_metrics_equal_single_process_exactly(local_ray):
    rng = np.random.default_rng(0)
    q = np.where(rng.random((200, 16)) < 0.5, -1, 1).astype(np.int8)
    d = np.where(rng.random((100_000, 16)) < 0.5, -1, 1).astype(np.int8)
    # crafted ties: runs of database codes equal to a query, and duplicates across shard borders
    d[1000:1300] = q[0]
    d[33_300:33_400] = q[1]
    d[66_600:66_700] = q[1]
    d[50_000:50_050] = d[0]
    ql = (rng.random((200, 6)) < 0.3).astype(np.uint8)
    dl = (rng.random((100_000, 6)) < 0.3).astype(np.uint8)
    tl = (rng.random((200, 6)) < 0.3).astype(np.uint8)
    for shards in (2, 3):
        m1, ap1 = saat.metrics.map_at_k(q, d, ql, dl, k=5000, return_ap=True)
        m2, ap2 = D.map_at_k(q, d, ql, dl, k=5000, shards=shards, return_ap=True)
        assert m1 == m2 and np.array_equal(ap1, ap2)
        assert saat.metrics.t_map_at_k(q, d, tl, dl, k=700) == D.t_map_at_k(q, d, tl, dl, k=700, shards=shards)
        assert np.array_equal(saat.metrics.hamming_rank(q, d, 1500), D.hamming_rank(q, d, 1500, shards=shards))
    # k larger than the database: the full MAP
    assert saat.metrics.map_at_k(q[:5], d[:40], ql[:5], dl[:40], k=100) == D.map_at_k(q[:5], d[:40], ql[:5], dl[:40],
                                                                                      k=100, shards=3)
    with pytest.raises(ValueError, match="db_codes"):
        D.map_at_k(q, d * 2, ql, dl, k=10, shards=2)


# Cells of _table_config's table: clean + 5 attacks on each of the 2 models, and clean_t + 5 targeted
# attacks on the undefended one.
N_CELLS = 2 * (1 + 5) + 1 + 5


def _table_config():
    return ExperimentConfig(bits=(16,), loss="csq", k=300, pretrain_epochs=0, clean_epochs=4, clean_batch=32,
                            clean_lr=0.01, defence_epochs={"saat": 1}, defences=("none", "saat"), pgd_steps=3,
                            saat_steps=5, center_steps=3, hag_steps=3, sdha_steps=3, dhta_steps=3, p2p_steps=3,
                            tha_steps=3, tha_prototype_steps=10, prosgan_epochs=1, prosgan_prototype_steps=10,
                            n_query_attack=12)


@pytest.fixture(scope="module")
def table_data():
    return saat.datasets.mosaic(n_train=240, n_database=400, n_query=20, seed=1)


@pytest.fixture(scope="module")
def local_table(table_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    return robustness_table(table_data, _table_config(), out=str(out), progress=False, verbose=False, plots=False)


def test_ray_table_equals_local_table_and_resumes(local_ray, table_data, local_table, tmp_path):
    rows = local_table.rows
    assert len({round(v, 6) for r in rows for k, v in r.items() if isinstance(v, float)}) > 3, \
        "the model must be trained enough for the cells to differ"
    out = tmp_path / "ray"
    t = robustness_table(table_data, _table_config(), out=str(out), progress=False, verbose=False, plots=False,
                         executor="ray")
    assert t.rows == rows and t.curves == local_table.curves
    cells = sorted((out / "cells").iterdir())
    assert len(cells) == N_CELLS
    stamps = [c.stat().st_mtime_ns for c in cells]
    # A rerun recomputes nothing: every cell and model is read back.
    again = robustness_table(table_data, _table_config(), out=str(out), progress=False, verbose=False, plots=False,
                             executor="ray")
    assert again.rows == rows and [c.stat().st_mtime_ns for c in cells] == stamps
    # A crash that lost some cells: only those are recomputed, to the same values.
    for c in cells[::3]:
        c.unlink()
    os.unlink(next((out / "models").glob("*-saat-*.npz")))
    resumed = robustness_table(table_data, _table_config(), out=str(out), progress=False, verbose=False, plots=False,
                               executor="ray")
    assert resumed.rows == rows


def _ray_worker_pids(prefix):
    pids = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    if f.read().startswith(prefix.encode()):
                        pids.append(int(p))
            except OSError:
                pass
    return pids


def test_ray_table_survives_a_killed_worker(local_ray, table_data, local_table, tmp_path):
    out = tmp_path / "fault"
    result, killed = {}, []

    def run():
        result["table"] = robustness_table(table_data, _table_config(), out=str(out), progress=False, verbose=False,
                                           plots=False, executor="ray")

    th = threading.Thread(target=run)
    th.start()
    deadline = time.time() + 120
    while th.is_alive() and not killed and time.time() < deadline:
        for pid in _ray_worker_pids("ray::_train_defence") + _ray_worker_pids("ray::_attack_cell"):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            break
        time.sleep(0.02)
    th.join(600)
    assert killed, "no worker was caught running a table task"
    assert result["table"].rows == local_table.rows
    assert len(list((out / "cells").iterdir())) == N_CELLS
    shutil.rmtree(out)


def test_cli_table_on_the_ray_cluster(local_ray, tmp_path):
    """`python -m saat table --executor ray --address ADDR` joins the session's cluster (on
    localhost) and writes the table; the same command run locally gives the same rows."""
    import json
    import subprocess
    import sys
    address = local_ray.get_runtime_context().gcs_address
    small = ["--n-train", "120", "--n-database", "200", "--n-query", "10", "--profile", "short", "--defence", "saat",
             "--bits-list", "16", "--loss", "csq"]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    rows = {}
    for name, extra in (("ray", ["--executor", "ray", "--address", address]), ("local", [])):
        out = tmp_path / name
        p = subprocess.run([sys.executable, "-m", "saat", "table", *small, "--out", str(out), *extra],
                           capture_output=True, text=True, env=env, timeout=900)
        assert p.returncode == 0, p.stderr[-3000:]
        rows[name] = json.loads((out / "table.json").read_text())["rows"]
    assert rows["ray"] == rows["local"] and [r["defence"] for r in rows["ray"]] == ["none", "saat"]
    p = subprocess.run([sys.executable, "-m", "saat", "table", *small, "--out", str(tmp_path / "x"), "--address", address],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 1 and "argument 'address': only for executor='ray'" in p.stderr
