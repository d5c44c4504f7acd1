"""First reliability checks (issue 9 extends them): concurrent calls, Ctrl-C during long Swift
loops, and flat memory/refcounts over many calls including error paths."""
import gc
import resource
import signal
import sys
import threading
import time

import numpy as np
import pytest

import saat


def test_threads_same_and_different_models_match_sequential(small_data):
    x = small_data.query.images[:64]
    a = saat.HashingModel("cnn-small", bits=16, seed=1)
    b = saat.HashingModel("cnn-small", bits=16, seed=2)
    ref_a, ref_b = a.encode(x), b.encode(x)
    results, errors = {}, []

    def work(name, model):
        try:
            for i in range(5):
                results[(name, i)] = model.encode(x)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(n, m)) for n, m in [("a1", a), ("a2", a), ("b", b)]]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    for (name, _), codes in results.items():
        np.testing.assert_array_equal(codes, ref_b if name == "b" else ref_a)


def _interrupt_after(seconds):
    def fire():
        time.sleep(seconds)
        signal.raise_signal(signal.SIGINT) if hasattr(signal, "raise_signal") else None
    t = threading.Thread(target=fire, daemon=True)
    t.start()
    return t


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_stops_training_within_a_second(small_data):
    m = saat.HashingModel("cnn-small", bits=16, seed=0)
    x, y = small_data.train.images, small_data.train.labels
    _interrupt_after(0.5)
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        saat.train(m, x, y, epochs=200, batch_size=32, progress=False)
    assert time.perf_counter() - t0 < 1.5
    # the model is consistent: weights finite and usable
    assert all(np.isfinite(v).all() for v in m.state_dict().values())
    assert m.encode(x[:4]).shape == (4, 16)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_stops_an_attack_within_a_second(trained, small_data):
    atk = saat.attacks.PGD(trained["model"], steps=100000)
    _interrupt_after(0.5)
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        atk(small_data.query.images[:32])
    assert time.perf_counter() - t0 < 1.5


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_stops_tha_preparation_within_a_second_and_releases_the_gil(trained, small_data):
    """THA trains its prototype net inside attack_prepare (saat.attacks.THA(...)): with the GIL
    released (another Python thread keeps running) and interruptible by Ctrl-C."""
    db_codes, db_labels = trained["db_codes"].astype(np.float32), small_data.database.labels.astype(np.float32)
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.01)

    t = threading.Thread(target=ticker, daemon=True)
    t.start()
    _interrupt_after(0.5)
    t0 = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            saat.attacks.THA(trained["model"], db_codes, db_labels, prototype_steps=10**9)
        dt = time.perf_counter() - t0
    finally:
        stop.set()
        t.join()
    assert dt < 1.5, dt
    assert len([s for s in ticks if t0 + 0.1 < s < t0 + 0.45]) >= 10   # the thread ran during the training
    _interrupt_after(0.3)   # the core entry itself
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        saat._core.attack_prepare("tha", trained["model"]._handle, {"db_codes": db_codes, "db_labels": db_labels},
                                  {"prototype_steps": 10**9})
    assert time.perf_counter() - t0 < 1.3


def test_no_leak_over_many_calls_including_errors():
    m = saat.HashingModel("cnn-small", bits=8, seed=0)
    x = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    out = np.empty((1, 8), np.float32)
    bad = np.zeros((1, 3, 32, 31), np.float32)
    a = np.ones((4, 4), np.float32)
    c = np.empty((4, 4), np.float32)

    def burst(n):
        for _ in range(n):
            saat._core.model_forward(m._handle, x, out)
            saat._core.sgemm(a, a, c)
            try:
                saat._core.model_forward(m._handle, bad, out)
            except ValueError:
                pass
            try:
                saat._core.sgemm(a, a.astype(np.float64), c)
            except TypeError:
                pass

    burst(2000)
    gc.collect()
    refs = [sys.getrefcount(o) for o in (x, out, bad, a, c, m._handle)]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    burst(3000)
    gc.collect()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert [sys.getrefcount(o) for o in (x, out, bad, a, c, m._handle)] == refs
    assert rss1 - rss0 < 20_000, (rss0, rss1)   # KiB: flat within noise


# ======================================================================================
# Issue 9, extended: regression cases of the crashes the fuzz found, leaks over every _core
# entry point, threads with attacks and training, Ctrl-C in a defence, checkpoints killed with
# SIGKILL, corrupted checkpoints, the NaN policy and malformed list files.
# ======================================================================================
import ctypes
import json
import os
import subprocess
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))


