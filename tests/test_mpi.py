"""Data-parallel training over MPI (``comm=`` of saat.train and the defences' fit, and
``mpiexec -n 2 python -m saat train|defend``), run as a user would: a helper script under
``mpiexec -n 2`` and the same script in one process, compared weight by weight.

What is claimed (saat.train's docstring, saat.distributed): every rank ends with bitwise the same
weights; those equal one process's with the same global batch_size up to the rounding of sums
over the batch (the gradient of a batch is summed in another order: per rank, then Allreduce);
only rank 0 writes checkpoints; resume continues a run exactly.

Every subprocess gets a timeout: a rank waiting in a collective that its peer never joins would
otherwise hang the suite. Under MPICH's mpiexec every rank runs in its own session, so on a
timeout mpiexec itself is asked to clean up (SIGTERM), and what is left is killed by pid.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason="data-parallel training needs mpi4py (pip install 'saat[mpi]')")

import saat  # noqa: E402


def _find_mpiexec():
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")   # the mpich wheel's, in the venv
    if os.path.isfile(here) and os.access(here, os.X_OK):
        return here
    return shutil.which("mpiexec")


MPIEXEC = _find_mpiexec()
needs_mpiexec = pytest.mark.skipif(MPIEXEC is None, reason="mpiexec not found next to sys.executable nor on PATH "
                                                           "(pip install 'saat[mpi]' brings the mpich wheel's)")

# Relative tolerance ‖w_P − w_1‖ / ‖w_1‖ of a tensor trained on 2 ranks vs 1 process: the
# gradients are float32 sums over the batch in another order; measured ≤ 1.4e-7 here (clean
# training, SAAT, CgAT, ATRDH on cnn-small); 1e-5 leaves two orders of magnitude of margin and is
# still far below what training moves the weights (checked against CHANGED below).
WEIGHT_RTOL = 1e-5
# Per-epoch mean losses are computed from the gathered outputs of the whole batch (identical
# formulas on every rank), so they differ from one process's only through the weights: ≤ 1.3e-9.
HISTORY_RTOL = 1e-6
# The smallest relative change ‖w_end − w_0‖ / ‖w_0‖ of a whole model by its training that makes
# the comparison meaningful: 100 × WEIGHT_RTOL (measured 3.5e-3 for ATRDH, Adam at lr 1e-4 for one
# epoch, to 5e-2 for SAAT).
CHANGED = 100 * WEIGHT_RTOL

# The same tiny mosaic everywhere: 96 training images = 3 batches of 32.
DATA = dict(n_train=96, n_database=200, n_query=8, seed=0)

HELPER = textwrap.dedent('''
    """test_mpi.py's helper: python helper.py MODE OUT, under mpiexec -n P or in one process.
    Every rank writes its own files (stdout of several ranks interleaves under mpiexec)."""
    import json, os, sys
    import numpy as np
    import saat
    from mpi4py import MPI

    MODE, OUT = sys.argv[1], sys.argv[2]
    WORLD = MPI.COMM_WORLD
    RANK, SIZE = WORLD.Get_rank(), WORLD.Get_size()
    COMM = WORLD if SIZE > 1 else None          # one process: the plain path, comm=None
    saat.kernels.set_threads(1)                 # one kernel thread per rank: 2 ranks on 2 cores
    D = saat.datasets.mosaic(**json.loads(sys.argv[3]))
    X, Y = D.train.images, D.train.labels
    report = {}


    def fresh(seed=0):
        return saat.HashingModel("cnn-small", bits=16, seed=seed)


    def save(name, model, history):
        np.savez(os.path.join(OUT, f"{name}-rank{RANK}.npz"), __history__=np.asarray(history, np.float64),
                 **model.state_dict())


    def ck(name):
        # a per-rank path, so a file written by rank 1 would show
        return os.path.join(OUT, f"{name}-ck-rank{RANK}.npz")


    def stopper(n):
        calls = []

        def progress(epoch, batch, batches, loss, lr):
            calls.append([epoch, batch])
            return len(calls) < n       # False after the n-th batch stops the run
        return progress, calls


    def fit(kind, model, **kw):
        if kind == "train":
            return saat.train(model, X, Y, epochs=2, batch_size=32, seed=0, comm=COMM, **kw).history
        d = saat.defences.SAATTraining(model, epochs=2, batch_size=32, seed=0, steps=2)
        return d.fit(X, Y, comm=COMM, **kw).history


    if MODE == "compare":
        for case in json.loads(sys.argv[4]):
            m = fresh()
            if case.startswith("train"):    # trainB: batch_size B; trainB-world1: comm=WORLD of size 1
                comm = WORLD if case.endswith("-world1") else COMM
                h = saat.train(m, X, Y, epochs=2, batch_size=int(case[5:].split("-")[0]), seed=0, progress=False,
                               comm=comm).history
            else:
                h = saat.defences.DEFENCES[case](m, epochs=1, batch_size=32, seed=0, steps=2).fit(
                    X, Y, progress=False, comm=COMM).history
            save(case, m, h)

    elif MODE == "ckpt":
        for kind in ("train", "saat"):
            m = fresh()
            save(f"{kind}-full", m, fit(kind, m, progress=False, checkpoint=ck(f"{kind}-full"), checkpoint_every=2))
            # stop after the 5th of 6 batches: the last checkpoint is mid-epoch 1 (after batch 2 of 3)
            progress, calls = stopper(5)
            m = fresh()
            try:
                fit(kind, m, progress=progress, checkpoint=ck(f"{kind}-stop"), checkpoint_every=2)
                report[f"{kind}-stop"] = "not stopped"
            except KeyboardInterrupt:
                report[f"{kind}-stop"] = calls[-1]
            WORLD.Barrier()             # rank 0 has written the checkpoint every rank resumes from
            m = fresh(seed=99)          # other initial weights: everything must come from the checkpoint
            h = fit(kind, m, progress=False, resume=os.path.join(OUT, f"{kind}-stop-ck-rank0.npz"),
                    checkpoint=ck(f"{kind}-resumed"), checkpoint_every=2)
            save(f"{kind}-resumed", m, h)

    elif MODE == "mismatch":
        x2 = X.copy()
        x2.flat[5] = 1.0 if X.flat[5] < 0.5 else 0.0     # one pixel
        assert not np.array_equal(np.roll(Y, 1, axis=0), Y)
        other = {"labels": dict(labels=np.roll(Y, 1, axis=0)),
                 "images": dict(images=x2),
                 "rows": dict(images=X[:95], labels=Y[:95]),
                 "lr": dict(lr=0.02),
                 "model": dict(seed=1)}
        for case, kw in other.items():
            args = dict(images=X, labels=Y, lr=0.01, seed=0)
            if RANK == 1:
                args.update(kw)
            m = fresh(args["seed"])
            try:
                saat.train(m, args["images"], args["labels"], lr=args["lr"], epochs=1, batch_size=32, seed=0,
                           progress=False, comm=COMM)
                report[case] = "no error"
            except (ValueError, TypeError) as e:
                report[case] = f"{type(e).__name__}: {e}"
            report[case + "-weights"] = [float(np.abs(v).sum()) for v in m.state_dict().values()]

    elif MODE == "killrun":
        # a slow run (0.3 s per batch) that the test kills with SIGKILL once a checkpoint exists
        import time

        def slow(epoch, batch, batches, loss, lr):
            time.sleep(0.3)
        fit("train", fresh(), progress=slow, checkpoint=os.path.join(OUT, "kill-ck.npz"), checkpoint_every=1)

    elif MODE == "killresume":
        m = fresh(seed=99)
        h = fit("train", m, progress=False, resume=os.path.join(OUT, "kill-ck.npz"))
        save("train-killresumed", m, h)

    elif MODE == "ckfail":
        # rank 0 cannot write its checkpoint: rank 0 raises; rank 1 must not wait for it forever
        m = fresh()
        try:
            saat.train(m, X, Y, epochs=2, batch_size=32, seed=0, progress=False, comm=COMM,
                       checkpoint=os.path.join(OUT, "no-such-folder", "ck.npz"), checkpoint_every=1)
            report["ckfail"] = "no error"
        except Exception as e:
            report["ckfail"] = f"{type(e).__name__}: {e}"

    with open(os.path.join(OUT, f"report-{MODE}-rank{RANK}.json"), "w") as f:
        json.dump(report, f)
''')


def _stat(pid):
    """(parent pid, start time) of a process from /proc, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[1]), int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _descendants(pid):
    """(pid, start time) of every process below ``pid`` (empty where /proc is missing)."""
    children = {}
    for d in os.listdir("/proc") if os.path.isdir("/proc") else []:
        st = _stat(d) if d.isdigit() else None
        if st is not None:
            children.setdefault(st[0], []).append((int(d), st[1]))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c[0])
    return out


