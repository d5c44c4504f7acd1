"""One source of truth: every public signature, default and parameter doc comes from the core's
schemas (saat._core.schemas()), and so do the CLI's choices and options."""
import inspect
import re
import subprocess
import sys

import numpy as np
import pytest

import saat
from saat import _core, _schema


def _params(schema):
    return [(p["name"], _schema._py_default(p)) for p in schema["parameters"]]


KIND_CLASSES = {"attack": saat.attacks.ATTACKS, "generative": saat.attacks.GENERATORS, "defence": saat.defences.DEFENCES}
PUBLIC = [(c, kind, c.name) for kind, classes in KIND_CLASSES.items() for c in classes.values()]


@pytest.mark.parametrize("cls, kind, name", PUBLIC, ids=[p[2] for p in PUBLIC])
def test_class_signature_defaults_and_docs_are_the_schemas(cls, kind, name):
    s = _schema.schema(kind, name)
    sig = inspect.signature(cls)
    names = list(sig.parameters)
    inputs = [i["name"] for i in s["inputs"]]
    assert names[:1 + len(inputs)] == ["model", *inputs]
    got = [(k, sig.parameters[k].default) for k in names[1 + len(inputs):]]
    assert got == _params(s)
    doc = inspect.getdoc(cls)
    for p in s["parameters"]:
        assert f"{p['name']} ({p['type']}): {p['doc']}; {p['expected']}. (Default: " in doc, p["name"]
    for i in s["inputs"]:
        assert f"{i['name']} (array): {i['doc']}." in doc
    assert cls.__init__.__signature__.parameters.keys() - {"self"} == sig.parameters.keys()


def test_train_and_hash_loss_follow_their_schemas():
    s = _schema.schema("training", "hashing")
    sig = inspect.signature(saat.train)
    keyword = [(k, p.default) for k, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY]
    assert keyword[:len(s["parameters"])] == _params(s)
    assert [k for k, _ in keyword[len(s["parameters"]):]] == ["progress", "checkpoint", "checkpoint_every", "resume", "comm"]
    assert all(p["doc"] in saat.train.__doc__ for p in s["parameters"])
    assert saat.losses.LOSSES == _schema.names("loss")
    assert {n for n in saat.losses.LOSSES if _schema.schema("loss", n)["parameters"]} == {"csq"}


def test_registry_names_and_python_classes_agree():
    assert tuple(saat.attacks.ATTACKS) == _schema.names("attack")
    assert tuple(saat.attacks.GENERATORS) == _schema.names("generative") == ("prosgan",)
    assert tuple(saat.defences.DEFENCES) == _schema.names("defence")
    assert saat.models.BACKBONES == _schema.names("backbone") == ("cnn-small", "alexnet", "vgg11")
    for s in _core.schemas():
        assert s["summary"] and all(p["doc"] and p["expected"] for p in s["parameters"]), s["name"]
        if s["kind"] in KIND_CLASSES:
            assert KIND_CLASSES[s["kind"]][s["name"]].__name__ == s["python"]