def _run_py(code, timeout=120):
    """Runs `code` in a fresh interpreter (a crash there is a failed test, not a dead runner)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONFAULTHANDLER="1")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=HERE, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _tiny(n=8, seed=0, classes=3):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 3, 32, 32), dtype=np.float32)
    y = (rng.random((n, classes)) < 0.5).astype(np.float32)
    y[:, 0] = 1
    return x, y


# ---------------------------------------------------------------- crash regressions
def test_regression_huge_batch_size_does_not_abort():
    """Found by the fuzz: batch_size=2**63-1 overflowed the core's batch arithmetic (SIGILL). The
    schema of every training recipe now bounds it (1...2**24): the largest valid value is one batch
    of the whole set, a larger one a ValueError naming 'batch_size' (as is a huge 'epochs'; the
    core also checks epochs × batches ≤ 2**53, naming 'epochs')."""
    r = _run_py("""
        import numpy as np, saat
        from saat import _core
        x = np.random.default_rng(0).random((4, 3, 32, 32), dtype=np.float32)
        y = np.ones((4, 2), np.float32)
        kinds = {"hashing": "training", "saat": "defence", "cgat": "defence", "atrdh": "defence"}
        for method, extra in [("hashing", {}), ("saat", {"steps": 1}), ("cgat", {"steps": 1}), ("atrdh", {"steps": 1})]:
            schema = next(s for s in _core.schemas() if s["kind"] == kinds[method] and s["name"] == method)
            bs = next(p for p in schema["parameters"] if p["name"] == "batch_size")
            assert bs["max"] == 2**24, bs
            m = saat.HashingModel("cnn-small", bits=4, seed=0)
            res = _core.train(method, m._handle, x, y, {**extra, "epochs": 1, "batch_size": bs["max"]})
            assert len(res) == 1, res   # the per-epoch loss history
            for huge in (2**24 + 1, 2**62, 2**63 - 1, 2**64):
                for call in (lambda: _core.train(method, m._handle, x, y, {**extra, "epochs": 1, "batch_size": huge}),
                             lambda: _core.resolve(kinds[method], method, {"batch_size": huge})):
                    try:
                        call()
                    except ValueError as e:
                        assert str(e).startswith("argument 'batch_size'"), e
                    else:
                        raise AssertionError(f"{method}: no error for batch_size={huge}")
        m = saat.HashingModel("cnn-small", bits=4, seed=0)
        for call in (lambda: saat.train(m, x, y, epochs=1, batch_size=2**63 - 1, progress=False),
                     lambda: saat.defences.SAATTraining(m, epochs=1, batch_size=2**63 - 1)):
            try:
                call()
            except ValueError as e:
                assert "'batch_size'" in str(e), e
            else:
                raise AssertionError("no error for batch_size=2**63-1 through the API")
        for epochs in (2**31, 2**62):
            try:
                _core.train("hashing", m._handle, x, y, {"epochs": epochs, "batch_size": 2})
            except ValueError as e:
                assert str(e).startswith("argument 'epochs'"), e
            else:
                raise AssertionError(f"no error for epochs={epochs}")
        print("OK")
    """)
    assert r.returncode == 0 and "OK" in r.stdout, (r.returncode, r.stderr[-2000:])


def test_regression_size_hyper_parameters_are_bounded():
    """A huge prototype batch allocated (batch × classes) floats and aborted; a huge DHTA n_t
    looped without a Ctrl-C check; a defence's inner attack runs per batch without one. The
    schemas bound them (prototype_batch and n_t ≤ 2**20, a defence's steps ≤ 1000): a larger value
    is a ValueError naming the parameter, from attack_prepare/train, resolve and the Python API,
    before any work. The largest n_t is quick."""
    r = _run_py("""
        import time
        import numpy as np, saat
        from saat import _core
        codes = np.where(np.arange(24).reshape(6, 4) % 2, 1, -1).astype(np.float32)
        labels = np.eye(3, dtype=np.float32)[np.arange(6) % 3]
        db = {"db_codes": codes, "db_labels": labels}
        model = saat.HashingModel("cnn-small", bits=4)
        h = model._handle
        x = np.zeros((3, 3, 32, 32), np.float32)
        y = np.ones((3, 2), np.float32)

        def bound(kind, name, param):
            schema = next(s for s in _core.schemas() if s["kind"] == kind and s["name"] == name)
            return next(p for p in schema["parameters"] if p["name"] == param)["max"]

        assert bound("attack", "tha", "prototype_batch") == 4096   # 4096-wide activations per label row
        assert bound("attack", "dhta", "n_t") == 2**20
        assert all(bound("defence", d, "steps") == 1000 for d in ("saat", "cgat", "atrdh"))
        cases = []
        for huge in (2**20 + 1, 2**62, 2**64):
            cases += [
                (lambda huge=huge: _core.attack_prepare("tha", h, db, {"prototype_steps": 1, "prototype_batch": huge}),
                 "'prototype_batch'"),
                (lambda huge=huge: _core.resolve("attack", "tha", {"prototype_batch": huge}), "'prototype_batch'"),
                (lambda huge=huge: saat.attacks.THA(model, codes, labels, prototype_steps=1, prototype_batch=huge),
                 "'prototype_batch'"),
                (lambda huge=huge: _core.attack_prepare("dhta", h, db, {"n_t": huge}), "'n_t'"),
                (lambda huge=huge: _core.resolve("attack", "dhta", {"n_t": huge}), "'n_t'"),
                (lambda huge=huge: saat.attacks.DHTA(model, codes, labels, n_t=huge), "'n_t'"),
            ]
        for method in ("saat", "cgat", "atrdh"):
            for steps in (1001, 2**62):
                cases += [(lambda m=method, s=steps: _core.train(m, h, x, y, {"epochs": 1, "steps": s}), "'steps'"),
                          (lambda m=method, s=steps: _core.resolve("defence", m, {"steps": s}), "'steps'"),
                          (lambda m=method, s=steps: saat.defences.DEFENCES[m](model, epochs=1, steps=s), "'steps'")]
        for call, name in cases:
            t0 = time.perf_counter()
            try:
                call()
            except ValueError as e:
                assert str(e).startswith("argument " + name) or name in str(e), (name, e)
            else:
                raise AssertionError(name)
            assert time.perf_counter() - t0 < 1.0, name   # rejected before any work
        # the largest n_t: n_t codes drawn per image, then 1 step
        handle, _ = _core.attack_prepare("dhta", h, db, {"n_t": 2**20, "steps": 1})
        t0 = time.perf_counter()
        _core.attack_run(handle, h, x, np.empty_like(x), labels=labels[:3].copy())
        assert time.perf_counter() - t0 < 10, time.perf_counter() - t0
        print("OK")
    """)
    assert r.returncode == 0 and "OK" in r.stdout, (r.returncode, r.stderr[-2000:])


def test_truth_value_errors_name_the_argument():
    class Bad:
        def __bool__(self):
            raise RuntimeError("no truth value")
    m = saat.HashingModel("cnn-small", bits=4)
    with pytest.raises(TypeError, match="'training'"):
        saat._core.model_set_mode(m._handle, Bad())
    with pytest.raises(TypeError, match="'random_start'"):
        saat.attacks.PGD(m, random_start=Bad())
    # the same through the schema-checked parameter dicts of the core
    with pytest.raises(TypeError, match="'random_start'"):
        saat._core.attack_prepare("pgd", m._handle, None, {"random_start": Bad()})
    with pytest.raises(TypeError, match="'targeted'"):
        saat._core.resolve("attack", "saat", {"targeted": Bad()})
    with pytest.raises(TypeError, match="'write_memory'"):
        saat._core.hash_loss("dpsh", np.zeros((1, 4), np.float32), np.ones((1, 2), np.float32), np.zeros(1, np.int64),
                             np.ones((1, 2), np.float32), np.zeros((1, 4), np.float32), np.zeros((1, 4), np.float32),
                             write_memory=Bad())


# ---------------------------------------------------------------- callbacks on the busy model
def test_callback_calling_the_model_being_trained_raises_instead_of_deadlocking():
    """Before: a progress callback calling model.encode waited for the model lock its own
    thread held (a silent hang). Now: RuntimeError naming 'model'. Run in a subprocess with a
    timeout so a regression is a failure, not a hung suite."""
    r = _run_py("""
        import numpy as np, saat
        x = np.random.default_rng(0).random((8, 3, 32, 32), dtype=np.float32)
        y = np.ones((8, 2), np.float32)
        m = saat.HashingModel("cnn-small", bits=8, seed=0)
        for call in (lambda: m.encode(x[:2]), lambda: m.state_dict(), lambda: m.train(False)):
            def cb(*a, call=call):
                call()
            try:
                saat.train(m, x, y, epochs=1, batch_size=4, progress=cb)
            except RuntimeError as e:
                assert "'model'" in str(e) and "busy" in str(e), e
            else:
                raise AssertionError("no error")
        # the lock was released: the model is usable and in eval mode again
        assert m.encode(x[:2]).shape == (2, 8) and not m.training
        print("OK")
    """, timeout=60)
    assert r.returncode == 0 and "OK" in r.stdout, (r.returncode, r.stderr[-2000:])


def test_encode_from_another_thread_waits_for_training(small_data):
    """Training holds the model's lock for the whole run: an encode started in another thread
    while training runs returns after training, with the trained model's codes."""
    x, y = small_data.train.images[:96], small_data.train.labels[:96]
    probe = small_data.query.images[:16]
    m = saat.HashingModel("cnn-small", bits=16, seed=3)
    started = threading.Event()
    done = {}

    def progress(epoch, batch, batches, loss, lr):
        started.set()

    def trainer():
        saat.train(m, x, y, epochs=2, batch_size=16, lr=0.01, seed=0, progress=progress)
        done["train_end"] = time.perf_counter()

    t = threading.Thread(target=trainer)
    t.start()
    assert started.wait(30)
    codes = m.encode(probe)
    done["encode_end"] = time.perf_counter()
    t.join()
    assert done["encode_end"] >= done["train_end"]
    np.testing.assert_array_equal(codes, m.encode(probe))
    ref = saat.HashingModel("cnn-small", bits=16, seed=3)
    saat.train(ref, x, y, epochs=2, batch_size=16, lr=0.01, seed=0, progress=False)
    np.testing.assert_array_equal(codes, ref.encode(probe))


def test_threads_attacks_same_and_different_models_match_sequential(trained, small_data):
    model = trained["model"]
    other = saat.HashingModel("cnn-small", bits=16, seed=5)
    x, yq = small_data.query.images[:16], small_data.query.labels[:16]
    tc, tl = trained["train_codes"], small_data.train.labels
    attacks = {
        "pgd_a": saat.attacks.PGD(model, steps=5, seed=1),
        "pgd_b": saat.attacks.PGD(other, steps=5, seed=1),
        "saat_a": saat.attacks.SAATAttack(model, tc, tl, steps=5),
        "center_b": saat.attacks.CenterAttack(other, saat.HashingModel("cnn-small", bits=16, seed=5).encode(
            small_data.train.images), tl, steps=5),
    }
    needs = {"saat_a", "center_b"}
    ref = {k: (a(x, yq) if k in needs else a(x)) for k, a in attacks.items()}
    results, errors = {}, []

    def work(k, rep):
        try:
            a = attacks[k]
            results[(k, rep)] = a(x, yq) if k in needs else a(x)
        except Exception as e:  # reported below
            errors.append((k, e))

    ts = [threading.Thread(target=work, args=(k, r)) for r in range(2) for k in attacks]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    assert len(results) == 2 * len(attacks)
    for (k, _), adv in results.items():
        np.testing.assert_array_equal(adv, ref[k])


# ---------------------------------------------------------------- Ctrl-C in a defence
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_stops_adversarial_training_within_a_second(small_data):
    m = saat.HashingModel("cnn-small", bits=16, seed=0)
    before = m.state_dict()
    x, y = small_data.train.images[:256], small_data.train.labels[:256]
    d = saat.defences.SAATTraining(m, epochs=1000, batch_size=32, steps=3)
    _interrupt_after(0.5)
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        d.fit(x, y, progress=False)
    assert time.perf_counter() - t0 < 1.5
    after = m.state_dict()
    assert all(np.isfinite(v).all() for v in after.values())
    assert any(not np.array_equal(before[k], after[k]) for k in before)   # it did train some batches
    assert not m.training
    assert m.encode(x[:4]).shape == (4, 16)


# ---------------------------------------------------------------- checkpoints
def _helper(*args, timeout=300):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    return subprocess.run([sys.executable, os.path.join(HERE, "ckpt_helper.py"), *map(str, args)], cwd=HERE,
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("kind", ["train", "saat"])
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted_run(kind, tmp_path):
    """A run killed with SIGKILL in epoch 2 (batch 7 of 10, after checkpoints at batches 3 and 6)
    and resumed in another process ends with exactly the weights of an uninterrupted run."""
    ckpt, killed, resumed, clean = (tmp_path / n for n in ("run.ckpt", "killed.npz", "resumed.npz", "clean.npz"))
    r = _helper(kind, ckpt, killed, "--kill-at", 7)
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr[-2000:])
    assert ckpt.exists() and not killed.exists()
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]   # no torn temp file left behind
    r = _helper(kind, ckpt, resumed, "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    r = _helper(kind, "-", clean)
    assert r.returncode == 0, r.stderr[-2000:]
    with np.load(resumed) as a, np.load(clean) as b:
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _checkpoint(tmp_path, small_data):
    x, y = small_data.train.images[:32], small_data.train.labels[:32]
    path = tmp_path / "c.ckpt"
    saat.train(saat.HashingModel("cnn-small", bits=8), x, y, epochs=1, batch_size=16, progress=False,
               checkpoint=path, checkpoint_every=1)
    return path, x, y


def test_truncated_checkpoint_raises_a_clear_error(tmp_path, small_data):
    path, x, y = _checkpoint(tmp_path, small_data)
    data = path.read_bytes()
    for cut in (0, 10, len(data) // 2, len(data) - 5):
        path.write_bytes(data[:cut])
        m = saat.HashingModel("cnn-small", bits=8)
        before = m.state_dict()
        with pytest.raises(ValueError, match=r"argument 'resume'.*(truncated or corrupted|not a readable)"):
            saat.train(m, x, y, epochs=1, batch_size=16, progress=False, resume=path)
        assert all(np.array_equal(before[k], v) for k, v in m.state_dict().items())


def test_corrupted_checkpoint_raises_a_clear_error(tmp_path, small_data):
    path, x, y = _checkpoint(tmp_path, small_data)
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    for trial in range(5):
        bad = bytearray(data)
        for i in rng.integers(64, len(bad) - 64, 32):
            bad[i] ^= 0xA5
        path.write_bytes(bytes(bad))
        with pytest.raises(ValueError, match="argument 'resume'"):
            saat.train(saat.HashingModel("cnn-small", bits=8), x, y, epochs=1, batch_size=16, progress=False,
                       resume=path)


def test_checkpoint_with_nan_weights_or_wrong_run_is_rejected(tmp_path, small_data):
    path, x, y = _checkpoint(tmp_path, small_data)
    with np.load(path) as z:
        d = {k: z[k] for k in z.files}
    wkey = next(k for k in d if k.startswith("model/"))
    d[wkey] = d[wkey].copy()
    d[wkey].flat[0] = np.nan
    np.savez(tmp_path / "nan.ckpt.npz", **d)
    m = saat.HashingModel("cnn-small", bits=8)
    before = m.state_dict()
    with pytest.raises(ValueError, match="argument 'resume'.*finite"):
        saat.train(m, x, y, epochs=1, batch_size=16, progress=False, resume=tmp_path / "nan.ckpt.npz")
    # an incomplete resume state given to the core directly (found by the fuzz: the message named
    # no argument)
    with pytest.raises(ValueError, match="argument 'resume'.*complete checkpoint"):
        saat._core.train("hashing", m._handle, x, y, {"epochs": 1, "batch_size": 16}, resume={})
    with pytest.raises(ValueError, match="argument 'resume'.*complete checkpoint"):
        saat._core.train("cgat", m._handle, x, y, {"epochs": 1, "batch_size": 16},
                         resume={"model/x": np.zeros(1, np.float32)})
    assert all(np.array_equal(before[k], v) for k, v in m.state_dict().items())
    with pytest.raises(ValueError, match="argument 'resume'.*epochs"):
        saat.train(m, x, y, epochs=3, batch_size=16, progress=False, resume=path)
    with pytest.raises(ValueError, match="argument 'resume'.*checkpoint of 'train:dpsh', expected 'saat:dpsh'"):
        saat.defences.SAATTraining(m, epochs=1, batch_size=16, steps=1).fit(x, y, progress=False, resume=path)


# ---------------------------------------------------------------- NaN policy
def test_nan_policy_inputs_raise_naming_the_argument():
    m = saat.HashingModel("cnn-small", bits=8, seed=0)
    x, y = _tiny(4)
    xn = x.copy()
    xn[1, 2, 3, 4] = np.nan
    xi = x.copy()
    xi[0, 0, 0, 0] = np.inf
    for bad in (xn, xi):
        for call in (lambda b: m.forward(b), lambda b: m.encode(b), lambda b: m.input_gradient(b, np.ones((4, 8))),
                     lambda b: saat.attacks.PGD(m, steps=1)(b), lambda b: saat.train(m, b, y, epochs=1, progress=False)):
            with pytest.raises(ValueError, match="argument '(x|images)'.*(NaN|finite)"):
                call(bad)
        with pytest.raises(ValueError, match="argument 'x'.*finite"):   # the core checks too
            saat._core.model_forward(m._handle, bad, np.empty((4, 8), np.float32))
    g = np.ones((4, 8), np.float32)
    g[0, 0] = np.nan
    with pytest.raises(ValueError, match="argument 'grad_out'"):
        m.input_gradient(x, g)
    with pytest.raises(ValueError, match="argument 'grad_out'"):
        saat._core.model_input_gradient(m._handle, x, g, np.empty_like(x))
    yn = y.copy()
    yn[0, 0] = np.nan
    with pytest.raises(ValueError, match="argument 'labels'"):
        saat.train(m, x, yn, epochs=1, progress=False)
    codes = np.ones((4, 8), np.float32)
    codes[0, 0] = np.nan
    with pytest.raises(ValueError, match="argument 'train_codes'"):
        saat.codes.mainstay(y, codes, y)
    with pytest.raises(ValueError, match="argument 'alpha'"):
        m.forward(x, alpha=float("nan"))
    with pytest.raises(ValueError, match="argument 'lr'"):
        saat.train(m, x, y, epochs=1, lr=float("inf"), progress=False)


def test_nan_policy_load_state_dict_rejects_and_keeps_the_weights():
    m = saat.HashingModel("cnn-small", bits=8, seed=0)
    before = m.state_dict()
    x, _ = _tiny(2)
    codes = m.encode(x)
    for v in (np.nan, np.inf, -np.inf):
        sd = {k: a.copy() for k, a in saat.HashingModel("cnn-small", bits=8, seed=1).state_dict().items()}
        last = list(sd)[-1]   # the last tensor: a non-atomic load would have changed the others
        sd[last].flat[0] = v
        with pytest.raises(ValueError, match=f"argument 'state'.*finite values in '{last}'"):
            m.load_state_dict(sd)
        with pytest.raises(ValueError, match=f"argument 'state'.*'{last}'"):
            saat._core.model_load_state_dict(m._handle, sd)
        assert all(np.array_equal(before[k], a) for k, a in m.state_dict().items())
        np.testing.assert_array_equal(m.encode(x), codes)


def test_nan_policy_diverged_training_raises_and_model_refuses_nan_outputs():
    m = saat.HashingModel("cnn-small", bits=8, seed=0)
    x, y = _tiny(16)
    # TrainingDiverged: a ValueError whose message still names 'lr' (code catching the old one works)
    assert issubclass(saat.TrainingDiverged, ValueError) and saat.TrainingDiverged is saat._core.TrainingDiverged
    with pytest.raises(saat.TrainingDiverged, match="^argument 'lr'.*finite"):
        saat.train(m, x, y, epochs=3, batch_size=4, lr=1e30, momentum=0.0, progress=False)
    weights_finite = all(np.isfinite(v).all() for v in m.state_dict().values())
    if weights_finite:   # stopped before any weight became non-finite: the model must still work
        assert set(np.unique(m.encode(x))) <= {-1, 1}
    else:
        # the core tracks the non-finite weights: every forward pass and attack names 'model'
        calls = [lambda: m.encode(x), lambda: m.forward(x), lambda: m.input_gradient(x, np.ones((16, 8), np.float32)),
                 lambda: saat._core.model_forward(m._handle, x, np.empty((16, 8), np.float32))]
        for name, inputs in [("pgd", None), ("hag", None), ("saat", {"train_codes": np.ones((16, 8), np.float32),
                                                                      "train_labels": y})]:
            handle, info = saat._core.attack_prepare(name, m._handle, inputs, {"steps": 1})
            labels = y if info["label_classes"] else None
            calls.append(lambda h=handle, labels=labels: saat._core.attack_run(h, m._handle, x, np.empty_like(x),
                                                                                 labels=labels))
        calls.append(lambda: saat.attacks.PGD(m, steps=1)(x))
        for call in calls:
            with pytest.raises(ValueError, match="^argument 'model'.*finite"):
                call()
    # a diverged model is recovered by loading finite weights
    m.load_state_dict(saat.HashingModel("cnn-small", bits=8, seed=0).state_dict())
    assert set(np.unique(m.encode(x))) <= {-1, 1}


def test_nan_policy_weights_made_non_finite_are_caught_at_forward():
    """Defence in depth: weights poisoned behind the API's back (a diverged optimiser) never give
    NaN outputs or arbitrary codes."""
    m = saat.HashingModel("cnn-small", bits=8, seed=0)
    x, _ = _tiny(2)
    raw = saat._core.model_state_dict(m._handle)
    # train with an absurd lr until the weights are non-finite
    xx, yy = _tiny(16)
    for _ in range(3):
        try:
            saat.train(m, xx, yy, epochs=1, batch_size=16, lr=1e38, momentum=0.0, weight_decay=0.0, progress=False)
        except saat.TrainingDiverged:
            pass
        if not all(np.isfinite(v).all() for v in m.state_dict().values()):
            break
    else:
        pytest.skip("could not make the weights non-finite through training")
    with pytest.raises(ValueError, match="^argument 'model'.*finite"):
        m.forward(x)
    with pytest.raises(ValueError, match="^argument 'model'.*finite"):
        m.input_gradient(x, np.ones((2, 8), np.float32))
    with pytest.raises(ValueError, match="^argument 'model'.*finite"):
        saat._core.model_input_gradient(m._handle, x, np.ones((2, 8), np.float32), np.empty_like(x))
    assert raw  # the state dict of the healthy model was readable


# ---------------------------------------------------------------- leaks over every entry point
def _rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def _malloc_in_use():
    """Bytes in use in glibc's malloc heap (Swift allocates through malloc): precise where RSS is
    page-granular. None when mallinfo2 is unavailable."""
    try:
        libc = ctypes.CDLL("libc.so.6")

        class MallInfo2(ctypes.Structure):
            _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                        "fsmblks", "uordblks", "fordblks", "keepcost")]
        libc.mallinfo2.restype = MallInfo2
        mi = libc.mallinfo2()
        return mi.uordblks + mi.hblkhd
    except (OSError, AttributeError):
        return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and mallinfo2")