def _kill_still_ours(processes):
    """SIGKILL every (pid, start time) of ``processes`` that is still the same process (same
    start time: not a pid reused since)."""
    for pid, started in processes:
        st = _stat(pid)
        if st is not None and st[1] == started:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def run(args, timeout, cwd=None, check=True):
    """Run a command; on a timeout, mpiexec is asked to clean up its ranks (SIGTERM) and
    whatever remains of the processes it started is killed by pid, then the test fails."""
    t0 = time.perf_counter()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
    try:
        out, err = p.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    if timed_out:
        below = _descendants(p.pid)
        p.send_signal(signal.SIGTERM)
        try:
            out, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        _kill_still_ours(below)
        pytest.fail(f"{' '.join(map(str, args))} did not finish within {timeout} s (a rank waiting in a collective?)\n"
                    f"stdout: {out[-2000:]}\nstderr: {err[-2000:]}")
    if check:
        assert p.returncode == 0, (f"exit {p.returncode} after {time.perf_counter() - t0:.1f} s\n"
                                   f"{out[-2000:]}\n{err[-3000:]}")
    return p.returncode, out, err


def helper(out, mode, ranks, cases=(), timeout=120):
    """Run the helper script in ``mode`` with ``ranks`` processes (1: without mpiexec)."""
    script = out / "helper.py"
    script.write_text(HELPER)
    cmd = [sys.executable, str(script), mode, str(out), json.dumps(DATA), json.dumps(list(cases))]
    if ranks > 1:
        cmd = [MPIEXEC, "-n", str(ranks), *cmd]
    run(cmd, timeout=timeout)
    return [json.loads((out / f"report-{mode}-rank{r}.json").read_text()) for r in range(ranks)]


