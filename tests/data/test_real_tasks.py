"""Real labelled tasks from installed packages (`sas_jax.data.real_tasks`): WordNet supersenses.

The parsing is tested on literal WordNet lines; building the task needs the Debian package
wordnet-base and is skipped, naming it, where it is absent."""
import os

import pytest

from sas_jax import prepare_task
from sas_jax.data import real_tasks
from sas_jax.errors import UserError
from sas_jax.glue.tasks import get_task

HAVE_WORDNET = os.path.isfile(os.path.join(real_tasks.WORDNET_DIR, "data.verb"))
NEEDS_WORDNET = pytest.mark.skipif(not HAVE_WORDNET, reason=f"needs the Debian package {real_tasks.WORDNET_PACKAGE} "
                                   f"(apt-get install {real_tasks.WORDNET_PACKAGE}): no {real_tasks.WORDNET_DIR}")

VERB = ('00042173 29 v 01 powder 0 004 @ 00040928 v 0000 + 03994008 n 0101 01 + 08 00 | apply powder to; '
        '"She powdered her nose"; "The King wears a powdered wig"  \n')
NOUN = ('00045646 04 n 02 rally 1 rallying 1 003 @ 00036762 n 0000 | the feat of mustering strength; '
        '"he singled to start a rally in the 9th inning"; "he feared the rallying of their troops"  \n')


def test_wordnet_lines_give_words_labels_and_examples(tmp_path):
    offset, lex, words, examples = real_tasks.parse_data_line(VERB)
    assert (offset, real_tasks.LEXNAMES[lex], words) == ("00042173", "verb.body", ["powder"])
    assert examples == ["She powdered her nose", "The King wears a powdered wig"]
    _, lex, words, examples = real_tasks.parse_data_line(NOUN)
    assert real_tasks.LEXNAMES[lex] == "noun.act" and words == ["rally", "rallying"]
    assert real_tasks.parse_data_line("  1 This software and database is being provided\n") is None
    exc = {"run": ["ran"], "take": ["took"]}
    find = real_tasks.find_target
    assert find(["powder"], "She powdered her nose", "verb", {}) == "powdered"
    assert find(["rally", "rallying"], "he feared the rallying of their troops", "noun", {}) == "rallying"
    assert find(["run"], "He ran to the store", "verb", exc) == "ran"  # WordNet's exception list
    assert find(["run"], "stop running", "verb", exc) == "running"  # doubled consonant
    assert find(["take_off"], "the plane took off late", "verb", exc) == "took off"
    assert find(["hope"], "we hoped so", "verb", {}) == "hoped"
    assert find(["car"], "the carpet was red", "noun", {}) is None  # whole words only
    assert len(real_tasks.LEXNAMES) == 45 and real_tasks.LEXNAMES[44] == "adj.ppl"
    with pytest.raises(UserError, match=r"^WordNet is not installed .*; install it with `apt-get install wordnet-base`"):
        real_tasks.require_wordnet(str(tmp_path))


def test_prepare_task_without_the_package_is_one_line(tmp_path, capsys):
    assert prepare_task.main(["wordnet_supersense", f"--out={tmp_path}/o", f"--wordnet_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "apt-get install wordnet-base" in err[0]
    assert not os.path.exists(tmp_path / "o")


@NEEDS_WORDNET
def test_wordnet_supersense_task_files_from_the_package(tmp_path):
    kw = dict(pos=("verb",), max_train=300, max_dev=60, max_test=60)  # verbs only: the quick part of the package
    meta = real_tasks.build_wordnet_supersense(str(tmp_path / "a"), seed=0, **kw)
    assert meta["sizes"] == {"train": 300, "dev": 60, "test": 60} and meta["num_labels"] == 15
    assert meta["source_files"] == {"data.verb": os.path.getsize(os.path.join(real_tasks.WORDNET_DIR, "data.verb"))}
    spec = get_task(str(tmp_path / "a"))
    assert (spec.name, spec.num_labels, spec.metric, spec.tfds_keys) == ("wordnet_supersense", 15, "accuracy",
                                                                          ("word", "sentence"))
    assert spec.labels[0] == "verb.body" and spec.labels[-1] == "verb.weather"
    rows = [line.rstrip("\n").split("\t") for line in open(tmp_path / "a" / "train.tsv", encoding="utf-8")]
    assert rows[0] == ["word", "sentence", "supersense", "synset"] and len(rows) == 301
    for word, sentence, label, synset in rows[1:]:
        assert word.lower() in sentence.lower() and label in spec.labels and synset.startswith("verb:")
    synsets = {s: {line.split("\t")[3] for line in open(tmp_path / "a" / f"{s}.tsv").readlines()[1:]}
               for s in ("train", "dev", "test")}
    assert not synsets["train"] & synsets["dev"] and not synsets["train"] & synsets["test"]  # split by synset
    # Deterministic from the package and the seed; another seed, another split.
    real_tasks.build_wordnet_supersense(str(tmp_path / "b"), seed=0, **kw)
    real_tasks.build_wordnet_supersense(str(tmp_path / "c"), seed=1, **kw)
    for s in ("train", "dev", "test"):
        assert (tmp_path / "a" / f"{s}.tsv").read_bytes() == (tmp_path / "b" / f"{s}.tsv").read_bytes()
    assert (tmp_path / "a" / "train.tsv").read_bytes() != (tmp_path / "c" / "train.tsv").read_bytes()
    stamp = os.stat(tmp_path / "a" / "train.tsv").st_mtime_ns
    assert real_tasks.build_wordnet_supersense(str(tmp_path / "a"), seed=0, **kw) == meta  # a re-run rewrites nothing
    assert os.stat(tmp_path / "a" / "train.tsv").st_mtime_ns == stamp