def test_no_leak_over_100k_calls_of_every_core_entry_point():
    """Every saat._core entry point, success and error paths mixed, 100,000 calls in total:
    RSS and the malloc heap stay flat and the refcounts of the argument objects are unchanged.
    Measured in a fresh interpreter: in the full suite's process other libraries (torch, loaded
    by test_interop) add malloc noise of their own."""
    r = _run_py("import test_reliability as t; t._leak_check()", timeout=300)
    print(r.stdout.strip())
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    assert "leak test:" in r.stdout


def _leak_check():
    from saat import _core
    rng = np.random.default_rng(0)
    m = saat.HashingModel("cnn-small", bits=4, seed=0)
    h = m._handle
    x = rng.random((1, 3, 32, 32), dtype=np.float32)
    xo, fo, go = np.empty_like(x), np.empty((1, 4), np.float32), np.ones((1, 4), np.float32)
    bad_x = np.zeros((1, 3, 32, 31), np.float32)
    a = np.ones((2, 2), np.float32)
    c = np.empty((2, 2), np.float32)
    a64 = a.astype(np.float64)
    codes8 = np.where(rng.random((3, 4)) < 0.5, -1, 1).astype(np.int8)
    packed = np.empty((3, 1), np.uint64)
    dist = np.empty((3, 3), np.int32)
    lab8 = np.array([[1, 0], [0, 1], [1, 1]], np.uint8)
    ap, pr, rc, pn = np.empty(3), np.empty(100), np.empty(100), np.empty(1)
    nvec, rank = np.array([2], np.int64), np.empty((3, 2), np.int64)
    tc = codes8.astype(np.float32)
    tl = lab8.astype(np.float32)
    bad_tc = tc * 0.5
    sc = np.empty((3, 4), np.int8)
    u, grad, mem = rng.uniform(-1, 1, (3, 4)).astype(np.float32), np.empty((3, 4), np.float32), np.zeros((3, 4), np.float32)
    idx = np.arange(3, dtype=np.int64)
    mean, std = np.zeros(3, np.float32), np.ones(3, np.float32)
    state = {k: v.copy() for k, v in m.state_dict().items()}
    bad_state = dict(state, nope=np.zeros(1, np.float32))
    x3 = np.repeat(x, 3, axis=0)
    out3 = np.empty_like(x3)
    g3 = np.empty((3, 4), np.int8)
    ty = tl.copy()
    cx, cw, cb, co = (rng.random((1, 3, 5, 5), dtype=np.float32), rng.random((2, 3, 3, 3), dtype=np.float32),
                      np.zeros(2, np.float32), np.empty((1, 2, 3, 3), np.float32))
    # one prepared attack of every kind (THA: a 1-step prototype net of 2 label rows), 1 step each
    atk = dict(eps=0.03, step=0.01, steps=1)
    train_set, database = {"train_codes": tc, "train_labels": tl}, {"db_codes": tc, "db_labels": tl}
    specs = {"pgd": (None, atk), "saat": (train_set, atk), "center": (train_set, atk),
             "hag": (None, dict(eps=0.03, steps=1)), "sdha": (train_set, dict(eps=0.03, steps=1)),
             "dhta": (database, dict(atk, n_t=2)), "p2p": (database, atk),
             "tha": (database, dict(atk, prototype_steps=1, prototype_batch=2))}
    handles = {n: _core.attack_prepare(n, h, inputs, params)[0] for n, (inputs, params) in specs.items()}
    bad_inputs = {"train_codes": bad_tc, "train_labels": tl}
    csq = {"seed": 1}
    hashing = {"epochs": 1, "batch_size": 3}
    keep = [h, x, xo, fo, go, bad_x, a, c, a64, codes8, packed, dist, lab8, ap, pr, rc, pn, nvec, rank, tc, tl, bad_tc,
            sc, u, grad, mem, idx, mean, std, state, bad_state, x3, out3, g3, ty, cx, cw, cb, co, train_set, database,
            bad_inputs, csq, hashing, *handles.values()]

    def err(fn, *args, **kw):
        try:
            fn(*args, **kw)
        except (TypeError, ValueError):
            return
        raise AssertionError(f"{fn.__name__}: no error")

    # (weight, call): cheap calls many times, the costly ones (model_new, training, attacks) rarely;
    # error paths are cheap for every entry point.
    calls = [
        (400, lambda: _core.info()),
        (400, lambda: _core.set_blas_threads(1)),
        (400, lambda: err(_core.set_blas_threads, 0)),
        (400, lambda: _core.set_threads(0)),
        (400, lambda: err(_core.set_threads, -1)),
        (400, lambda: _core.sgemm(a, a, c)),
        (400, lambda: err(_core.sgemm, a, a64, c)),
        (100, lambda: _core.conv2d(cx, cw, cb, co, padding=0)),
        (400, lambda: err(_core.conv2d, cx, cw, cb, co, padding=-1)),
        (400, lambda: _core.pack_codes(codes8, packed)),
        (400, lambda: err(_core.pack_codes, tc, packed)),
        (400, lambda: _core.hamming_distances(codes8, codes8, dist)),
        (400, lambda: err(_core.hamming_distances, codes8, codes8[:, :3], dist)),
        (3, lambda: _core.model_new("cnn-small", 2)),
        (400, lambda: err(_core.model_new, "cnn-small", 0)),        # the 40-byte-per-call leak ASan found
        (400, lambda: err(_core.model_new, "resnet", 8)),
        (400, lambda: _core.model_info(h)),
        (400, lambda: err(_core.model_info, handles["pgd"])),
        (400, lambda: _core.model_set_mode(h, False)),
        (400, lambda: _core.model_set_normalisation(h, mean, std)),
        (400, lambda: err(_core.model_set_normalisation, h, mean, -std)),
        (40, lambda: _core.model_forward(h, x, fo)),
        (400, lambda: err(_core.model_forward, h, bad_x, fo)),
        (20, lambda: _core.model_input_gradient(h, x, go, xo)),
        (400, lambda: err(_core.model_input_gradient, h, x, go[:, :2], xo)),
        (10, lambda: _core.model_state_dict(h)),
        (10, lambda: _core.model_load_state_dict(h, state)),
        (400, lambda: err(_core.model_load_state_dict, h, bad_state)),
        (400, lambda: _core.hash_loss("dpsh", u, tl, idx, tl, mem, grad)),
        (400, lambda: _core.hash_loss("csq", u, tl, idx, tl, mem, grad, csq)),
        (400, lambda: err(_core.hash_loss, "nope", u, tl, idx, tl, mem, grad)),
        (400, lambda: err(_core.hash_loss, "dpsh", u, tl, idx, tl, mem, grad, csq)),
        (400, lambda: err(_core.hash_loss, "csq", u, tl, idx, tl, mem, grad, {"seed": -1})),
        (400, lambda: _core.map_at_k(codes8, codes8, lab8, lab8, 2, ap_out=ap)),
        (400, lambda: err(_core.map_at_k, codes8, codes8, lab8, lab8, 0)),
        (400, lambda: _core.pr_curve(codes8, codes8, lab8, lab8, pr, rc)),
        (400, lambda: err(_core.pr_curve, codes8, codes8, lab8, lab8, pr[:5], rc)),
        (400, lambda: _core.precision_at_n(codes8, codes8, lab8, lab8, nvec, pn)),
        (400, lambda: err(_core.precision_at_n, codes8, codes8, lab8, lab8, -nvec, pn)),
        (400, lambda: _core.hamming_rank(codes8, codes8, 2, rank)),
        (400, lambda: err(_core.hamming_rank, codes8, codes8, 2, rank[:, :1])),
        (400, lambda: _core.semantic_codes("mainstay", tl, tc, tl, sc)),
        (400, lambda: err(_core.semantic_codes, "mainstay", tl, bad_tc, tl, sc)),
        (200, lambda: _core.schemas()),
        (400, lambda: err(_core.schemas, 1)),
        (400, lambda: _core.resolve("attack", "tha", atk)),
        (400, lambda: _core.resolve("defence", "saat", hashing)),
        (400, lambda: err(_core.resolve, "attack", "pgd", {"steps": 0})),
        (400, lambda: err(_core.resolve, "attack", "hag", {"seed": 0})),
        (400, lambda: err(_core.resolve, "attack", "nope")),
        (5, lambda: _core.attack_prepare("pgd", h, None, atk)),
        (5, lambda: _core.attack_prepare("saat", h, train_set, atk)),
        (5, lambda: _core.attack_prepare("dhta", h, database, specs["dhta"][1])),
        (3, lambda: _core.attack_prepare("tha", h, database, specs["tha"][1])),
        (400, lambda: err(_core.attack_prepare, "pgd", h, None, {"eps": 2.0})),
        (400, lambda: err(_core.attack_prepare, "center", h, bad_inputs, atk)),
        (400, lambda: err(_core.attack_prepare, "sdha", h, train_set, {"n_t": 2})),
        (400, lambda: err(_core.attack_prepare, "p2p", h, {"db_codes": tc}, atk)),
        (400, lambda: err(_core.attack_prepare, "tha", h, database, {"prototype_batch": 0})),
        (400, lambda: err(_core.attack_prepare, "nope", h)),
        (5, lambda: _core.attack_run(handles["pgd"], h, x3, out3)),
        (5, lambda: _core.attack_run(handles["hag"], h, x3, out3)),
        (5, lambda: _core.attack_run(handles["saat"], h, x3, out3, labels=ty, guide_out=g3)),
        (5, lambda: _core.attack_run(handles["center"], h, x3, out3, labels=ty)),
        (5, lambda: _core.attack_run(handles["sdha"], h, x3, out3, labels=ty)),
        (5, lambda: _core.attack_run(handles["dhta"], h, x3, out3, labels=ty, guide_out=g3)),
        (5, lambda: _core.attack_run(handles["p2p"], h, x3, out3, labels=ty)),
        (5, lambda: _core.attack_run(handles["tha"], h, x3, out3, labels=ty, guide_out=g3)),
        (400, lambda: err(_core.attack_run, handles["saat"], h, x3, out3, labels=ty[:, :1])),
        (400, lambda: err(_core.attack_run, handles["dhta"], h, x3, out3)),
        (400, lambda: err(_core.attack_run, handles["pgd"], h, x3 * 2, out3)),
        (400, lambda: err(_core.attack_run, h, h, x3, out3)),
        (2, lambda: _core.train("hashing", h, x3, ty, hashing)),
        (1, lambda: _core.train("cgat", h, x3, ty, dict(hashing, steps=1))),
        (1, lambda: _core.train("saat", h, x3, ty, dict(hashing, steps=1))),
        # (ATRDH's training is left out of this loop: its prototype net's ~40 MB of weights and Adam
        # state, freed at the end of each run, stay in glibc's arenas and move RSS by that much
        # at random while the malloc heap stays flat; test_defences runs ATRDH.)
        (400, lambda: err(_core.train, "atrdh", h, x3, ty, dict(hashing, adv_weight=-1.0))),
        (400, lambda: err(_core.train, "hashing", h, x3, ty * 2, hashing)),
        (400, lambda: err(_core.train, "nope", h, x3, ty, hashing)),
        (400, lambda: err(_core.train, "saat", h, x3, ty, dict(hashing, steps=1001))),
        (400, lambda: err(_core.train, "hashing", h, x3, ty, dict(hashing, no_such_param=1))),
    ]
    names = {n for n in dir(_core) if not n.startswith("_")}
    per_round = sum(w for w, _ in calls)

    def run(rounds):
        for _ in range(rounds):
            for w, f in calls:
                for _ in range(w):
                    f()

    # Warm-up of libdispatch's per-thread continuation cache of the kernels' worker threads, which
    # fills over the first few thousand parallel splits (~170-190 KB in all, then flat: measured
    # with forward and PGD loops; 0 B with set_threads(1)): forwards of a 4-image batch (it is
    # split over the threads; 1 image is not) until 500 more leave the heap within 4 KB. A leak
    # keeps growing through the measured rounds.
    xw, fw = rng.random((4, 3, 32, 32), dtype=np.float32), np.empty((4, 4), np.float32)
    last = _malloc_in_use()
    for _ in range(40):
        for _ in range(500):
            _core.model_forward(h, xw, fw)
        now = _malloc_in_use()
        if last is not None and now is not None and abs(now - last) < 4096:
            break
        last = now
    # Then one round, so that the model's caches (sized by the last call's batch) are the same
    # at both snapshots: caches, BLAS buffers, first-call allocations.
    run(1)
    gc.collect()
    refs = [sys.getrefcount(o) for o in keep]
    rss0, heap0 = _rss_kib(), _malloc_in_use()
    t0 = time.perf_counter()
    rounds = -(-100_000 // per_round)
    run(rounds)
    dt = time.perf_counter() - t0
    gc.collect()
    rss1, heap1 = _rss_kib(), _malloc_in_use()
    total = rounds * per_round
    print(f"\nleak test: {total} calls of {len(names)} entry points in {dt:.1f} s; RSS {rss0} -> {rss1} KiB; "
          f"malloc heap {heap0} -> {heap1} bytes")
    assert total >= 100_000
    assert [sys.getrefcount(o) for o in keep] == refs
    assert rss1 - rss0 < 8_000, (rss0, rss1)            # KiB
    if heap0 is not None:
        assert heap1 - heap0 < 100_000, (heap0, heap1)  # bytes: the 40 B × 11.6k calls leak ASan found would show


# ---------------------------------------------------------------- malformed list files
# (tests/test_datasets.py covers missing/unreadable images, label width, non-0/1 values, line
# counts, blank lines; these add the cases it does not have)
def _list_root(tmp_path, n_ok=2):
    from PIL import Image
    (tmp_path / "img").mkdir()
    for i in range(n_ok):
        Image.fromarray(np.full((12, 10, 3), 40 * i, np.uint8)).save(tmp_path / "img" / f"{i}.png")
    return tmp_path


def _write_pair(root, imgs, labels):
    (root / "s_img.txt").write_text("".join(i + "\n" for i in imgs))
    (root / "s_label.txt").write_text("".join(l + "\n" for l in labels))
    return str(root / "s_img.txt"), str(root / "s_label.txt")


def _assert_names(excinfo, file, line):
    msg = str(excinfo.value)
    assert file in msg and f"line {line}" in msg, msg


def test_truncated_image_names_the_list_file_and_line(tmp_path):
    root = _list_root(tmp_path)
    data = (root / "img" / "1.png").read_bytes()
    (root / "img" / "cut.png").write_bytes(data[: len(data) // 2])
    img, _ = _write_pair(root, ["img/0.png", "img/cut.png"], ["1 0", "0 1"])
    with pytest.raises(saat.datasets.DataFormatError) as ei:
        saat.datasets.load_list_split(str(root), "s", 8, 8)
    _assert_names(ei, img, 2)


def test_directory_instead_of_image_names_the_list_file_and_line(tmp_path):
    root = _list_root(tmp_path)
    (root / "img" / "dir.png").mkdir()
    img, _ = _write_pair(root, ["img/dir.png", "img/0.png"], ["1 0", "0 1"])
    with pytest.raises(FileNotFoundError) as ei:
        saat.datasets.load_list_split(str(root), "s", 8, 8)
    _assert_names(ei, img, 1)


@pytest.mark.parametrize("token", ["nan", "inf", "-0.5", "1e3", "0x1", "one"])
def test_non_binary_label_tokens_name_the_file_and_line(tmp_path, token):
    root = _list_root(tmp_path)
    _, lab = _write_pair(root, ["img/0.png", "img/1.png"], ["1 0", f"0 {token}"])
    with pytest.raises(saat.datasets.DataFormatError) as ei:
        saat.datasets.load_list_split(str(root), "s", 8, 8)
    _assert_names(ei, lab, 2)
    assert repr(token) in str(ei.value)


def test_deephash_list_label_width_and_values_name_the_line(tmp_path):
    root = _list_root(tmp_path)
    lst = root / "l.txt"
    lst.write_text("img/0.png 1 0 1\nimg/1.png 1 0\n")
    with pytest.raises(saat.datasets.DataFormatError) as ei:
        saat.datasets.load_deephash_list(str(lst), str(root), 8, 8)
    _assert_names(ei, str(lst), 2)
    lst.write_text("img/0.png 1 0\nimg/1.png 2 0\n")
    with pytest.raises(saat.datasets.DataFormatError) as ei:
        saat.datasets.load_deephash_list(str(lst), str(root), 8, 8)
    _assert_names(ei, str(lst), 2)
    lst.write_text("img/0.png 1 0\nimg/missing.png 1 0\n")
    with pytest.raises(FileNotFoundError) as ei:
        saat.datasets.load_deephash_list(str(lst), str(root), 8, 8)
    _assert_names(ei, str(lst), 2)


def test_concurrent_saves_to_one_path_leave_a_valid_file(tmp_path):
    """save() writes through a uniquely named temp file and an atomic rename: writers racing on one
    path never interleave (the file loads as one of the models) and leave no temp file behind."""
    a = saat.HashingModel("cnn-small", bits=8, seed=1)
    b = saat.HashingModel("cnn-small", bits=8, seed=2)
    path = tmp_path / "m.npz"
    errors = []

    def work(m):
        try:
            for _ in range(10):
                m.save(path)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(m,)) for m in (a, b)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    loaded = saat.HashingModel.load(path).state_dict()
    w = loaded["hash_layer.weight"]
    assert any(np.array_equal(w, m.state_dict()["hash_layer.weight"]) for m in (a, b))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]