def load(out, name, rank):
    with np.load(out / f"{name}-rank{rank}.npz") as z:
        d = {k: z[k] for k in z.files}
    return d.pop("__history__"), d


def rel(a, b):
    """‖a − b‖ / ‖b‖ (b = the one-process reference; a zero reference compares absolutely)."""
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def whole(state):
    return np.concatenate([v.ravel() for v in state.values()])


def initial_state():
    return saat.HashingModel("cnn-small", bits=16, seed=0).state_dict()


# trainB: saat.train with batch_size B on 96 images (32: 3 batches split 16/16; 30: 3 x 30 + 6;
# 19: 5 x 19 + 1, so rank 1 has no row of the last batch); the defences with batch_size 32.
CASES = ["train32", "train30", "saat", "cgat", "atrdh"]


@pytest.fixture(scope="module")
def compare_runs(tmp_path_factory):
    """The "compare" runs: once under mpiexec -n 2, once in one process (with the references of
    the other tests too)."""
    dirs = {r: tmp_path_factory.mktemp(f"compare{r}") for r in (1, 2)}
    helper(dirs[1], "compare", 1, CASES + ["train19", "train32-world1"])
    helper(dirs[2], "compare", 2, CASES)
    return dirs


def check_two_ranks_match_one_process(name, two, one):
    h0, w0 = load(two, name, 0)
    h1, w1 = load(two, name, 1)
    hs, ws = load(one, name, 0)
    assert list(w0) == list(ws)
    for k in ws:
        # the ranks take the same optimiser step from the same summed gradient: bitwise equal
        np.testing.assert_array_equal(w0[k], w1[k], err_msg=f"{name} {k}: rank 0 vs rank 1")
        assert rel(w0[k], ws[k]) <= WEIGHT_RTOL, (name, k, rel(w0[k], ws[k]))
    np.testing.assert_array_equal(h0, h1)
    assert len(h0) == len(hs) and np.all(np.abs(h0 - hs) <= HISTORY_RTOL * np.abs(hs)), (name, h0, hs)
    # training moved the weights well beyond the tolerance (the comparison is not of two no-ops)
    init = whole(initial_state())
    assert rel(whole(ws), init) > CHANGED and rel(whole(w0), init) > CHANGED, (name, rel(whole(ws), init))


