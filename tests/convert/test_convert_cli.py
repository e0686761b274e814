"""`python -m sas_jax.convert`: checkpoints of SentencePiece- and WordPiece-trained rows
→ HF folders that stock AutoTokenizer / AutoModelFor* / pipeline("fill-mask") load
with the project's exact ids and fill-mask; lossless or refused; import → a
checkpoint the trainer restores; one-line errors."""
import glob
import json
import os

import flax.linen as nn
import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from sas_jax import checkpointing, config_lib, objectives, optim, sharding, train_state  # noqa: E402
from sas_jax.convert import hf_export, workdir as convert_workdir  # noqa: E402
from sas_jax.convert.__main__ import main as convert_main  # noqa: E402
from sas_jax.data import prepare as prepare_lib  # noqa: E402
from sas_jax.data import tokenizer as tokenizer_lib  # noqa: E402
from sas_jax.train_state import TrainState  # noqa: E402

try:  # another session moves the probe from glue/ to analysis/
    from sas_jax.analysis import probe as probe_lib  # noqa: E402
except ImportError:  # pragma: no cover
    from sas_jax.glue import probe as probe_lib  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
torch.set_num_threads(2)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SENTENCES = ["to be or not to [MASK] , that is the question", "the king is [MASK] ; long live the [MASK] ."]


