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
