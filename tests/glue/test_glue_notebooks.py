"""The notebooks run headless (nbclient) against a tiny checkpoint and write their figures."""
import json
import pathlib

import glue_fixtures as gf
import nbformat
import pytest
from conftest import ROOT
from nbclient import NotebookClient

NOTEBOOKS = ROOT / "notebooks"


def run_notebook(name, env, monkeypatch):
    for k, v in env.items():
        monkeypatch.setenv(k, str(v))  # the kernel inherits this process' environment
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return nb


def outputs(nb) -> str:
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_notebooks_are_colab_ready():
    for name in ("evaluate.ipynb", "pretraining_curves.ipynb"):
        nb = json.loads((NOTEBOOKS / name).read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        first = "".join(code[0]["source"])
        assert '"google.colab" in sys.modules' in first and "if IN_COLAB:" in first
        assert "parameters" in code[1]["metadata"].get("tags", [])
        params = "".join(code[1]["source"])
        assert "SMALL" in params and "os.environ.get(" in params
        assert all(not c.get("outputs") for c in code)  # committed without outputs
        imports = [line for c in code for line in "".join(c["source"]).splitlines()
                   if line.startswith(("from sas_jax", "import sas_jax"))]
        assert any(line.startswith("from sas_jax.analysis import") for line in imports), imports
        glue = {name.strip() for line in imports if line.startswith("from sas_jax.glue")
                for name in line.split(" import ")[1].split(",")}
        # GLUE code only for GLUE results (tables, their figures, sweeps); the rest is analysis.
        assert glue == ({"plots as glue_plots", "results", "sweep"} if name == "evaluate.ipynb" else set()), glue


def test_evaluate_notebook(tmp_path, monkeypatch, tiny_workdir, glue_dir, tiny_curve):
    workdir = tiny_workdir
    curve = tiny_curve
    figs = tmp_path / "figs"
    # No results given but GLUE files: the notebook runs its SMALL sweep (RTE, one epoch) itself.
    nb = run_notebook("evaluate.ipynb", {
        "SAS_SMALL": "1", "SAS_CHECKPOINT_DIR": workdir, "SAS_STEP": "-1", "SAS_FIG_DIR": figs,
        "SAS_GLUE_RESULTS": "", "SAS_GLUE_DIR": glue_dir, "SAS_GLUE_CONFIG": "glue:tiny",
        "SAS_GLUE_CURVE": curve}, monkeypatch)
    for png in ("fill_mask.png", "rtd_heatmap.png", "glue_scores.png", "glue_vs_steps.png"):
        assert (figs / png).stat().st_size > 1000, png
    text = outputs(nb)
    assert "[MASK]@" in text and "<- replaced" in text and "'step': 4" in text
    run = json.loads((tmp_path / "glue_notebook" / "runs" / "rte" / "lr0.0001_bs8_seed0.json").read_text())
    assert run["num_epochs"] == 1 and run["init_from"]["step"] == 4


def test_pretraining_curves_notebook(tmp_path, monkeypatch, tiny_workdir):
    workdir = tiny_workdir
    figs = tmp_path / "figs"
    nb = run_notebook("pretraining_curves.ipynb", {
        "SAS_SMALL": "1", "SAS_WORKDIRS": workdir, "SAS_LABELS": "tiny", "SAS_FIG_DIR": figs}, monkeypatch)
    for png in ("pretraining_curves.png", "sas_schedule.png"):
        assert (figs / png).stat().st_size > 1000, png
    text = outputs(nb)
    assert "train/mlm_loss" in text and "sas/rtd_lambda" in text and "sas/replaced_rate" in text


@pytest.mark.parametrize("name", ["evaluate.ipynb", "pretraining_curves.ipynb"])
def test_notebook_paths_default_to_the_repository(name):
    src = pathlib.Path(NOTEBOOKS / name).read_text()
    assert 'ROOT / \\"runs\\" / \\"demo\\"' in src