def corpus_lines(n=300):
    """Lines of every bundled corpus file (n in all)."""
    files = sorted(glob.glob(os.path.join(ROOT, "data", "demo", "*.txt")))
    out = []
    for path in files:
        with open(path, "rb") as f:
            out += list(tokenizer_lib.decoded_lines(f.readlines()[2000:2000 + n // len(files)]))
    return out


@pytest.fixture(scope="module")
def wordpiece_corpora(tmp_path_factory):
    """{lowercase: corpus dir} of the demo poems: uncased, a WordPiece vocabulary the project
    trains (`prepare --train_vocab=400 --vocab_type=wordpiece`, [PAD] id 0); cased, one made
    by stock `BertWordPieceTokenizer` with the specials elsewhere ([PAD] id 3, not 0)."""
    from tokenizers import BertWordPieceTokenizer

    root = tmp_path_factory.mktemp("wp")
    text = root / "text.txt"
    text.write_bytes(open(os.path.join(ROOT, "data", "demo", "poems.txt"), "rb").read()[:150_000])
    out = {True: str(root / "corpus_True"), False: str(root / "corpus_False")}
    prepare_lib.prepare_corpus([str(text)], out[True], seq_len=32, train_vocab_size=400, vocab_type="wordpiece",
                               lowercase=True, progress=False)
    wp = BertWordPieceTokenizer(lowercase=False)
    wp.train([str(text)], vocab_size=400, special_tokens=["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"],
             show_progress=False)
    d = root / "vocab_False"
    d.mkdir()
    wp.save_model(str(d))
    prepare_lib.prepare_corpus([str(text)], out[False], seq_len=32, tokenizer_path=str(d / "vocab.txt"),
                               lowercase=False, progress=False)
    return out


def abstract_state(config, vocab_size: int):
    """The trainer's state of the row as `train_state.create_sharded_state` lays it out
    (`train_state.init_fn`, boxed with its logical axes), traced abstractly: nothing compiled."""
    model = objectives.build(config, vocab_size).model
    tx = optim.make_optimizer(config.opt, int(config.num_train_steps))
    return jax.eval_shape(lambda r: train_state.init_fn(r, model=model, tx=tx, seq_len=config.seq_len,
                                                         max_predictions=config.sas.max_predictions),
                          jax.random.key(0))


def noisy_params(config, vocab_size: int, seed: int = 0):
    """The row's parameter tree (`abstract_state`) filled as the trainer's init fills it
    (LayerNorm scales 1, biases 0, tables and kernels N(0, 0.02)) plus N(0, 0.05) noise:
    a model whose outputs are not flat, made without compiling an init."""
    rng = np.random.RandomState(seed)

    def fill(path, leaf):
        name = getattr(path[-1], "key", None)
        base = (np.ones(leaf.shape) if name == "scale" else np.zeros(leaf.shape) if name == "bias"
                else 0.02 * rng.randn(*leaf.shape))
        return (base + 0.05 * rng.randn(*leaf.shape)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(fill, nn.meta.unbox(abstract_state(config, vocab_size).params))


def make_checkpoint(workdir, row, corpus_dir, params=None, **model):
    """A finished checkpoint of the `row` (tiny) in the trainer's format, noisy params
    (`noisy_params`; `params`: another checkpoint's, of the same shapes, instead)."""
    config = config_lib.load_config(f"configs/{row}.py:tiny")
    corpus_meta = json.load(open(os.path.join(corpus_dir, "meta.json")))
    config.data.corpus_dir = str(corpus_dir)
    config.model.vocab_size = corpus_meta["vocab_size"]
    for k, v in model.items():
        config.model[k] = v
    tx = optim.make_optimizer(config.opt, int(config.num_train_steps))
    if params is None:
        params = noisy_params(config, config.model.vocab_size)
    state = TrainState(step=np.array(2, np.int32), params=params, opt_state=tx.init(params))
    meta = {"config": config.to_dict(), "data": {}, "max_predictions": int(config.sas.max_predictions),
            "param_shapes": checkpointing.param_shapes(params), "process_count": 1}
    ckpt = checkpointing.Checkpointer(str(workdir), keep=1, async_save=False)
    ckpt.save(2, state, None, meta)
    ckpt.wait()
    ckpt.close()
    with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
        f.write(json.dumps({"step": 2, "eval/mlm_accuracy": 0.125}) + "\n")
    return str(workdir), config, params


def export(*args):
    return convert_main(["export", *args])


def assert_same_ids(folder, tok, lines):
    hf = transformers.AutoTokenizer.from_pretrained(folder)
    assert hf.pad_token_id == tok.pad_id and hf.mask_token_id == tok.mask_id
    assert hf.cls_token_id == tok.cls_id and hf.sep_token_id == tok.sep_id and hf.unk_token_id == tok.unk_id
    assert len(lines) > 200
    for line in lines:
        assert hf(line, add_special_tokens=False)["input_ids"] == tok.encode(line), line
        assert hf(line)["input_ids"] == [tok.cls_id] + tok.encode(line)
    return hf


def assert_same_fill_mask(folder, workdir, top_k=5):
    """Stock fill-mask on `folder` gives our top-k; returns our probe of `workdir`."""
    probe = probe_lib.load_probe(workdir)
    fill = transformers.pipeline("fill-mask", model=folder, tokenizer=folder, top_k=top_k, device="cpu")
    for text in SENTENCES:
        ours = probe_lib.fill_mask(probe, text, top_k=top_k)
        theirs = fill(text)
        theirs = [theirs] if len(ours) == 1 else theirs
        for o, t in zip(ours, theirs):
            assert [p for p, _ in o["top"]] == [probe.tokenizer.id_to_piece(r["token"]) for r in t]
            np.testing.assert_allclose([p for _, p in o["top"]], [r["score"] for r in t], atol=1e-5, rtol=0)
    return probe


@pytest.mark.slow
def test_sentencepiece_sas_export(tmp_path, prepared_corpus, capsys):
    # The SAS row as the reference trains it: MLM head eps 1e-5, encoder 1e-12 → refused.
    workdir, _, row_params = make_checkpoint(tmp_path / "run", "sas_small", prepared_corpus)
    assert export(f"--checkpoint_dir={workdir}", f"--out={tmp_path}/refused") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "eps 1e-05 is not the encoder's 1e-12" in err and "--mlm_eps_gap=allow" in err
    assert not os.path.exists(tmp_path / "refused" / "discriminator" / "config.json")
    # skip: the lossless part only (the discriminator).
    assert export(f"--checkpoint_dir={workdir}", f"--out={tmp_path}/skip", "--mlm_eps_gap=skip") == 0
    assert sorted(os.listdir(tmp_path / "skip")) == ["discriminator"]

    # The config choice: a SAS row whose head follows the encoder's eps exports losslessly (the
    # same params: the eps is no parameter).
    workdir, config, params = make_checkpoint(tmp_path / "run2", "sas_small", prepared_corpus, params=row_params,
                                              mlm_layer_norm_eps=1e-12)
    out = tmp_path / "hf"
    assert export(f"--checkpoint_dir={workdir}", f"--out={out}") == 0
    tok = tokenizer_lib.load_tokenizer(os.path.join(prepared_corpus, "tokenizer.model"))
    for role in ("discriminator", "generator"):
        folder = str(out / role)
        files = set(os.listdir(folder))
        assert {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                "README.md", "sas_jax_run.json", "config.json", "model.safetensors"} <= files
        assert "spiece.model" not in files  # would make transformers build a 5-token BertTokenizer
        tc = json.load(open(os.path.join(folder, "tokenizer_config.json")))
        assert tc["model_max_length"] == config.model.max_position_embeddings and tc["do_lower_case"] is False
        hf_cfg = json.load(open(os.path.join(folder, "config.json")))
        assert hf_cfg["pad_token_id"] == tok.pad_id and hf_cfg["initializer_range"] == 0.02
        card = open(os.path.join(folder, "README.md")).read()
        assert "sas" in card and "FLOPs" in card and "eval/mlm_accuracy 0.125" in card and "step 2" in card
    assert_same_ids(str(out / "generator"), tok, corpus_lines())
    probe = assert_same_fill_mask(str(out / "generator"), workdir)
    # The discriminator: AutoModelForPreTraining gives our RTD logits.
    disc = transformers.AutoModelForPreTraining.from_pretrained(str(out / "discriminator")).eval()
    ids = probe_lib.encode_masked(tok, SENTENCES[0].replace("[MASK]", "be"))
    with torch.no_grad():
        theirs = disc(input_ids=torch.tensor(ids[None], dtype=torch.long)).logits.numpy()[0]
    np.testing.assert_allclose(probe_lib.rtd_probabilities(probe, ids), 1 / (1 + np.exp(-theirs)), atol=1e-5)

    # Import → a step-0 checkpoint the trainer restores, with the same weights.
    assert convert_main(["import", f"--hf_folder={out}", f"--workdir={tmp_path}/imported"]) == 0
    back = checkpointing.read_model(str(tmp_path / "imported"))
    assert back.step == 0 and back.tokenizer.fingerprint == tok.fingerprint
    for a, b in zip(jax.tree_util.tree_leaves(back.params), jax.tree_util.tree_leaves(params)):
        np.testing.assert_array_equal(a, b)
    assert_restores_in_trainer(str(tmp_path / "imported"), config, back.params)


def assert_restores_in_trainer(workdir, config, params):
    """Trainer.restore's call: the sharded state of the row (`create_sharded_state`'s tree,
    dtypes and shardings on a one-device mesh, placed as zeros: restoring overwrites them) +
    its store; gives back the step-0 state with `params`."""
    from sas_jax.corruption.store import SampleStore

    mesh = sharding.make_mesh(config.mesh, jax.devices()[:1])
    abstract = abstract_state(config, config.model.vocab_size)
    shardings = sharding.logical_to_shardings(abstract, mesh, sharding.logical_rules(config.mesh))
    state = jax.tree.map(lambda a, s: jax.device_put(np.zeros(a.shape, a.dtype), s), nn.meta.unbox(abstract),
                         shardings)
    store = SampleStore(np.arange(8), max_predictions=config.sas.max_predictions, seq_len=config.seq_len,
                        vocab_size=config.model.vocab_size)
    ckpt = checkpointing.Checkpointer(workdir, keep=2, async_save=False)
    restored, meta, step = ckpt.restore_latest(state, store)
    ckpt.close()
    assert step == 0 and int(restored.step) == 0 and meta["imported_from"]
    assert jax.tree.structure(restored.params) == jax.tree.structure(params)
    for a, b in zip(jax.tree_util.tree_leaves(restored.params), jax.tree_util.tree_leaves(params)):
        np.testing.assert_array_equal(np.asarray(a), b)


@pytest.mark.parametrize("lowercase", [True, False], ids=["trained_uncased", "handmade_cased"])
def test_wordpiece_bert_export(tmp_path, wordpiece_corpora, lowercase):
    corpus = wordpiece_corpora[lowercase]
    workdir, config, _ = make_checkpoint(tmp_path / "run", "bert_small", corpus)
    out = tmp_path / "hf"
    assert export(f"--checkpoint_dir={workdir}", f"--out={out}") == 0
    folder = str(out)
    assert json.load(open(os.path.join(folder, "config.json")))["architectures"] == ["BertForMaskedLM"]
    tok = tokenizer_lib.load_tokenizer(os.path.join(corpus, "vocab.txt"), lowercase=lowercase)
    assert tok.pad_id == (0 if lowercase else 3)
    assert json.load(open(os.path.join(folder, "config.json")))["pad_token_id"] == tok.pad_id
    tc = json.load(open(os.path.join(folder, "tokenizer_config.json")))
    assert tc["do_lower_case"] is lowercase and tc["model_max_length"] == config.model.max_position_embeddings
    hf = assert_same_ids(folder, tok, corpus_lines())
    assert (hf("The KING")["input_ids"] == [tok.cls_id] + tok.encode("the king")) is lowercase
    model = transformers.AutoModelForMaskedLM.from_pretrained(folder)
    assert type(model).__name__ == "BertForMaskedLM"
    assert_same_fill_mask(folder, workdir)


@pytest.mark.slow
def test_electra_da_gdes_export_and_import(tmp_path, wordpiece_corpora):
    """ELECTRA-DA with GDES through the CLI: generator → DebertaV2ForMaskedLM whose fill-mask is
    ours, discriminator → DebertaV2Model with the folded word table E_G + E_delta and the RTD
    sidecar; import gives back the pair (E_delta within a rounding) that the trainer restores."""
    corpus = wordpiece_corpora[True]
    workdir, config, params = make_checkpoint(tmp_path / "run", "electra_da_small", corpus, embedding_sharing="gdes")
    out = tmp_path / "hf"
    assert export(f"--checkpoint_dir={workdir}", f"--out={out}") == 0
    assert sorted(os.listdir(out)) == ["discriminator", "generator"]
    gen_cfg, disc_cfg = (json.loads((out / role / "config.json").read_text())
                         for role in ("generator", "discriminator"))
    assert gen_cfg["architectures"] == ["DebertaV2ForMaskedLM"] and disc_cfg["architectures"] == ["DebertaV2Model"]
    assert disc_cfg["sas_jax"]["embedding_sharing"] == "gdes"
    assert os.path.isfile(out / "discriminator" / "sas_rtd_head.safetensors")
    assert_same_fill_mask(str(out / "generator"), workdir)
    disc = transformers.AutoModel.from_pretrained(str(out / "discriminator"))
    folded = params["embeddings"]["word_embeddings"]["embedding"] + params["discriminator_word_delta"]
    np.testing.assert_array_equal(disc.embeddings.word_embeddings.weight.detach().numpy(), folded)

    assert convert_main(["import", f"--hf_folder={out}", f"--workdir={tmp_path}/imported"]) == 0
    back = checkpointing.read_model(str(tmp_path / "imported"))
    assert back.cfg.embedding_sharing == "gdes" and back.cfg.attention_type == "disentangled"
    assert_restores_in_trainer(str(tmp_path / "imported"), config, back.params)
    np.testing.assert_allclose(back.params.pop("discriminator_word_delta"), params.pop("discriminator_word_delta"),
                               atol=1e-7)
    for a, b in zip(jax.tree_util.tree_leaves(back.params), jax.tree_util.tree_leaves(params)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_trained_wordpiece_sas_export(tmp_path, wordpiece_corpora):
    """The whole WordPiece path: a vocabulary the project trains, a tiny SAS trained two steps
    by the trainer on rows of it, exported; stock AutoTokenizer gives the project's ids on the
    bundled corpus and AutoModelForMaskedLM (via fill-mask) the project's top-k."""
    from sas_jax import train

    from conftest import make_config

    corpus = wordpiece_corpora[True]
    config = make_config("sas_small", "tiny", **{
        "data.corpus_dir": corpus, "model.vocab_size": -1, "num_train_steps": 2, "model.mlm_layer_norm_eps": 1e-12,
        "ckpt.every_steps": 2, "ckpt.async_save": False, "log.every_steps": 1, "log.tensorboard": False})
    workdir = str(tmp_path / "run")
    # train_and_evaluate's Trainer on one device: the export of what the trainer writes is the
    # point; 8 devices add compile and checkpoint-save time, not coverage.
    train.Trainer(config, workdir, devices=jax.devices()[:1]).run()
    out = tmp_path / "hf"
    assert export(f"--checkpoint_dir={workdir}", f"--out={out}") == 0
    assert sorted(os.listdir(out)) == ["discriminator", "generator"]
    folder = str(out / "generator")
    assert {"tokenizer.json", "vocab.txt", "config.json", "model.safetensors"} <= set(os.listdir(folder))
    tok = tokenizer_lib.load_tokenizer(os.path.join(corpus, "vocab.txt"), lowercase=True)
    assert json.load(open(os.path.join(corpus, "meta.json")))["tokenizer_kind"] == "wordpiece"
    hf = assert_same_ids(folder, tok, corpus_lines())
    assert hf("The KING")["input_ids"] == [tok.cls_id] + tok.encode("the king")
    model = transformers.AutoModelForMaskedLM.from_pretrained(folder)
    assert json.load(open(os.path.join(folder, "config.json")))["pad_token_id"] == tok.pad_id == 0
    assert model.config.vocab_size == tok.vocab_size == 400
    assert_same_fill_mask(folder, workdir)


def test_every_row_is_lossless_or_refused():
    """The decision table: rows whose MLM head eps differs from the encoder's refuse by
    default; every other row's export is exact (the parity tests check the maths)."""
    import dataclasses

    from sas_jax.models.config import ModelConfig

    rows = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "configs", "*.py")))
    decided = {}
    for row in rows:
        if row == "glue":
            continue
        config = config_lib.load_config(f"configs/{row}.py:tiny")
        cfg = ModelConfig.from_config(config.model, vocab_size=64)
        electra = config.objective.corruption == "electra"
        params = {"mlm_head": {}} if config.objective.mlm and not electra else {}
        if cfg.mlm_layer_norm_eps == cfg.layer_norm_eps or electra:
            assert hf_export.mlm_eps_decision(params, cfg, "refuse")[1] is None, row
            decided[row] = "lossless"
        elif row not in ("sas_small", "sasda_small"):  # measuring the gap costs forwards: two rows do it
            decided[row] = "refused"
        else:
            params = noisy_params(config, 64)
            with pytest.raises(ValueError, match=r"HF's MLM logits would differ by up to"):
                hf_export.mlm_eps_decision(params, cfg, "refuse")
            assert hf_export.mlm_eps_decision(params, cfg, "skip")[0] is False
            decided[row] = "refused"
        # The shape itself is exportable (or refused with a one-line ValueError).
        from sas_jax.convert import hf_config
        arch = ("DebertaV2ForMaskedLM" if cfg.disentangled else
                "ElectraForPreTraining" if (config.objective.rtd or electra) else "BertForMaskedLM")
        hf_config.to_hf_config(dataclasses.replace(cfg), arch)
    assert decided["sas_small"] == decided["sasda_small"] == "refused"
    assert decided["bert_small"] == decided["deberta_small"] == decided["electra_small"] == "lossless"


@pytest.fixture(scope="module")
def bert_run(prepared_corpus, tmp_path_factory):
    """A bert_small checkpoint on `prepared_corpus` (`make_checkpoint`), read only: a test that
    edits it edits a copy."""
    return make_checkpoint(tmp_path_factory.mktemp("bert") / "run", "bert_small", prepared_corpus)[0]


def test_enhanced_mask_decoder_refused(tmp_path, bert_run, capsys):
    import shutil

    workdir = str(shutil.copytree(bert_run, tmp_path / "run"))
    step_meta = os.path.join(workdir, "checkpoints", "2", "meta")
    path = [os.path.join(step_meta, f) for f in os.listdir(step_meta) if not f.startswith("_")][0]
    meta = json.load(open(path))
    meta["config"]["model"]["enhanced_mask_decoder"] = True
    json.dump(meta, open(path, "w"))
    assert export(f"--checkpoint_dir={workdir}", f"--out={tmp_path}/o") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "enhanced_mask_decoder=True" in err


def test_one_line_errors(tmp_path, bert_run, capsys):
    def err_of(*argv):
        assert convert_main(list(argv)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ")
        return err

    assert "not found" in err_of("export", f"--checkpoint_dir={tmp_path}/nope", f"--out={tmp_path}/o")
    assert "no finished checkpoint" in err_of("export", f"--checkpoint_dir={tmp_path}", f"--out={tmp_path}/o")
    assert "HF folder" in err_of("import", f"--hf_folder={tmp_path}/nope", f"--workdir={tmp_path}/w")
    assert "not a Hugging Face model folder" in err_of("import", f"--hf_folder={tmp_path}",
                                                       f"--workdir={tmp_path}/w")
    workdir = bert_run
    assert export(f"--checkpoint_dir={workdir}", f"--out={tmp_path}/hf") == 0
    capsys.readouterr()
    assert "already holds an export" in err_of("export", f"--checkpoint_dir={workdir}", f"--out={tmp_path}/hf")
    assert "already holds checkpoints" in err_of("import", f"--hf_folder={tmp_path}/hf", f"--workdir={workdir}")


@pytest.mark.slow
def test_module_runs():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "sas_jax.convert", "export", "--checkpoint_dir=/nonexistent",
                        "--out=/tmp/x"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("error: checkpoint dir /nonexistent not found")
