"""The notebooks run headless (nbclient) against a tiny checkpoint and write their figures; their install
cell (a stock Colab's path) and the demo pre-training they fall back on when there is no run."""
import importlib.util
import json
import pathlib
import subprocess
import sys
import zipfile

import glue_fixtures as gf
import nbformat
import pytest
from conftest import FAST_COMPILE_FLAGS, ROOT
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


def code_cells(name):
    return ["".join(c["source"]) for c in json.loads((NOTEBOOKS / name).read_text())["cells"] if c["cell_type"] == "code"]


def test_notebooks_are_colab_ready():
    install = {}
    for name in ("evaluate.ipynb", "pretraining_curves.ipynb"):
        nb = json.loads((NOTEBOOKS / name).read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        first = "".join(code[0]["source"])
        assert '"google.colab" in sys.modules' in first and 'SAS_JAX_SOURCE = ""  # @param {type:"string"}' in first
        install[name] = first
        assert "parameters" in code[1]["metadata"].get("tags", [])
        params = "".join(code[1]["source"])
        assert "SMALL" in params and "os.environ.get(" in params and "SAS_DEMO_CONFIG" in params
        assert "def train_demo(" in "".join(code[2]["source"])
        assert all(not c.get("outputs") for c in code)  # committed without outputs
        imports = [line for c in code for line in "".join(c["source"]).splitlines()
                   if line.startswith(("from sas_jax", "import sas_jax"))]
        assert any(line.startswith("from sas_jax.analysis import") for line in imports), imports
        glue = {name.strip() for line in imports if line.startswith("from sas_jax.glue")
                for name in line.split(" import ")[1].split(",")}
        # GLUE code only for GLUE results (tables, their figures, sweeps); the rest is analysis.
        assert glue == ({"plots as glue_plots", "results", "sweep"} if name == "evaluate.ipynb" else set()), glue
    assert install["evaluate.ipynb"] == install["pretraining_curves.ipynb"]  # one install cell, two copies
    train = [c[2][:c[2].index("\n\n\nfrom sas_jax")] for c in map(code_cells, install)]
    assert train[0] == train[1]


class FakeRun:
    """subprocess.run for the install cell: records each command; `git clone` makes a checkout."""

    def __init__(self):
        self.calls = []

    def __call__(self, cmd, **kw):
        self.calls.append([str(c) for c in cmd])
        if cmd[:2] == ["git", "clone"]:
            dest = pathlib.Path(cmd[-1])
            dest.mkdir(parents=True, exist_ok=True)
            (dest / "setup.py").write_text("")
        return subprocess.CompletedProcess(cmd, 0, "", "")


def run_install_cell(monkeypatch, source, importable=False):
    """The install cell's code, run here with sas_jax made not importable (unless `importable`) and
    pip/git faked: the paths a stock Colab takes, without installing anything."""
    real = importlib.util.find_spec
    if not importable:
        monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "sas_jax" else real(n, *a))
    run = FakeRun()
    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("SAS_JAX_SOURCE", str(source))
    ns = {}
    exec(code_cells("evaluate.ipynb")[0], ns)  # noqa: S102
    return run.calls, ns


def test_install_cell_without_a_source_stops_with_one_line(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Exception, match="SAS_JAX_SOURCE") as e:
        run_install_cell(monkeypatch, "")
    (line,) = e.value._render_traceback_()  # what IPython shows instead of a traceback
    assert line.startswith("error: sas_jax is not installed: set SAS_JAX_SOURCE")
    with pytest.raises(Exception, match="no such file or folder") as e:
        run_install_cell(monkeypatch, tmp_path / "missing")
    assert len(e.value._render_traceback_()) == 1


