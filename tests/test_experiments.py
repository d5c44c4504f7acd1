"""The experiment runner's model cache: saved weights are reused only for the same data and recipe."""
import dataclasses

import numpy as np

import saat
from saat.experiments import PROFILES, _model_path


def test_model_cache_is_keyed_by_data_and_training_recipe(small_data, tmp_path):
    cfg = PROFILES["demo"]
    base = _model_path(str(tmp_path), small_data, cfg, 32, "none")
    assert base == _model_path(str(tmp_path), small_data, dataclasses.replace(cfg), 32, "none")
    # attack settings do not change trained weights: same file
    assert base == _model_path(str(tmp_path), small_data, dataclasses.replace(cfg, saat_steps=7), 32, "none")
    # the clean recipe does
    assert base != _model_path(str(tmp_path), small_data, dataclasses.replace(cfg, clean_epochs=3), 32, "none")
    assert base != _model_path(str(tmp_path), small_data, dataclasses.replace(cfg, clean_lr=0.1), 32, "none")
    # a defence's epochs change only that defence's file
    more = dataclasses.replace(cfg, defence_epochs={**cfg.defence_epochs, "saat": 9})
    assert _model_path(str(tmp_path), small_data, cfg, 32, "saat") != _model_path(str(tmp_path), small_data, more, 32, "saat")
    assert _model_path(str(tmp_path), small_data, cfg, 32, "cgat") == _model_path(str(tmp_path), small_data, more, 32, "cgat")
    # a default spelled out is the same recipe as the default left to the schema
    paper = PROFILES["paper"]
    spelled = dataclasses.replace(paper, clean_batch=32, clean_lr=0.01, defence_batch=32,
                                  defence_epochs={"saat": 20, "cgat": 30, "atrdh": 100})
    for d in ("none", "saat", "cgat", "atrdh"):
        assert _model_path(str(tmp_path), small_data, paper, 32, d) == _model_path(str(tmp_path), small_data, spelled, 32, d)
    assert _model_path(str(tmp_path), small_data, paper, 32, "saat") != _model_path(
        str(tmp_path), small_data, dataclasses.replace(paper, defence_epochs={"saat": 21}), 32, "saat")
    # other training data: another file
    other = saat.datasets.mosaic(n_train=50, n_database=60, n_query=5, seed=1)
    assert base != _model_path(str(tmp_path), other, cfg, 32, "none")
    assert base.endswith(".npz") and "cnn-small-dpsh-32-none-seed0-" in base


# ------------------------------------------------------------ seeds, intervals, control, claims

import json  # noqa: E402

import pytest  # noqa: E402

from saat.experiments import CONTROL, ExperimentConfig, Table, _control_params, compare, robustness_table  # noqa: E402


def _two_seed_config(**kw):
    return ExperimentConfig(**{**dict(
        bits=(16,), loss="csq", k=300, pretrain_epochs=0, clean_epochs=4, clean_batch=32, clean_lr=0.01,
        defence_epochs={"saat": 1, CONTROL: 1}, defences=("none", CONTROL, "saat"), pgd_steps=3, saat_steps=5,
        center_steps=3, hag_steps=3, sdha_steps=3, dhta_steps=3, p2p_steps=3, tha_steps=3, tha_prototype_steps=10,
        prosgan_epochs=1, prosgan_prototype_steps=10,
        n_query_attack=16, seeds=(0, 1)), **kw})


@pytest.fixture(scope="module")
def two_seed_table(tmp_path_factory):
    data = saat.datasets.mosaic(n_train=240, n_database=400, n_query=20, seed=1)
    out = tmp_path_factory.mktemp("seeds")
    table = robustness_table(data, _two_seed_config(), out=str(out), progress=False, verbose=False)
    return data, out, table