@needs_mpiexec
@pytest.mark.parametrize("name", CASES)
def test_two_ranks_match_one_process(name, compare_runs):
    check_two_ranks_match_one_process(name, compare_runs[2], compare_runs[1])


@needs_mpiexec
def test_a_rank_with_no_row_of_a_batch(tmp_path, compare_runs):
    """96 images in batches of 19: the last batch has 1 image, so rank 1 computes no row of it and
    must still take part in the collectives. The timeout is 20 s: a healthy run takes ≈ 3 s."""
    helper(tmp_path, "compare", 2, ["train19"], timeout=20)
    check_two_ranks_match_one_process("train19", tmp_path, compare_runs[1])


@needs_mpiexec
def test_size_one_communicator_is_the_plain_path(compare_runs):
    """comm=MPI.COMM_WORLD in a lone process (size 1) does no collectives: bitwise comm=None."""
    h, w = load(compare_runs[1], "train32-world1", 0)
    hs, ws = load(compare_runs[1], "train32", 0)
    np.testing.assert_array_equal(h, hs)
    for k in ws:
        np.testing.assert_array_equal(w[k], ws[k])


@pytest.fixture(scope="module")
def ckpt_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    return out, helper(out, "ckpt", 2)


@needs_mpiexec
@pytest.mark.parametrize("kind", ["train", "saat"])
def test_checkpoint_resume_under_mpi(kind, ckpt_run):
    out, reports = ckpt_run
    # every rank stopped after the same (5th) batch: epoch 1, batch 1 (3 batches per epoch)
    assert [r[f"{kind}-stop"] for r in reports] == [[1, 1], [1, 1]]
    # only rank 0 wrote checkpoints (each rank was given its own path), and no temp file is left
    for name in ("full", "stop", "resumed"):
        assert (out / f"{kind}-{name}-ck-rank0.npz").exists()
        assert not (out / f"{kind}-{name}-ck-rank1.npz").exists()
    assert not list(out.glob("*.tmp"))
    # the stopped run's checkpoint is the one written mid-epoch 1, after its 2nd batch
    with np.load(out / f"{kind}-stop-ck-rank0.npz") as z:
        assert z["loop/position"][:2].tolist() == [1.0, 2.0]
    hf, wf = load(out, f"{kind}-full", 0)
    for rank in (0, 1):
        hr, wr = load(out, f"{kind}-resumed", rank)
        np.testing.assert_array_equal(hr, hf)
        for k in wf:
            # same ranks, same collectives, same state: the resumed run equals the uninterrupted one bitwise
            np.testing.assert_array_equal(wr[k], wf[k], err_msg=f"{kind} {k}: rank {rank} resumed vs uninterrupted")