def test_install_cell_is_skipped_when_sas_jax_imports(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    calls, ns = run_install_cell(monkeypatch, "", importable=True)  # no source needed either
    assert calls == [] and ns["checkout"] == ROOT
    assert "install skipped" in capsys.readouterr().out


def test_install_cell_sources(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    calls, ns = run_install_cell(monkeypatch, ROOT)  # a checkout folder (the repository itself)
    assert calls == [pip + ["-e", str(ROOT)]] and ns["checkout"] == ROOT and sys.path[0] == str(ROOT)
    wheel = tmp_path / "sas_jax-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    calls, ns = run_install_cell(monkeypatch, wheel)
    assert calls == [pip + [str(wheel)]] and ns["checkout"] is None
    archive = tmp_path / "sas_jax-main.zip"  # GitHub's "Download ZIP": one top folder
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("sas_jax-main/setup.py", "")
        z.writestr("sas_jax-main/sas_jax/__init__.py", "")
    calls, ns = run_install_cell(monkeypatch, archive)
    assert calls == [pip + ["-e", str(tmp_path / "sas_jax_src" / "sas_jax-main")]]
    calls, ns = run_install_cell(monkeypatch, "https://github.com/OWNER/REPO.git")
    dest = tmp_path / "sas_jax_src"
    assert calls == [["git", "clone", "--depth=1", "https://github.com/OWNER/REPO.git", str(dest)],
                     pip + ["-e", str(dest)]]


def test_train_demo_off_is_one_line(tmp_path):
    ns = {"TRAIN_DEMO": False, "ROOT": ROOT, "DEMO_CONFIG": "configs/sas_demo.py:smoke", "DEMO_OVERRIDES": [],
          "WORKDIRS": [str(tmp_path / "none")]}
    with pytest.raises(Exception, match="no pre-training run in") as e:
        exec(code_cells("pretraining_curves.ipynb")[2], ns)  # noqa: S102
    assert len(e.value._render_traceback_()) == 1


@pytest.mark.slow
def test_evaluate_notebook(tmp_path, monkeypatch, tiny_workdir, glue_dir, tiny_curve):
    workdir = tiny_workdir
    curve = tiny_curve
    figs = tmp_path / "figs"
    # No results given but GLUE files: the notebook runs its SMALL sweep (RTE, one epoch) itself.
    nb = run_notebook("evaluate.ipynb", {
        "SAS_JAX_SOURCE": ROOT, "SAS_SMALL": "1", "SAS_CHECKPOINT_DIR": workdir, "SAS_STEP": "-1", "SAS_FIG_DIR": figs,
        "SAS_GLUE_RESULTS": "", "SAS_GLUE_DIR": glue_dir, "SAS_GLUE_CONFIG": "glue:tiny",
        "SAS_GLUE_CURVE": curve}, monkeypatch)
    for png in ("fill_mask.png", "rtd_heatmap.png", "glue_scores.png", "glue_vs_steps.png"):
        assert (figs / png).stat().st_size > 1000, png
    text = outputs(nb)
    assert "[MASK]@" in text and "<- replaced" in text and "'step': 4" in text and "install skipped" in text
    run = json.loads((tmp_path / "glue_notebook" / "runs" / "rte" / "lr0.0001_bs8_seed0.json").read_text())
    assert run["num_epochs"] == 1 and run["init_from"]["step"] == 4


@pytest.mark.slow
def test_pretraining_curves_notebook(tmp_path, monkeypatch):
    """No run at WORKDIRS: the notebook pre-trains the demo there (tiny variant, 4 steps, a small vocab)."""
    workdir = tmp_path / "demo"
    figs = tmp_path / "figs"
    text = tmp_path / "text.txt"
    text.write_bytes((ROOT / "data" / "demo" / "poems.txt").read_bytes()[:150_000])
    overrides = ["--config.model.vocab_size=-1", "--config.data.prepare.vocab_size=300",
                 f"--config.data.prepare.text_files={text}", "--config.num_train_steps=4",
                 "--config.ckpt.every_steps=2", "--config.log.every_steps=1"]
    nb = run_notebook("pretraining_curves.ipynb", {
        "SAS_JAX_SOURCE": ROOT, "SAS_SMALL": "1", "SAS_WORKDIRS": workdir, "SAS_LABELS": "demo", "SAS_FIG_DIR": figs,
        "SAS_DEMO_CONFIG": "configs/sas_demo.py:tiny", "SAS_DEMO_OVERRIDES": " ".join(overrides),
        "XLA_FLAGS": FAST_COMPILE_FLAGS,  # one CPU device, quick compiles
        "JAX_COMPILATION_CACHE_DIR": ROOT / ".pytest_cache" / "jax"}, monkeypatch)
    for png in ("pretraining_curves.png", "sas_schedule.png"):
        assert (figs / png).stat().st_size > 1000, png
    out = outputs(nb)
    assert "install skipped" in out  # sas_jax imports already: the install cell does nothing
    assert f"no pre-training run in {workdir}: pre-training the demo there" in out and "saved step 4" in out
    assert "train/mlm_loss" in out and "sas/rtd_lambda" in out and "sas/replaced_rate" in out


@pytest.mark.parametrize("name", ["evaluate.ipynb", "pretraining_curves.ipynb"])
def test_notebook_paths_default_to_the_repository(name):
    src = pathlib.Path(NOTEBOOKS / name).read_text()
    assert 'ROOT / \\"runs\\" / \\"demo\\"' in src
