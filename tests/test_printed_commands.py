"""What the tools print works as printed (docs/run_promises.md): the export command a run prints
at its end succeeds on that run, a warning is printed once, a CLI that fails on its input
leaves its --out ready for the corrected command, and a model family the converter does not
read is named as such."""
import logging
import re
import shutil

import pytest

from sas_jax import config_lib, study, train
from sas_jax.convert.__main__ import main as convert_main
from sas_jax.errors import UserError


def test_the_printed_export_command_succeeds_on_a_paper_row(tiny_workdir, prepared_corpus, tmp_path, capsys,
                                                            caplog):
    """sas_small (MLM head eps 1e-5, encoder 1e-12: refused by default) prints the flag its export needs."""
    workdir = tmp_path / "run"
    shutil.copytree(tiny_workdir, workdir)
    cfg = config_lib.load_config("sas_small:tiny", [
        f"data.corpus_dir={prepared_corpus}", "model.vocab_size=-1", "num_train_steps=4", "ckpt.every_steps=2",
        "ckpt.async_save=false", "log.every_steps=1"])
    train.train_and_evaluate(cfg, str(workdir))  # resumes at its last step: only the summary lines
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("saved step 4 in"))
    command = re.search(r"export \(the MLM head's LayerNorm eps 1e-05 is not the encoder's 1e-12.*\): "
                        r"python -m sas_jax\.convert (export .*)$", line)
    assert command, line
    argv = command.group(1).replace("<folder>", str(tmp_path / "hf")).split()
    assert "--mlm_eps_gap=skip" in argv
    with caplog.at_level(logging.WARNING):
        assert convert_main(argv) == 0
    warned = [r for r in caplog.records if "is not the encoder's" in r.getMessage()]
    assert len(warned) == 1  # once, not once per folder decision
    assert (tmp_path / "hf" / "discriminator" / "config.json").is_file()


def test_import_of_an_unread_model_family_names_the_families(tmp_path, capsys):
    folder = tmp_path / "gpt2"
    folder.mkdir()
    (folder / "config.json").write_text('{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}')
    assert convert_main(["import", f"--hf_folder={folder}", f"--workdir={tmp_path}/w"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a GPT2LMHeadModel model (model_type 'gpt2')" in err
    assert "this package reads bert, deberta-v2, electra encoders" in err and "--config" not in err
    assert not (tmp_path / "w").exists()


def test_a_study_that_failed_before_training_takes_the_corrected_command(tmp_path, prepared_corpus):
    kwargs = dict(variant="tiny", budget=1e9, out=str(tmp_path / "s"), seeds=[0],
                  overrides=[f"data.corpus_dir={prepared_corpus}"])
    with pytest.raises(UserError, match=r"--downstream='.*/typo' is not a folder"):
        study.run_study(["sas_small"], downstream=str(tmp_path / "typo"), **kwargs)
    assert not (tmp_path / "s" / "study.json").exists()
    # Another downstream in the same --out is this command's own check, not "holds a study with ...".
    with pytest.raises(UserError, match=r"--downstream='.*/other' is not a folder"):
        study.run_study(["sas_small"], downstream=str(tmp_path / "other"), **kwargs)