def test_cells_keep_per_query_aps_and_rows_aggregate_seeds(two_seed_table, tmp_path):
    data, out, table = two_seed_table
    assert [r["defence"] for r in table.rows] == ["none", CONTROL, "saat"]
    # every cell of every seed is on disk with its per-query APs, whose mean is the cell's MAP
    for path in (out / "cells").iterdir():
        cell = json.loads(path.read_text())
        (col, ap), = cell["__ap__"].items()
        assert len(ap) == 16 and cell[col] == pytest.approx(np.mean(ap), abs=1e-12)
    # a row's value is the mean over seeds, its std that of the per-seed MAPs, its CI brackets it
    for (bits, d, col), a in table.per_query.items():
        assert a.shape == (2, 16)
        row = table.row(bits, d)
        assert row[col] == pytest.approx(a.mean(), abs=1e-12)
        assert row["std"][col] == pytest.approx(np.std(a.mean(axis=1), ddof=1), abs=1e-12)
        lo, hi = row["ci"][col]
        assert lo <= row[col] <= hi
    # the two seeds trained different models: the clean MAPs of the undefended row differ
    clean = table.per_query[(16, "none", "clean")]
    assert not np.array_equal(clean[0], clean[1])
    # seed 0's clean MAP equals that of a single-seed table trained afresh (each seed is its own run)
    one = robustness_table(data, _two_seed_config(seeds=(0,), defences=("none",)), out=str(tmp_path), progress=False,
                           verbose=False, plots=False)
    assert one.rows[0]["clean"] == pytest.approx(clean[0].mean(), abs=1e-15)


def test_control_row_and_claims_are_in_the_outputs(two_seed_table):
    _, out, table = two_seed_table
    ctrl = table.row(16, CONTROL)
    assert set(ctrl) >= {"clean", "saat"} and "pgd" not in ctrl
    saved = json.loads((out / "table.json").read_text())
    assert saved["claims"] == table.claims and saved["claims"]
    texts = [c["claim"] for c in saved["claims"]]
    assert any("fine-tuning control" in t for t in texts) and any("converged" in t for t in texts)
    for c in saved["claims"]:
        lo, hi = c["ci"]
        assert lo <= c["difference"] <= hi or c.get("margin")
        assert c["holds"] is None if lo <= c.get("margin", 0) <= hi else c["holds"] in (True, False)
    md = (out / "table.md").read_text()
    assert "Claims" in md and " ± " in md and "[" in md
    assert (out / "pr_16.png").stat().st_size > 1000
    assert table.reference[16]["precision"] and set(table.curves[16]) == {"none", CONTROL, "saat"}
    loaded = Table.load(str(out / "table.json"))
    assert loaded.rows == table.rows and loaded.claims == table.claims
    c = compare(loaded, ("saat", "saat"), ("none", "saat"))
    assert c.paired_by == "query and seed" and c.n_pairs == 32


def test_control_recipe_is_the_clean_recipe_with_saats_optimiser():
    saat_recipe = saat._core.resolve("defence", "saat", {})
    p = _control_params(PROFILES["demo"])
    for k in ("lr", "momentum", "weight_decay", "milestones", "gamma", "batch_size"):
        assert p[k] == saat_recipe[k]
    assert p["epochs"] == PROFILES["demo"].defence_epochs[CONTROL] and "lambda_adv" not in p
    assert _control_params(PROFILES["paper"])["epochs"] == saat_recipe["epochs"]


def test_seed_arguments():
    with pytest.raises(ValueError, match="'seeds'"):
        ExperimentConfig(seeds=())
    with pytest.raises(ValueError, match="'seeds'"):
        ExperimentConfig(seeds=(1, 1))
    with pytest.raises(ValueError, match="'seed' and 'seeds'"):
        robustness_table(None, "demo", seed=1, seeds=(1,))
    with pytest.raises(ValueError, match="2 seeds"):
        ExperimentConfig(seeds=(0, 1)).seed
    assert ExperimentConfig(seeds=[3]).seed == 3
