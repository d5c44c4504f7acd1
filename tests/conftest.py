"""Shared fixtures: a small real-image benchmark and a DPSH model trained on it once per session."""
import os

import numpy as np
import pytest

import saat


@pytest.fixture(scope="session")
def small_data():
    """The mosaic benchmark (real Fashion-MNIST/MNIST images), small enough for tests."""
    return saat.datasets.mosaic(n_train=800, n_database=2000, n_query=100, seed=0)


@pytest.fixture(scope="session")
def trained(small_data):
    """A cnn-small 16-bit model trained for a few epochs, with its codes.

    CSQ (pointwise, learns fast from scratch: MAP@1000 ≈ 0.52 here vs ≈ 0.25 for random codes) so
    the attack tests have a model worth attacking at a test's budget; DPSH training is covered by
    test_training.py and the demo."""
    mean, std = saat.training.channel_stats(small_data.train.images)
    m = saat.HashingModel("cnn-small", bits=16, seed=0, mean=mean, std=std)
    hist = saat.train(m, small_data.train.images, small_data.train.labels, loss="csq", epochs=10, batch_size=32,
                      lr=0.01, seed=0, progress=False)
    m.eval()
    db_codes = m.encode(small_data.database.images)
    train_codes = m.encode(small_data.train.images)
    return {"model": m, "history": hist.history, "db_codes": db_codes, "train_codes": train_codes}


def state_copy(model):
    """An independent copy of a model (same weights)."""
    c = saat.HashingModel(model.backbone, model.bits, seed=model.seed)
    c.load_state_dict(model.state_dict())
    return c


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray instance for the whole session: a fixed 2 CPUs, bound to 127.0.0.1, no
    dashboard and no usage report (nothing leaves localhost); shut down at the end."""
    ray = pytest.importorskip("ray", reason="saat[ray] not installed")
    if ray.is_initialized():
        ray.shutdown()
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", address="local",
             _node_ip_address="127.0.0.1")
    yield ray
    ray.shutdown()
