"""The notebooks in notebooks/ run top to bottom in a fresh kernel of this interpreter and compute
what they claim: the quickstart's attack lowers MAP and SAAT training recovers part of it; the
paper-table notebook fills every column and writes its files.

Each notebook is executed with nbclient in a temporary working directory (``MPLBACKEND=Agg``); a
cell that raises fails the test. A probe cell appended to the in-memory copy prints the values
the notebook computed as JSON, and the assertions read them. Set ``SAAT_NOTEBOOK_OUT`` to a folder
to keep the executed notebooks (with outputs) there. The committed notebooks carry no outputs.
"""
import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PROBE = "SAAT-PROBE "


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory, monkeypatch_module):
    """A kernelspec running this very interpreter (not whatever 'python3' resolves to)."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "saat-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "saat test", "language": "python"}))
    monkeypatch_module.setenv("JUPYTER_PATH", str(root))
    monkeypatch_module.setenv("MPLBACKEND", "Agg")
    return "saat-test"


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def execute(name, probe, kernel_name, workdir):
    """Run notebook ``name`` with ``probe`` appended; return (executed notebook, probe dict, seconds)."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    for cell in nb.cells:                      # committed stripped: the test sees exactly what users get
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: commit without outputs"
    nb.cells.append(nbformat.v4.new_code_cell(f"import json as _json\nprint({PROBE!r} + _json.dumps({probe}))"))
    client = nbclient.NotebookClient(nb, kernel_name=kernel_name, timeout=900,
                                     resources={"metadata": {"path": str(workdir)}})
    t0 = time.perf_counter()
    client.execute()                           # raises CellExecutionError when a cell raises
    seconds = time.perf_counter() - t0
    print(f"\n{name} executed in {seconds:.1f} s")
    keep = os.environ.get("SAAT_NOTEBOOK_OUT")
    if keep:
        os.makedirs(keep, exist_ok=True)
        nbformat.write(nb, os.path.join(keep, name))
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    assert text.startswith(PROBE), text
    return nb, json.loads(text[len(PROBE):]), seconds


def stdout(nb):
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream" and o.get("name") == "stdout")


def png_outputs(nb):
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_quickstart(kernel_name, tmp_path):
    nb, r, seconds = execute("quickstart.ipynb", "{k: float(v) for k, v in dict(map_clean=map_clean, "
                             "map_chance=map_chance, map_attacked=map_attacked, map_theory=map_theory, "
                             "map_def_clean=map_def_clean, map_def_attacked=map_def_attacked, "
                             "max_abs=np.abs(adv - q_img).max(), def_max_abs=np.abs(def_adv - q_img).max(), "
                             "flipped=flipped).items()}", kernel_name, tmp_path)
    # the model learned something, the attack hurts it, SAAT training recovers part of it
    assert r["map_clean"] > r["map_chance"] + 0.05, r
    assert r["map_attacked"] < r["map_clean"] - 0.1, r
    assert r["map_theory"] < r["map_clean"], r
    assert r["map_def_attacked"] > r["map_attacked"] + 0.03, r
    assert r["flipped"] >= 1, r
    assert r["max_abs"] <= 8 / 255 + 1e-6 and r["def_max_abs"] <= 8 / 255 + 1e-6, r
    # the printed summary shows the same numbers the notebook computed
    out = stdout(nb)
    assert f"clean model, SAAT attack          {r['map_attacked']:.3f}" in out, out
    assert f"SAAT-trained model, SAAT attack   {r['map_def_attacked']:.3f}" in out, out
    # retrieval grid, perturbation, clean-vs-attacked grid, defended grid, PR/P@N
    assert png_outputs(nb) == 5
    assert not list(tmp_path.iterdir()), "the quickstart should not write files"


def test_paper_table(kernel_name, tmp_path):
    nb, r, seconds = execute("paper_table.ipynb", "dict(rows=table.rows, files=sorted(os.listdir(out)), "
                             "curves=sorted(table.curves[32]), out=out)", kernel_name, tmp_path)
    out = Path(r["out"])
    assert out.is_dir() and out.name.startswith("saat-table-"), out
    files = sorted(p.name for p in out.iterdir())
    saved = json.loads((out / "table.json").read_text())
    shutil.rmtree(out)                                               # the notebook's temporary folder
    rows = {row["defence"]: row for row in r["rows"]}
    assert sorted(rows) == ["cgat", "none", "saat"]
    none = rows["none"]
    for col in ("clean", "pgd", "hag", "sdha", "center", "saat", "clean_t", "dhta_t", "p2p_t", "tha_t", "prosgan_t", "saat_t",
                "theory_saat", "theory_saat_t"):
        assert 0 <= none[col] <= 1, (col, none)
    for d in ("cgat", "saat"):
        assert set(rows[d]) >= {"clean", "pgd", "hag", "sdha", "center", "saat", "theory_saat"}
        assert not any(k.endswith("_t") for k in rows[d]), rows[d]       # targeted attacks: undefended only
    assert none["saat"] < none["clean"] - 0.05, none                    # the SAAT attack works
    assert none["theory_saat"] < none["clean"], none
    assert rows["saat"]["saat"] > none["saat"], rows                    # SAAT training resists it
    assert {"table.json", "table.md", "pr_32.png", "pn_32.png", "models"} <= set(files) == set(r["files"]), files
    assert r["curves"] == ["cgat", "none", "saat"]
    assert saved["rows"] == r["rows"] and saved["config"]["loss"] == "csq"
    md = "".join(o.get("data", {}).get("text/markdown", "") for c in nb.cells if c.cell_type == "code"
                 for o in c.outputs)
    # cells: mean [95 % interval]; the papers' claims follow the table
    assert md.startswith("| bits | defence | clean |") and f"| {100 * none['clean']:.1f} [" in md, md
    assert "Claims" in md and "SAAT attack gives lower MAP than the PGD attack" in md, md
    assert "paired by query" in stdout(nb)                               # the compare() cell
    assert png_outputs(nb) == 3                                          # two files shown + one inline figure
    assert "output folder" in stdout(nb)
