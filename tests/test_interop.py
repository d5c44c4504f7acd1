"""Interoperability with the Python stack: generator/DataLoader-style batches, dtypes and memory
orders, community MAP scripts on saat's codes, and PyTorch weights/tensors (when torch exists)."""
import numpy as np
import pytest

import saat
from saat import metrics
from saat._convert import as_images
from _bounds import check_within, cnn_small_reference, dyadic_cnn_small_state, dyadic_images, dyadic_round


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
    # uint8 is the forward of its float32 conversion (k·fl(1/255), checked against k/255 in
    # test_models.py): the same input, so bitwise the same output on any machine
    np.testing.assert_array_equal(m.forward(u8), m.forward(as_images(u8, "x", m.input_shape)))
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

    # Weights and pixels on dyadic grids (tests/_bounds.py): every product and partial sum is a
    # float32 number, so both frameworks' networks are exact up to tanh whatever their kernels
    # (GEMM blocking, FMA, threads) and the tolerance is the two tanh bounds (torch's tanh, like
    # glibc's tanhf, is within 2 ulp). With torch's own init the γ_n bound would be ~0.5.
    sd = dyadic_cnn_small_state(24, seed=0)
    net = Net(24).eval()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    m = saat.from_torch_state_dict("cnn-small", 24, net.state_dict())
    x = torch.from_numpy(dyadic_images(6, seed=0))
    with torch.no_grad():
        ref_torch = net(x).numpy()
    ref, bound, exact = cnn_small_reference(sd, x.numpy(), 1.0)
    assert all(exact), exact
    check_within(ref_torch, ref, bound, "torch forward")
    check_within(m.forward(x), ref, bound, "saat forward")                      # a CPU tensor goes in as is
    check_within(m.forward(x), ref_torch, 2 * bound, "saat vs torch")           # both sides' bounds
    np.testing.assert_array_equal(m.forward(x.double()), m.forward(x))          # float64 of float32 values
    assert np.abs(ref).max() > 0.2


def calc_map(rB, qB, retrievalL, queryL):
    """An independent CgAT-style CalcMap: MAP over the whole ranking (numpy, ±1 codes)."""
    return calc_top_map(rB, qB, retrievalL, queryL, rB.shape[0])


def test_full_map_and_label_dtypes_match_community_scripts(trained, small_data):
    m = trained["model"]
    q = small_data.query
    qB, rB = m.encode(q.images), trained["db_codes"]
    ref = calc_map(rB.astype(np.float64), qB.astype(np.float64), small_data.database.labels, q.labels)
    n = rB.shape[0]
    assert abs(metrics.map_at_k(qB, rB, q.labels, small_data.database.labels, k=n) - ref) < 1e-9
    # labels as bool / int64, codes as int64 / float64: the same number
    got = metrics.map_at_k(qB.astype(np.int64), rB.astype(np.float64), q.labels.astype(bool),
                           small_data.database.labels.astype(np.int64), k=n)
    assert abs(got - ref) < 1e-9


def test_attacks_accept_float64_fortran_and_uint8_images(trained, small_data):
    m = trained["model"]
    x, y = small_data.query.images[:4], small_data.query.labels[:4]
    atk = saat.attacks.SAATAttack(m, trained["train_codes"], small_data.train.labels, steps=5, seed=3)
    ref = atk(x, y)
    np.testing.assert_array_equal(atk(x.astype(np.float64), y), ref)
    np.testing.assert_array_equal(atk(np.asfortranarray(x), y.astype(np.int64)), ref)
    u8 = (x * 255).round().astype(np.uint8)
    adv = atk(u8, y)
    assert adv.dtype == np.float32 and adv.shape == x.shape
    # the attack of uint8 images is the attack of their float32 conversion: the same input, so the
    # same sign decisions and bitwise the same result (k/255 computed another way may differ by an
    # ulp, and a gradient component near 0 could then change sign and move a pixel by 2 steps)
    np.testing.assert_array_equal(adv, atk(as_images(u8, "images", m.input_shape), y))
    # ε-ball around k/255: |adv − x̂| ≤ fl32(ε) + 2⁻²⁵ (x̂ + δ rounds once, values ≤ 1), x̂ within
    # γ_2 of k/255 and numpy's subtraction rounds once: ≤ 8/255 + 3e-7 < 8/255 + 1e-6
    assert np.abs(adv - u8 / np.float32(255)).max() <= 8 / 255 + 1e-6


