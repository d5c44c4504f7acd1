"""The core's parameter schemas, on the Python side.

Every attack, training recipe, defence, hashing loss and backbone declares its parameters once, in
the Swift core (``SAATCore/Schema``): Python name, type, range, default and a one-line description.
``saat._core.schemas()`` exports them; this module turns them into the signatures and the
"Arguments" sections of the docstrings of the public classes and functions, and the CLI into its
choices and options. The core checks every value (once), so nothing here validates a parameter.
"""
from __future__ import annotations

import inspect

from . import _core

_SCHEMAS = {(s["kind"], s["name"]): s for s in _core.schemas()}


def schema(kind: str, name: str) -> dict:
    """The schema of one algorithm (``kind``: attack, defence, training, loss or backbone)."""
    return _SCHEMAS[(kind, name)]


def names(kind: str) -> tuple:
    """Registry names of one kind, in the core's order."""
    return tuple(n for (k, n) in _SCHEMAS if k == kind)


def input_shape(backbone: str) -> tuple:
    """(C, H, W) of one input image of a backbone."""
    return tuple(schema("backbone", backbone)["input_shape"])


def defaults(s: dict) -> dict:
    """Parameter name → default value."""
    return {p["name"]: _py_default(p) for p in s["parameters"]}


def _py_default(p: dict):
    d = p["default"]
    return tuple(d) if p["type"] == "fractions" else d


def format_default(p: dict) -> str:
    """A parameter's default as the docs show it (8/255 rather than 0.0314)."""
    d = _py_default(p)
    if p["type"] == "float":
        for num, den in ((8, 255), (2, 255), (1, 255)):
            if abs(d - num / den) < 1e-12:
                return f"{num}/{den}"
        return f"{d:g}"
    if p["type"] == "fractions":
        return "(" + ", ".join(f"{v:.4g}" for v in d) + (",)" if len(d) == 1 else ")")
    return repr(d)


def arguments_doc(s: dict, leading: str = "") -> str:
    """The "Arguments" section: ``leading`` (the caller's own arguments, already formatted), then
    every data input and parameter of the schema with its type, range and default."""
    lines = ["Arguments (a parameter given as None takes its default):"]
    if leading:
        lines += ["    " + line for line in leading.strip("\n").splitlines()]
    for i in s["inputs"]:
        lines.append(f"    {i['name']} (array): {i['doc']}.")
    for p in s["parameters"]:
        lines.append(f"    {p['name']} ({p['type']}): {p['doc']}; {p['expected']}. (Default: {format_default(p)})")
    return "\n".join(lines)


def document(obj, s: dict, leading: str = "") -> None:
    """Append the schema's "Arguments" section to ``obj.__doc__`` (before an "Examples" section
    when there is one)."""
    doc = inspect.cleandoc(obj.__doc__ or "")
    args = arguments_doc(s, leading)
    head, sep, tail = doc.partition("\nExamples::")
    obj.__doc__ = head.rstrip() + "\n\n" + args + ("\n" + sep + tail if sep else "")


def signature(s: dict, leading: list, trailing: list = (), *, positional_params: bool = True) -> inspect.Signature:
    """A signature: ``leading`` parameters (e.g. self, model), the schema's data inputs
    (positional), its parameters with their defaults (positional-or-keyword when
    ``positional_params``, else keyword-only), then ``trailing`` (keyword-only extras)."""
    P = inspect.Parameter
    kind = P.POSITIONAL_OR_KEYWORD if positional_params else P.KEYWORD_ONLY
    params = list(leading)
    params += [P(i["name"], P.POSITIONAL_OR_KEYWORD) for i in s["inputs"]]
    params += [P(p["name"], kind, default=_py_default(p)) for p in s["parameters"]]
    params += list(trailing)
    return inspect.Signature(params)


def bind(sig: inspect.Signature, s: dict, args: tuple, kwargs: dict, skip: int) -> tuple:
    """Bind a call against ``sig`` (the TypeError Python gives for a bad call, prefixed with the
    callable's name) and split it into the data inputs and the parameters the caller gave. A
    parameter given as None means its default; defaults are left to the core."""
    try:
        ba = sig.bind_partial(*([None] * skip), *args, **kwargs)
    except TypeError as e:
        raise TypeError(f"{s['python']}(): {e}") from None
    given = dict(ba.arguments)
    for i in list(given)[:skip]:
        given.pop(i)
    inputs = {i["name"]: given.pop(i["name"]) for i in s["inputs"] if i["name"] in given}
    missing = [i["name"] for i in s["inputs"] if i["name"] not in inputs]
    if missing:
        raise TypeError(f"{s['python']}() missing required argument{'s' if len(missing) > 1 else ''}: "
                        + ", ".join(f"'{m}'" for m in missing))
    params = {p["name"]: given[p["name"]] for p in s["parameters"] if given.get(p["name"]) is not None}
    return inputs, params


def require_model(model) -> None:
    """TypeError unless ``model`` is a :class:`saat.HashingModel` (argument 'model')."""
    from .models import HashingModel
    if not isinstance(model, HashingModel):
        raise TypeError(f"argument 'model': expected a saat.HashingModel, got {type(model).__name__}")


def format_params(params: dict, shown=None) -> str:
    """``k=v, ...`` for a repr: floats to 4 significant digits, the rest as repr; ``shown`` picks
    and orders the names (default: all, in the schema's order)."""
    keys = [k for k in shown if k in params] if shown is not None else list(params)
    return ", ".join(f"{k}={params[k]:.4g}" if isinstance(params[k], float) else f"{k}={params[k]!r}" for k in keys)


def install(cls, kind: str, model_doc: str, configure: str) -> None:
    """Make ``cls`` the Python class of the registry entry (``kind``, ``cls.name``): an ``__init__``
    taking the model, the schema's data inputs and parameters that calls ``cls.<configure>(model,
    args, kwargs)``, the schema's signature, and its "Arguments" section appended to the docstring
    (``model_doc`` documents the model argument)."""
    cls._schema = schema(kind, cls.name)
    P = inspect.Parameter

    def __init__(self, model, *args, **kwargs):
        getattr(self, configure)(model, args, kwargs)

    __init__.__qualname__ = f"{cls.__name__}.__init__"
    __init__.__doc__ = f"See :class:`{cls.__name__}`."
    cls.__init__ = __init__
    model = P("model", P.POSITIONAL_OR_KEYWORD)
    cls.__init__.__signature__ = signature(cls._schema, [P("self", P.POSITIONAL_OR_KEYWORD), model])
    cls.__signature__ = signature(cls._schema, [model])
    document(cls, cls._schema, leading=model_doc)


def removed(owner: str, name: str, instead: str):
    """The TypeError for a parameter removed on purpose, saying what to use instead."""
    return TypeError(f"{owner}() no longer takes '{name}': {instead}")