@needs_mpiexec
def test_mpi_run_killed_by_sigkill_resumes_to_the_same_weights(ckpt_run):
    """SIGKILL the whole 2-rank job (mpiexec and every rank) once its checkpoint holds a position
    past the first batch; a new 2-rank job resuming from that file ends with the weights and
    history of the uninterrupted run (ckpt_run's train-full), bit for bit."""
    out, _ = ckpt_run
    script = out / "helper.py"
    cmd = [MPIEXEC, "-n", "2", sys.executable, str(script), "killrun", str(out), json.dumps(DATA), "[]"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ck = out / "kill-ck.npz"
    position = None
    deadline = time.time() + 90
    try:
        while time.time() < deadline and p.poll() is None:
            if ck.exists():
                try:
                    with np.load(ck) as z:
                        position = z["loop/position"][:2].tolist()
                except (OSError, ValueError, KeyError):
                    position = None
                if position is not None and position != [0.0, 1.0]:
                    break
            time.sleep(0.05)
        assert p.poll() is None, "the run ended before it could be killed"
    finally:
        below = _descendants(p.pid)
        os.killpg(p.pid, signal.SIGKILL)
        _kill_still_ours(below)
        p.wait(30)
    assert position is not None and position != [0.0, 1.0], position
    helper(out, "killresume", 2)
    hf, wf = load(out, "train-full", 0)
    for rank in (0, 1):
        hr, wr = load(out, "train-killresumed", rank)
        np.testing.assert_array_equal(hr, hf)
        for k in wf:
            np.testing.assert_array_equal(wr[k], wf[k], err_msg=f"{k}: rank {rank} resumed after SIGKILL")


@needs_mpiexec
def test_mpi_checkpoint_resumes_in_one_process(ckpt_run):
    """A checkpoint written by a 2-rank run holds no per-rank state: one process resumes it and
    ends where the 2-rank run ended, up to rounding (the last batch's sums in another order)."""
    out, _ = ckpt_run
    d = saat.datasets.mosaic(**DATA)
    m = saat.HashingModel("cnn-small", bits=16, seed=99)
    h = saat.train(m, d.train.images, d.train.labels, epochs=2, batch_size=32, seed=0, progress=False,
                   resume=out / "train-stop-ck-rank0.npz").history
    hf, wf = load(out, "train-full", 0)
    assert np.all(np.abs(np.asarray(h) - hf) <= HISTORY_RTOL * np.abs(hf)), (h, hf)
    for k, v in m.state_dict().items():
        assert rel(v, wf[k]) <= WEIGHT_RTOL, (k, rel(v, wf[k]))


SMALL = ["--n-train", str(DATA["n_train"]), "--n-database", str(DATA["n_database"]), "--n-query", str(DATA["n_query"])]


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """python -m saat train, then defend (SAAT) on the trained model, with 2 ranks and with 1."""
    res = {}
    for ranks in (1, 2):
        out = tmp_path_factory.mktemp(f"cli{ranks}")
        pre = [MPIEXEC, "-n", str(ranks)] if ranks > 1 else []
        _, text, _ = run([*pre, sys.executable, "-m", "saat", "train", *SMALL, "--epochs", "1", "--bits", "16",
                          "--k", "100", "--out", str(out / "train")], timeout=120)
        # both defend runs start from the one-process model, so they compare the defence alone
        start = res[1][0] if ranks > 1 else out
        _, dtext, _ = run([*pre, sys.executable, "-m", "saat", "defend", *SMALL, "--model",
                           str(start / "train" / "cnn-small-dpsh-16.npz"), "--defence", "saat", "--epochs", "1",
                           "--steps", "2", "--out", str(out / "defend")], timeout=120)
        res[ranks] = out, text, dtext
    return res


@needs_mpiexec
@pytest.mark.parametrize("cmd,name", [("train", "cnn-small-dpsh-16.npz"), ("defend", "cnn-small-dpsh-16-saat.npz")])
def test_cli_under_mpiexec(cmd, name, cli_runs):
    out2, text2, dtext2 = cli_runs[2]
    out1, _, _ = cli_runs[1]
    printed = text2 if cmd == "train" else dtext2
    # rank 0 alone saves and prints: one line naming the file, one file in the folder
    assert printed.count("saved") == 1 and name in printed, printed
    assert sorted(p.name for p in (out2 / cmd).iterdir()) == [name]
    w2 = saat.HashingModel.load(out2 / cmd / name).state_dict()
    w1 = saat.HashingModel.load(out1 / cmd / name).state_dict()
    for k in w1:
        assert rel(w2[k], w1[k]) <= WEIGHT_RTOL, (cmd, k, rel(w2[k], w1[k]))
    start = out1 / "train" / "cnn-small-dpsh-16.npz"   # what defend started from (both runs)
    before = whole(initial_state() if cmd == "train" else saat.HashingModel.load(start).state_dict())
    assert rel(whole(w1), before) > CHANGED


def test_comm_must_be_an_mpi4py_communicator():
    """In a subprocess: importing mpi4py.MPI initialises MPI, which the shared pytest process
    should not do. The check comes before any training: the model is untouched."""
    code = textwrap.dedent("""
        import numpy as np, saat
        from mpi4py import MPI
        d = saat.datasets.mosaic(n_train=16, n_database=20, n_query=2, seed=0)
        for comm, exc in ((object(), TypeError), ("COMM_WORLD", TypeError), (MPI.COMM_NULL, ValueError)):
            m = saat.HashingModel("cnn-small", bits=8, seed=0)
            w = m.state_dict()
            for call in (lambda: saat.train(m, d.train.images, d.train.labels, epochs=1, progress=False, comm=comm),
                         lambda: saat.defences.CgATTraining(m, epochs=1, steps=1).fit(d.train.images, d.train.labels,
                                                                                       progress=False, comm=comm)):
                try:
                    call()
                    print("no error")
                except exc as e:
                    print(type(e).__name__, str(e).split(":")[0])
            print("unchanged", all(np.array_equal(v, w[k]) for k, v in m.state_dict().items()))
    """)
    _, out, _ = run([sys.executable, "-c", code], timeout=60)
    assert out.split("\n") == ["TypeError argument 'comm'"] * 2 + ["unchanged True"] \
        + ["TypeError argument 'comm'"] * 2 + ["unchanged True"] \
        + ["ValueError argument 'comm'"] * 2 + ["unchanged True", ""], out


@pytest.fixture(scope="module")
def mismatch_run(tmp_path_factory):
    return helper(tmp_path_factory.mktemp("mismatch"), "mismatch", 2)


@needs_mpiexec
@pytest.mark.parametrize("case,argument", [("labels", "labels"), ("images", "images"), ("rows", "images"),
                                           ("lr", "params")])
def test_ranks_given_different_inputs_all_raise(case, argument, mismatch_run):
    """Rank 1 is given other labels / pixels / a shorter training set / another lr: every rank
    raises ValueError naming the argument (none goes on to wait in a collective) before training."""
    for rank, report in enumerate(mismatch_run):
        assert report[case].startswith(f"ValueError: argument '{argument}'"), (rank, report[case])
        assert "every rank" in report[case]
    init = [float(np.abs(v).sum()) for v in initial_state().values()]
    assert mismatch_run[0][case + "-weights"] == init


@needs_mpiexec
def test_ranks_given_different_models_raise(mismatch_run):
    """Rank 1's model has other initial weights (seed=1, e.g. a checkpoint loaded on rank 0 only):
    as for the arrays, every rank should raise ValueError naming 'model' instead of ending with
    other weights than its peers."""
    for rank, report in enumerate(mismatch_run):
        assert report["model"].startswith("ValueError: argument 'model'"), (rank, report["model"])


@needs_mpiexec
def test_failing_checkpoint_write_on_rank_0_stops_every_rank(tmp_path):
    """Rank 0 cannot write its checkpoint (missing folder): rank 0 raises the OSError, and rank 1
    must stop too (with some error) rather than wait for rank 0 in the next batch's collective.
    The timeout is 20 s: a healthy run of this takes ≈ 3 s."""
    script = tmp_path / "helper.py"
    script.write_text(HELPER)
    run([MPIEXEC, "-n", "2", sys.executable, str(script), "ckfail", str(tmp_path), json.dumps(DATA)], timeout=20,
        check=False)
    reports = [json.loads((tmp_path / f"report-ckfail-rank{r}.json").read_text()) for r in (0, 1)]
    assert reports[0]["ckfail"].startswith(("FileNotFoundError", "OSError")), reports
    assert reports[1]["ckfail"] != "no error", reports