def test_torch_dataloader_trains_encodes_and_hardens_like_arrays(small_data):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: DataLoader interop test skipped")
    from torch.utils.data import DataLoader, Dataset

    x, y = small_data.train.images[:64], small_data.train.labels[:64]

    class HashingSet(Dataset):          # the (image, label, index) items of the papers' data providers
        def __len__(self):
            return len(x)

        def __getitem__(self, i):
            return torch.from_numpy(x[i]), torch.from_numpy(y[i]), i

    loader = DataLoader(HashingSet(), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
    ref = saat.HashingModel("cnn-small", bits=8, seed=0)
    saat.train(ref, x, y, epochs=1, batch_size=16, seed=1, progress=False)
    m = saat.HashingModel("cnn-small", bits=8, seed=0)
    saat.train(m, loader, epochs=1, batch_size=16, seed=1, progress=False)
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(m.state_dict()[k], v)
    np.testing.assert_array_equal(m.encode(loader), m.encode(x))          # index restores dataset order
    saat.defences.SAATTraining(ref, epochs=1, batch_size=16, steps=2, seed=2).fit(x, y, progress=False)
    saat.defences.SAATTraining(m, epochs=1, batch_size=16, steps=2, seed=2).fit(loader, progress=False)
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(m.state_dict()[k], v)


def test_saat_weights_load_into_torch_and_metrics_take_tensors(trained, small_data):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: torch export test skipped")
    from torch import nn

    m = trained["model"]
    # The trained weights rounded to dyadic grids, a dyadic mean and power-of-two std, and pixels
    # k/16: saat's and torch's float32 networks are then exact up to tanh (tests/_bounds.py), so
    # the tolerance is the two tanh bounds, not a constant that depends on the BLAS kernels.
    sd = dyadic_round(m.state_dict())
    mean = np.round(np.asarray(m.mean, np.float64) * 16) / 16
    std = 2.0 ** np.round(np.log2(np.asarray(m.std, np.float64)))
    md = saat.HashingModel("cnn-small", m.bits, seed=m.seed, mean=mean, std=std)
    md.load_state_dict(sd)
    net = nn.Sequential()
    net.features = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    net.classifier = nn.Sequential(nn.Linear(4096, 512), nn.ReLU())
    net.hash_layer = nn.Linear(512, m.bits)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in md.state_dict().items()}, strict=True)
    x = (np.round(small_data.query.images[:6] * 16) / 16).astype(np.float32)
    tmean, tstd = (torch.from_numpy(np.asarray(v, np.float32)).view(1, 3, 1, 1) for v in (md.mean, md.std))
    with torch.no_grad():
        out = torch.tanh(net((torch.from_numpy(x) - tmean) / tstd))
    ref, bound, exact = cnn_small_reference(sd, x, 1.0, md.mean, md.std)
    assert all(exact), exact
    check_within(out.numpy(), ref, bound, "torch forward")
    check_within(md.forward(x), ref, bound, "saat forward")
    check_within(out.numpy(), md.forward(x), 2 * bound, "torch vs saat")       # both sides' bounds
    # DeepHash-pytorch evaluates torch.sign codes held in tensors
    q = small_data.query
    qB = torch.sign(torch.from_numpy(m.forward(q.images)))
    qB[qB == 0] = 1
    rB = torch.from_numpy(trained["db_codes"].astype(np.float32))
    got = metrics.map_at_k(qB, rB, torch.from_numpy(q.labels), torch.from_numpy(small_data.database.labels), k=500)
    assert abs(got - metrics.map_at_k(m.encode(q.images), trained["db_codes"], q.labels,
                                      small_data.database.labels, k=500)) < 1e-12