def test_values_are_checked_once_by_the_core_with_the_schemas_words(trained):
    m = trained["model"]
    p = next(p for p in _schema.schema("attack", "pgd")["parameters"] if p["name"] == "eps")
    with pytest.raises(ValueError, match=re.escape(f"argument 'eps': expected {p['expected']}, got 2.0")):
        saat.attacks.PGD(m, eps=2.0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'lr'"):
        saat.attacks.PGD(m, lr=0.1)
    assert _core.resolve("attack", "pgd", {"steps": 3})["steps"] == 3
    assert _core.resolve("defence", "saat", {})["lr"] == 0.05
    d = saat.defences.CgATTraining(m, epochs=2)
    assert d.epochs == 2 and d.lr == 0.01 and not hasattr(d, "mu")
    with pytest.raises(ValueError, match="'steps'"):
        saat.defences.SAATTraining(m, steps=1001)


@pytest.mark.parametrize("cls, name, instead", [(saat.attacks.HAG, "seed", "no random"),
                                                (saat.attacks.SDHA, "seed", "no random")])
def test_removed_parameters_say_what_to_do_instead(trained, cls, name, instead):
    args = (trained["train_codes"], np.eye(16, 4, dtype=np.float32)[:0]) if cls is saat.attacks.SDHA else ()
    with pytest.raises(TypeError, match=f"no longer takes '{name}'.*{instead}"):
        cls(trained["model"], *args, **{name: 0})


def test_hash_loss_seed_only_for_csq():
    u = np.full((1, 8), 0.5, np.float32)
    y = np.ones((1, 2), np.float32)
    args = (u, y, np.zeros(1, np.int64), y, np.zeros((1, 8), np.float32))
    assert np.isfinite(saat.losses.hash_loss("csq", *args, seed=3)[0])
    with pytest.raises(TypeError, match="no longer takes 'seed'.*only csq"):
        saat.losses.hash_loss("dpsh", *args, seed=3)


def test_cli_choices_and_options_come_from_the_registry():
    def help_of(*cmd):
        return subprocess.run([sys.executable, "-m", "saat", *cmd, "--help"], capture_output=True, text=True,
                              timeout=120, env={"COLUMNS": "400", **__import__("os").environ}).stdout
    text = help_of("attack")
    for name in _schema.names("attack"):
        assert name in text
        for p in _schema.schema("attack", name)["parameters"]:
            if p["name"] != "seed":
                assert "--" + p["name"].replace("_", "-") in text, p["name"]
    text = help_of("defend")
    for name in _schema.names("defence"):
        for p in _schema.schema("defence", name)["parameters"]:
            if p["name"] not in ("seed", "loss"):
                assert "--" + p["name"].replace("_", "-") in text, p["name"]
    text = help_of("train")
    for loss in _schema.names("loss"):
        assert loss in text


def test_errors_name_the_argument_the_caller_passed():
    """Regressions found by the randomized fuzz of the new entry points."""
    m = saat.HashingModel("cnn-small", bits=8)
    x = np.random.default_rng(0).random((4, 3, 32, 32), dtype=np.float32)
    y = np.eye(4, 2, dtype=np.float32) + np.eye(4, 2, -2, dtype=np.float32)
    with pytest.raises(ValueError, match="argument 'name': expected one of 'pgd'"):
        _core.attack_prepare("x", m._handle)
    with pytest.raises(ValueError, match="argument 'kind'"):
        _core.resolve("nope", "pgd")
    with pytest.raises(ValueError, match="argument 'name': expected one of 'pgd'.*got 'nope'"):
        _core.resolve("attack", "nope")
    with pytest.raises(ValueError, match="argument 'labels'"):
        saat.train(m, x, np.zeros((4, 0), np.float32), epochs=1, progress=False)
    with pytest.raises(ValueError, match="argument 'lr'.*float32"):
        saat.train(m, x, y, lr=1e39, epochs=1, progress=False)
    with pytest.raises(ValueError, match="argument 'padding'"):
        saat.kernels.conv2d(x, np.zeros((2, 3, 3, 3), np.float32), np.zeros(2, np.float32), padding=2**62)
    with pytest.raises(ValueError, match="argument 'weight'"):
        saat.kernels.conv2d(x, np.zeros((0, 3, 3, 3), np.float32), np.zeros(0, np.float32))


def test_a_diverged_model_is_refused_by_every_recipe():
    m = saat.HashingModel("cnn-small", bits=8)
    x = np.random.default_rng(1).random((4, 3, 32, 32), dtype=np.float32)
    y = np.eye(4, 2, dtype=np.float32) + np.eye(4, 2, -2, dtype=np.float32)
    with pytest.raises(saat.TrainingDiverged, match="argument 'lr'"):
        saat.train(m, x, y, epochs=3, batch_size=1, lr=1e30, momentum=0.0, progress=False)
    assert issubclass(saat.TrainingDiverged, ValueError)
    with pytest.raises(ValueError, match="argument 'model'.*finite"):
        saat.train(m, x, y, epochs=1, progress=False)
    with pytest.raises(ValueError, match="argument 'model'.*finite"):
        saat.defences.CgATTraining(m, epochs=1).fit(x, y, progress=False)
    with pytest.raises(ValueError, match="argument 'model'.*finite"):
        m.encode(x)
