"""Every CLI turns a user error into ONE line `error: ...` on stderr and exit 2, without a
traceback and before anything is written; a bug keeps its traceback (`sas_jax.cli`)."""
import glob
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

from sas_jax import cli
from sas_jax.errors import UserError

MAIN = ["sas_jax.main", "--workdir={tmp}/w"]
TINY = "--config=configs/sas_small.py:tiny"

# (module and arguments, substrings of the error line); {tmp} is the test's tmp_path. Most fail
# before JAX is imported (main, prepare, study's output check); at least one case per CLI that
# imports it first.
CASES = {
    "main-missing-config": ([*MAIN, "--config=configs/nope.py"], ["config file configs/nope.py not found"]),
    "main-bad-variant": ([*MAIN, "--config=configs/sas_small.py:demoo"],
                         ["unknown config variant 'demoo'", "did you mean 'demo'"]),
    "main-mistyped-key": ([*MAIN, TINY, "--config.model.hiden_size=64"],
                          ["unknown config key 'model.hiden_size'", "did you mean 'model.hidden_size'"]),
    "main-bad-value": ([*MAIN, TINY, "--config.batch_size", "abc"],
                       ["batch_size='abc' is not valid", "takes an int"]),
    "main-unknown-flag": (["sas_jax.main", TINY, "--workdr={tmp}/w"], ["Unknown command line flag 'workdr'"]),
    "prepare-missing-input": (["sas_jax.prepare", "--input={tmp}/missing.txt", "--train_vocab=100",
                               "--output={tmp}/o"], ["missing.txt not found"]),
    "prepare-bad-value": (["sas_jax.prepare", "--input=x.txt", "--seq_len=abc", "--output={tmp}/o"],
                          ["argument --seq_len: invalid int value: 'abc'"]),
    "study-missing-config": (["sas_jax.study", "--rows=configs/nope.py", "--variant=tiny", "--flops=1e9",
                              "--out={tmp}/s"], ["config file configs/nope.py not found"]),
    "study-mistyped-key": (["sas_jax.study", "--rows=sas_small", "--variant=tiny", "--flops=1e9", "--out={tmp}/s",
                            "--config.model.hiden_size=64"], ["'model.hiden_size'", "'model.hidden_size'"]),
    "plan-bad-variant": (["sas_jax.plan", "--config=configs/sas_small.py:demoo"], ["'demoo'"]),
    "flops-bad-value": (["sas_jax.flops", "--config=configs/sas_small.py", "--config.batch_size=abc"],
                        ["batch_size='abc' is not valid"]),
    "glue-missing-config": (["sas_jax.glue", "sweep", "--checkpoint_dir={tmp}/run", "--glue_dir={tmp}/glue",
                             "--config=configs/nope.py", "--out={tmp}/g"], ["config file configs/nope.py not found"]),
    "convert-missing-checkpoint": (["sas_jax.convert", "export", "--checkpoint_dir={tmp}/run", "--out={tmp}/hf"],
                                   ["checkpoint dir", "/run not found"]),
    # An output folder that cannot be one (below a file: pytest.ini of the repository root) is
    # named in one line before anything runs (`files.check_dir`).
    "main-workdir-below-a-file": (["sas_jax.main", TINY, "--workdir=pytest.ini/run"],
                                  ["--workdir=pytest.ini/run cannot be a folder:", "pytest.ini is a file"]),
    "prepare-output-below-a-file": (["sas_jax.prepare", "--input={tmp}/missing.txt", "--train_vocab=100",
                                     "--output=pytest.ini/c"], ["--output=pytest.ini/c cannot be a folder"]),
    "study-out-below-a-file": (["sas_jax.study", "--rows=sas_small", "--variant=tiny", "--flops=1e9",
                                "--out=pytest.ini/s"], ["--out=pytest.ini/s cannot be a folder"]),
    "glue-out-below-a-file": (["sas_jax.glue", "sweep", "--checkpoint_dir={tmp}/run", "--glue_dir={tmp}/glue",
                               "--out=pytest.ini/g"], ["--out=pytest.ini/g cannot be a folder"]),
    "convert-out-below-a-file": (["sas_jax.convert", "export", "--checkpoint_dir={tmp}/run", "--out=pytest.ini/hf"],
                                 ["--out=pytest.ini/hf cannot be a folder"]),
    "compare_runs-missing-workdir": (["sas_jax.analysis.compare_runs", "--run=SAS={tmp}/run", "--out={tmp}/c.png"],
                                     ["/run has no metrics.jsonl"]),
}


