"""Interoperability with the Python stack: generator/DataLoader-style batches, dtypes and memory
orders, community MAP scripts on saat's codes, and PyTorch weights/tensors (when torch exists)."""
import numpy as np
import pytest

import saat
from saat import metrics


def calc_top_map(rB, qB, retrievalL, queryL, topk):
    """An independent DeepHash-pytorch-style CalcTopMap (numpy, ±1 codes), as community eval
    scripts compute it (stable sort added so ties are ordered like saat's)."""
    num_query = queryL.shape[0]
    topkmap = 0.0
    for it in range(num_query):
        gnd = (queryL[it, :] @ retrievalL.T > 0).astype(np.float32)
        hamm = 0.5 * (qB.shape[1] - qB[it, :] @ rB.T)
        ind = np.argsort(hamm, kind="stable")
        tgnd = gnd[ind][0:topk]
        tsum = np.sum(tgnd).astype(int)
        if tsum == 0:
            continue
        count = np.linspace(1, tsum, tsum)
        tindex = np.asarray(np.where(tgnd == 1)) + 1.0
        topkmap += np.mean(count / tindex)
    return topkmap / num_query


def test_encoded_codes_work_with_deephash_calc_top_map(trained, small_data):
    m = trained["model"]
    q = small_data.query
    qB = m.encode(q.images).astype(np.float32)   # community scripts take float ±1 arrays
    rB = trained["db_codes"].astype(np.float32)
    ref = calc_top_map(rB, qB, small_data.database.labels, q.labels, 500)
    assert abs(metrics.map_at_k(qB, rB, q.labels, small_data.database.labels, k=500) - ref) < 1e-9
    assert set(np.unique(qB)) <= {-1.0, 1.0}


def test_train_and_encode_accept_generators_of_batches(small_data):
    x, y = small_data.train.images[:96], small_data.train.labels[:96]

    def loader(with_index):
        perm = np.random.default_rng(0).permutation(96)   # a shuffling loader
        for s in range(0, 96, 32):
            ix = perm[s:s + 32]
            yield (x[ix], y[ix], ix) if with_index else (x[ix], y[ix])

    ref = saat.HashingModel("cnn-small", bits=8, seed=0)
    saat.train(ref, x, y, epochs=2, batch_size=16, seed=1, progress=False)
    m = saat.HashingModel("cnn-small", bits=8, seed=0)
    saat.train(m, loader(True), epochs=2, batch_size=16, seed=1, progress=False)   # index restores order
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(m.state_dict()[k], v)
    np.testing.assert_array_equal(m.encode(loader(True)), m.encode(x))
    np.testing.assert_array_equal(m.encode((b[0] for b in loader(False))), m.encode(x[np.random.default_rng(0).permutation(96)]))
    with pytest.raises(ValueError, match="'labels'.*None"):
        saat.train(m, loader(False), y, progress=False)
    with pytest.raises(ValueError, match="no batch"):
        m.encode(iter([]))
    with pytest.raises(ValueError, match="permutation"):
        saat.train(m, ((x[:4], y[:4], np.array([0, 1, 2, 2])),), progress=False)


def test_dtypes_and_memory_orders(trained, small_data):
    m = trained["model"]
    x = small_data.query.images[:8]
    ref = m.encode(x)
    np.testing.assert_array_equal(m.encode(x.astype(np.float64)), ref)
    np.testing.assert_array_equal(m.encode(np.asfortranarray(x)), ref)
    u8 = (x * 255).round().astype(np.uint8)
    np.testing.assert_allclose(m.forward(u8), m.forward(u8 / np.float32(255)), atol=1e-6)
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(m.encode(nhwc.transpose(0, 3, 1, 2)), ref)   # a strided view


def test_torch_tensors_and_state_dict():
    torch = pytest.importorskip("torch", reason="PyTorch not installed: torch interop test skipped")
    from torch import nn

    class Net(nn.Module):
        def __init__(self, bits):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                          nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
            self.classifier = nn.Sequential(nn.Linear(4096, 512), nn.ReLU())
            self.hash_layer = nn.Linear(512, bits)

        def forward(self, x):
            return torch.tanh(self.hash_layer(self.classifier(torch.flatten(self.features(x), 1))))

    torch.manual_seed(0)
    net = Net(24).eval()
    with torch.no_grad():
        net.hash_layer.weight.mul_(20)
    m = saat.from_torch_state_dict("cnn-small", 24, net.state_dict())
    x = torch.rand(6, 3, 32, 32)
    with torch.no_grad():
        ref = net(x).numpy()
    np.testing.assert_allclose(m.forward(x), ref, atol=1e-4)          # a CPU tensor goes in as is
    np.testing.assert_allclose(m.forward(x.double()), ref, atol=1e-4)
