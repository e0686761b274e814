"""GLUE is a client of the rest: nothing outside `sas_jax/glue/` imports it (but the study
command, a client of both), and the pre-training notebook does not either."""
import ast
import json


def imported_modules(source: str) -> set:
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return out


# Clients of both pre-training and GLUE, at the top of the layering (as the evaluate notebook):
# the study command fine-tunes every pre-trained row on a downstream task through sas_jax.glue;
# prepare_task fits a built task's bag-of-words baseline through glue's task-file reader; the
# classifier export writes a model that a GLUE sweep kept.
GLUE_CLIENTS = {"study.py", "prepare_task.py", "convert/hf_classifier.py"}


def test_nothing_outside_glue_imports_glue(repo_root):
    bad = []
    for path in sorted((repo_root / "sas_jax").rglob("*.py")):
        rel = path.relative_to(repo_root / "sas_jax")
        if "glue" in rel.parts[:1] or str(rel) in GLUE_CLIENTS:
            continue
        mods = imported_modules(path.read_text())
        bad += [f"{path.relative_to(repo_root)}: {m}" for m in sorted(mods) if m.startswith("sas_jax.glue")]
    assert bad == []


def test_pretraining_notebook_does_not_import_glue(repo_root):
    nb = json.loads((repo_root / "notebooks" / "pretraining_curves.ipynb").read_text())
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("get_ipython", "%", "!")))
    mods = imported_modules(code)
    assert not [m for m in mods if m.startswith("sas_jax.glue")] and "sas_jax.analysis" in mods