def assert_one_line_error(r, wants):
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-3000:]
    for want in wants:
        assert want in lines[0], (want, lines[0])
    assert "Traceback" not in r.stdout + r.stderr


# The cases whose CLI imports JAX before it fails (1.5 s each): in the full suite, not the fast loop.
AFTER_JAX = {"study-missing-config", "study-mistyped-key", "plan-bad-variant", "flops-bad-value",
             "glue-missing-config", "glue-out-below-a-file", "convert-missing-checkpoint",
             "convert-out-below-a-file", "compare_runs-missing-workdir"}
assert AFTER_JAX <= set(CASES), AFTER_JAX - set(CASES)


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c in AFTER_JAX else c for c in CASES])
def test_user_error_is_one_line_and_writes_nothing(case, cli, tmp_path):
    args, wants = CASES[case]
    r = cli("-m", *[a.format(tmp=tmp_path) for a in args], timeout=180)
    assert_one_line_error(r, wants)
    assert os.listdir(tmp_path) == []  # e.g. main's --workdir is not created for a missing config


def _truncate_state(step_dir):
    for path in glob.glob(os.path.join(step_dir, "state", "**", "*"), recursive=True):
        if os.path.isfile(path):
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)


def _delete_meta(step_dir):
    os.remove(os.path.join(step_dir, "meta", "metadata"))


@pytest.mark.slow
@pytest.mark.parametrize("damage, wants", [
    (_truncate_state, ["state/_METADATA is not valid JSON"]),
    (_delete_meta, ["meta/metadata is missing"]),
], ids=["truncated-state", "deleted-meta"])
def test_glue_sweep_on_a_damaged_checkpoint(damage, wants, cli, tmp_path, tiny_workdir):
    workdir = tmp_path / "run"
    shutil.copytree(tiny_workdir, workdir)  # the shared fixture stays intact
    step_dir = str(workdir / "checkpoints" / "4")
    damage(step_dir)
    r = cli("-m", "sas_jax.glue", "sweep", f"--checkpoint_dir={workdir}", f"--glue_dir={tmp_path}/glue",
            "--tasks=rte", "--config=glue:tiny", f"--out={tmp_path}/g", timeout=180)
    assert_one_line_error(r, [f"checkpoint {step_dir} is damaged", *wants])
    assert not (tmp_path / "g").exists()  # read before --out is written: nothing half-made to clean up


# ----------------------------------------------------------------------------- the helper, in-process
def test_entry_point_prints_user_errors_as_one_line(capsys):
    @cli.entry_point
    def bad(argv=None):
        raise UserError("first line\n  second line")

    assert bad() == 2
    assert capsys.readouterr().err == "error: first line second line\n"
    assert cli.entry_point(lambda argv=None: None)() == 0
    assert cli.entry_point(lambda argv=None: 3)() == 3

    def diverged(argv=None):
        raise FloatingPointError("loss is nan at step 3")

    assert cli.entry_point(user_errors=(FloatingPointError,))(diverged)() == 2
    assert capsys.readouterr().err == "error: loss is nan at step 3\n"
    with pytest.raises(FloatingPointError):  # only where a CLI says so
        cli.entry_point(diverged)()
    with pytest.raises(SystemExit):  # --help and sys.exit pass through
        cli.entry_point(lambda argv=None: sys.exit(0))()


def test_internal_error_keeps_its_traceback():
    @cli.entry_point
    def buggy(argv=None):
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        buggy()
    r = subprocess.run([sys.executable, "-c", "from sas_jax import cli; cli.entry_point(lambda argv=None: 1 / 0)()"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Traceback" in r.stderr and "ZeroDivisionError" in r.stderr
    assert "error: " not in r.stderr


def test_argument_parser_errors_are_user_errors():
    p = cli.ArgumentParser(prog="python -m x")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("go").add_argument("--n", type=int, required=True)
    with pytest.raises(UserError, match=r"^the following arguments are required: command .*\(see python -m x --help\)$"):
        p.parse_args([])
    with pytest.raises(UserError, match=r"^argument --n: invalid int value: 'x' \(see python -m x go --help\)$"):
        p.parse_args(["go", "--n=x"])


def test_split_config_overrides_takes_absl_forms():
    assert cli.split_config_overrides(
        ["--config=c.py", "--config.a.b=1", "--workdir=w", "--config.seed", "3", "--config.log.tensorboard",
         "--config.model.vocab_size", "-1", "--config.flag"]) == (
        ["a.b=1", "seed=3", "log.tensorboard=true", "model.vocab_size=-1", "flag=true"],
        ["--config=c.py", "--workdir=w"])
