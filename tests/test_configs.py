"""Every paper row is a config file: its full-size settings, its tiny variant's structure,
and three training steps of the tiny variant with exactly the losses the row calls for."""
import dataclasses
import functools
import types

import flax.linen as nn
import jax
import numpy as np
import pytest
from conftest import ROOT, load_config

from sas_jax import objectives, optim, sharding, train_state, train_step
from sas_jax.corruption.static_batch import electra_budget
from sas_jax.data.synthetic import MASK, markov_corpus
from sas_jax.models import ModelConfig, generator_config

EPOCHWISE, CONSTANT = ("epochwise", 50.0, 200.0), ("constant", 50.0, None)


@dataclasses.dataclass(frozen=True)
class Row:
    size: str
    corruption: str
    mlm: bool = True
    rtd: bool = True
    lam: tuple | None = EPOCHWISE  # (schedule, start, end) of the RTD weight; None = no RTD
    cold_start: str | None = None  # SAS rows only
    attention: str = "absolute"
    steps: int = 250_000
    embedding: int | None = None  # None = E == H
    generator_ratio: float | None = None  # ELECTRA rows only


ROWS = {
    "bert_small": Row("small", "bert", rtd=False, lam=None),
    "bert_small_1_5x": Row("small", "bert", rtd=False, lam=None, steps=375_000),
    "electra_small": Row("small", "electra", lam=CONSTANT, embedding=128, generator_ratio=0.25),
    "deberta_small": Row("small", "bert", rtd=False, lam=None, attention="disentangled"),
    "sas_small": Row("small", "sas", cold_start="unigram"),
    "sasc_small": Row("small", "sas", lam=CONSTANT, cold_start="unigram"),
    "sasda_small": Row("small", "sas", cold_start="unigram", attention="disentangled"),
    "sascda_small": Row("small", "sas", lam=CONSTANT, cold_start="unigram", attention="disentangled"),
    "bert_base": Row("base", "bert", rtd=False, lam=None, steps=1_000_000),
    "electra_base": Row("base", "electra", lam=CONSTANT, steps=766_000, generator_ratio=1 / 3),
    "deberta_base": Row("base", "bert", rtd=False, lam=None, attention="disentangled", steps=1_000_000),
    "sas_base": Row("base", "sas", cold_start="unigram", steps=833_000),
    "sasda_base": Row("base", "sas", cold_start="unigram", attention="disentangled", steps=833_000),
    "unig_mlm": Row("small", "unigram", rtd=False, lam=None),
    "unig_mlm_sas": Row("small", "sas", rtd=False, lam=None, cold_start="unigram"),
    "unig_mlm_rtdc": Row("small", "unigram", lam=CONSTANT),
    "unig_mlm_rtd": Row("small", "unigram"),
    "unif_sas": Row("small", "sas", cold_start="uniform"),
    "unif_sasc": Row("small", "sas", lam=CONSTANT, cold_start="uniform"),
    # Beyond the paper: ELECTRA's recipe on the DA encoder (DeBERTa-V3's RTD; docs/reference.md §9.8).
    "electra_da_small": Row("small", "electra", lam=CONSTANT, embedding=128, generator_ratio=0.25,
                            attention="disentangled"),
    "electra_da_base": Row("base", "electra", lam=CONSTANT, steps=766_000, generator_ratio=1 / 3,
                           attention="disentangled"),
}


def test_every_paper_row_has_a_config_file():
    assert set(ROWS) <= {p.stem for p in (ROOT / "configs").glob("*.py")}


def check_structure(cfg, row: Row):
    """What makes the row the row, at any size."""
    o, m, s = cfg.objective, cfg.model, cfg.sas
    assert (o.corruption, o.mlm, o.rtd) == (row.corruption, row.mlm, row.rtd)
    if row.lam is not None:
        schedule, start, end = row.lam
        assert (s.lambda_schedule, s.lambda_start) == (schedule, start)
        if end is not None:
            assert s.lambda_end == end
    if row.cold_start:
        assert s.cold_start == row.cold_start
    if row.corruption == "bert":
        assert (o.mask_token_rate, o.random_token_rate) == (0.8, 0.1)
        assert m.mlm_layer_norm_eps == m.layer_norm_eps  # BERT's transform LayerNorm
    if row.corruption == "electra":
        assert (o.mask_token_rate, o.random_token_rate) == (0.85, 0.0)
        assert m.generator_ratio == pytest.approx(row.generator_ratio)
        gen = generator_config(ModelConfig.from_config(m))
        assert gen.hidden_size < m.hidden_size and gen.embedding_size == m.embedding_size
    assert m.attention_type == row.attention
    if row.attention == "disentangled":  # docs/reference.md §9.5
        assert (m.position_biased_input, m.type_vocab_size, m.layer_norm_eps) == (False, 0, 1e-7)
        assert (m.position_buckets, m.share_att_key, m.pos_att_type, m.norm_rel_ebd) == (256, True, "c2p|p2c",
                                                                                        "layer_norm")
    else:
        assert m.position_biased_input and m.type_vocab_size == 2
    assert (m.embedding_size != m.hidden_size) == (row.embedding is not None)
    assert m.max_position_embeddings >= cfg.seq_len
    assert s.max_predictions >= round(s.mask_rate * cfg.seq_len)
    objectives.check_objective(cfg)


@pytest.mark.parametrize("name", sorted(ROWS))
def test_full_config_is_the_paper_row(name):
    row, cfg = ROWS[name], load_config(name, None)
    check_structure(cfg, row)
    small = row.size == "small"
    assert (cfg.batch_size, cfg.seq_len) == ((512, 128) if small else (256, 512))
    assert cfg.opt.learning_rate == (1e-3 if small else 2e-4) and cfg.opt.warmup_steps == 10_000
    assert cfg.num_train_steps == row.steps
    assert (cfg.model.hidden_size, cfg.model.num_layers) == ((256, 12) if small else (768, 12))
    assert cfg.model.embedding_size == (row.embedding or cfg.model.hidden_size)
    assert cfg.sas.max_predictions == (20 if small else 80)  # >= 19 / 77 (and ELECTRA's 19 / 79)
    if row.corruption == "electra":
        assert cfg.sas.max_predictions >= electra_budget(cfg.sas.mask_rate, cfg.seq_len)
        gen = generator_config(ModelConfig.from_config(cfg.model))
        want = (64, 1, 256) if small else (256, 4, 1024)  # docs/reference.md §8.5
        assert (gen.hidden_size, gen.num_heads, gen.intermediate_size) == want
    doc = (ROOT / "configs" / f"{name}.py").read_text()
    assert f"python -m sas_jax.main --config=configs/{name}.py" in doc


@pytest.mark.parametrize("name", sorted(ROWS))
def test_tiny_variant_keeps_the_row_structure(name):
    cfg = load_config(name, "tiny")
    check_structure(cfg, ROWS[name])
    assert cfg.model.hidden_size == 32 and cfg.seq_len == 32


# ----------------------------------------------------------------------------- three steps
@functools.lru_cache(maxsize=None)
def shared_opt():
    return load_config("sas_small", "tiny").opt


def step_config(name, num_steps=3):
    """The row's tiny config as `setup_row` trains it: the shared optimizer, `num_steps` steps, one
    layer (a second is the first again: what makes the row the row, its objective, heads, attention
    and embeddings, is all there; `test_tiny_variant_keeps_the_row_structure` checks the tiny variant)."""
    cfg = load_config(name, "tiny")
    cfg.opt = shared_opt()
    cfg.num_train_steps = num_steps
    cfg.model.num_layers = 1
    return cfg


def row_parts(name, num_steps=3):
    """The row's tiny config on one device, nothing run: a namespace of cfg, model, tx, `init`
    (key -> the boxed state, `train_state.init_fn`), the abstract `state` and its `shardings` (as
    `create_sharded_state` makes them), the jitted `step`, `settings`, `builder` and `corpus`.

    The optimizer constants are the small rows' (Base rows differ only in the peak lr), so a
    Base row whose tiny step is otherwise its Small row's trains the same steps (`SAME_TINY_STEPS`);
    objective, heads and model are the row's own.
    """
    cfg = step_config(name, num_steps)
    corpus = markov_corpus(2 * cfg.batch_size, cfg.seq_len, cfg.model.vocab_size)
    mesh = sharding.make_mesh(cfg.mesh, jax.devices()[:1])
    rules = sharding.logical_rules(cfg.mesh)
    objective = objectives.build(cfg, cfg.model.vocab_size)
    model = objective.model
    tx = optim.make_optimizer(cfg.opt, num_steps)
    init = functools.partial(train_state.init_fn, model=model, tx=tx, seq_len=cfg.seq_len,
                             max_predictions=cfg.sas.max_predictions)
    boxed = jax.eval_shape(init, jax.random.key(0))
    state, shardings = nn.meta.unbox(boxed), sharding.logical_to_shardings(boxed, mesh, rules)
    settings = objective.step_settings(steps_per_epoch=2)
    lr_schedule = optim.learning_rate_schedule(cfg.opt, num_steps)
    step = train_step.jit_train_step(model=model, tx=tx, lr_schedule=lr_schedule, settings=settings, mesh=mesh,
                                     rules=rules, state_shardings=shardings)
    builder = objective.make_builder(corpus, np.arange(corpus.num_rows))
    return types.SimpleNamespace(cfg=cfg, model=model, tx=tx, mesh=mesh, rules=rules, init=init, state=state,
                                 shardings=shardings, step=step, settings=settings, builder=builder, corpus=corpus)


def setup_row(name, num_steps=3, abstract=False):
    """The row's tiny config on one device: (cfg, model, state, jitted step, settings, store, builder, corpus).
    `abstract`: the state as `create_sharded_state` would make it, shapes only (nothing runs)."""
    r = row_parts(name, num_steps)
    state = r.state
    if not abstract:
        state, _ = train_state.create_sharded_state(
            jax.random.key(0), model=r.model, tx=r.tx, mesh=r.mesh, rules=r.rules, seq_len=r.cfg.seq_len,
            max_predictions=r.cfg.sas.max_predictions)
    return r.cfg, r.model, state, r.step, r.settings, r.builder.store, r.builder, r.corpus


def batch_ids(step, batch_size):
    return np.arange(batch_size) + batch_size * (step % 2)  # two steps per epoch: step 2 revisits


# Rows whose three-step tiny config (shared optimizer) is another row's: the same inputs to
# `row_parts`, so the same training; each is checked against its representative's run.
SAME_TINY_STEPS = {"bert_base": "bert_small", "bert_small_1_5x": "bert_small", "deberta_base": "deberta_small",
                   "sas_base": "sas_small", "sasda_base": "sasda_small"}


# Rows whose tiny step is another row's code path at another model shape: ELECTRA-Base's tiny
# variant keeps E == H (no discriminator E→H projection) and its generator ratio 1/3, nothing else
# differs. Their step is traced, not compiled (jax.eval_shape; an ELECTRA step compiles in ~8 s):
# the row's own model, heads, batches and metric names; the losses' values are the
# representative's run.
SAME_STEP_PATH = {"electra_base": "electra_small", "electra_da_base": "electra_da_small"}
SHAPE_ONLY = {"model.embedding_size", "model.generator_ratio"}


def flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


# The rows whose three steps run; every other row's run is one of theirs, or traced.
RUN_ROWS = tuple(sorted(set(ROWS) - set(SAME_TINY_STEPS) - set(SAME_STEP_PATH)))


@functools.lru_cache(maxsize=None)
def run_row(name):
    """Three steps of a `RUN_ROWS` row: (cfg, initial params, final step, settings, store, batches,
    metrics). Its `create_sharded_state` init (`train_state.init_fn` with the state's shardings as
    out_shardings, the same key) and its own `jit_train_step`, called with its own batches, samples
    written back to its store between steps. (Compiling rows of one family together in one jit
    saved compile time only with XLA:CPU's fusion emitters, which the tests no longer use.)"""
    r = row_parts(name)
    state = jax.jit(lambda key: nn.meta.unbox(r.init(key)), out_shardings=r.shardings)(jax.random.key(0))
    params = state.params
    batches, history = [], []
    for s in range(3):
        ids = batch_ids(s, r.cfg.batch_size)
        batch, pending = r.builder.build(r.corpus.read(ids), ids, s)
        state, metrics, sampled = r.step(state, batch, jax.random.key(1))
        if r.settings.sample:
            r.builder.write_back(pending, np.asarray(sampled))
        batches.append(batch)
        history.append(jax.device_get(metrics))
    return r.cfg, params, int(jax.device_get(state.step)), r.settings, r.builder.store, batches, history


@functools.lru_cache(maxsize=None)
def trained_three_steps(name, abstract=False):
    """Three steps of the row's tiny config: (cfg, initial params, final step, settings, store, batches, metrics)
    (a `RUN_ROWS` row: `run_row`).
    `abstract`: the same steps traced (`jax.eval_shape` of the row's jitted step), params and metrics
    as shapes; a row that samples needs its samples' values, so only non-sampling rows are traced."""
    if not abstract:
        return run_row(name)
    r = row_parts(name)
    assert not r.settings.sample
    state, params = r.state, r.state.params
    batches, history = [], []
    for s in range(3):
        ids = batch_ids(s, r.cfg.batch_size)
        batch, _ = r.builder.build(r.corpus.read(ids), ids, s)
        state, metrics, _ = jax.eval_shape(r.step, state, batch, jax.random.key(1))
        batches.append(batch)
        history.append(metrics)
    return r.cfg, params, state.step, r.settings, r.builder.store, batches, history


def test_rows_sharing_a_tiny_run_share_it_only_with_rows_of_the_same_structure():
    assert not set(SAME_TINY_STEPS) & set(SAME_STEP_PATH)
    for name, rep in {**SAME_TINY_STEPS, **SAME_STEP_PATH}.items():
        assert rep not in SAME_TINY_STEPS and rep not in SAME_STEP_PATH
        a, b = ROWS[name], ROWS[rep]
        assert (a.corruption, a.mlm, a.rtd, a.lam, a.cold_start, a.attention) == (
            b.corruption, b.mlm, b.rtd, b.lam, b.cold_start, b.attention)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ROWS))
def test_tiny_row_trains_three_steps_with_exactly_its_losses(name):
    row = ROWS[name]
    rep = SAME_TINY_STEPS.get(name, SAME_STEP_PATH.get(name, name))
    if name in SAME_TINY_STEPS:  # the same config trains the same three steps: the representative's run is this row's
        assert step_config(name).to_dict() == step_config(rep).to_dict()
        assert step_config(name) == step_config(rep)
    if name in SAME_STEP_PATH:  # only the model's shape differs: the row's own step, traced, names its metrics
        a, b = flat(step_config(name).to_dict()), flat(step_config(rep).to_dict())
        assert {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)} == SHAPE_ONLY
    _, _, final_step, _, _, _, run_history = trained_three_steps(rep, False)
    traced = name in SAME_STEP_PATH
    cfg, params, _, settings, store, batches, history = trained_three_steps(name if traced else rep, traced)

    want = {k for k, on in (("mlm_loss", row.mlm), ("rtd_loss", row.rtd)) if on}
    assert len(history) == len(run_history) == 3
    for m, r in zip(history, run_history):
        assert set(m) == set(r)
        assert {k for k in m if k.endswith("_loss")} == want
        assert ("hit_rate" in m) == (row.corruption == "sas")  # only SAS samples for a store
        assert ("rtd_lambda" in m) == row.rtd
        assert np.isfinite(r["loss"])
        total = r.get("mlm_loss", 0.0) + r.get("rtd_lambda", 0.0) * r.get("rtd_loss", 0.0)
        assert r["loss"] == pytest.approx(total, rel=1e-5)
    assert final_step == 3

    # The heads exist exactly when the row trains them.
    if row.corruption == "electra":
        per_network = {"generator_embeddings", "discriminator_embeddings"} if row.attention == "disentangled" else set()
        assert set(params) == {"embeddings", "generator", "generator_head", "discriminator", "discriminator_head",
                               *per_network}
        # What the Base rows' E == H changes: the discriminator has no E→H projection; the generator has one.
        proj = ("embed_proj", "generator_embeddings", "discriminator_embeddings") if per_network else (
            "embeddings_project", "generator", "discriminator")
        assert proj[0] in params[proj[1]] and (proj[0] in params[proj[2]]) == (row.embedding is not None)
    else:
        heads = {k for k, on in (("mlm_head", row.mlm), ("rtd_head", row.rtd)) if on}
        assert set(params) == {"embeddings", "encoder"} | heads
    encoder = params["discriminator" if row.corruption == "electra" else "encoder"]
    assert ("rel_embeddings" in encoder) == (row.attention == "disentangled")

    if row.corruption == "sas":  # samples stored, and read back on the revisit at step 2
        pos, tok, count, visited = store.read(batch_ids(0, cfg.batch_size))
        assert visited.all()
        assert not np.array_equal(batches[2]["input_ids"], batches[0]["input_ids"])
    else:  # never samples: no store rows, nothing returned for one
        assert store is None and not settings.sample
    if row.corruption in ("bert", "electra"):
        assert (batches[0]["input_ids"] == MASK).any()
    elif "uniform" not in (row.corruption, row.cold_start):  # uniform draws may be any id, [MASK] too
        assert not (batches[0]["input_ids"] == MASK).any()


@pytest.mark.slow
def test_train_and_evaluate_runs_electra_end_to_end_and_resumes(tmp_path, monkeypatch):
    """The trainer path (checkpoints with an empty store, a resume) for a non-SAS row. On one
    device, `train_and_evaluate`'s Trainer: the logic is the point here; ELECTRA's step on 8
    devices is tests/models/test_electra_da.py's, its held-out evaluation tests/test_evaluation.py's."""
    import json  # noqa: PLC0415

    from sas_jax import train  # noqa: PLC0415
    from sas_jax.corruption.static_batch import ElectraBatchBuilder  # noqa: PLC0415

    def never(*a, **k):
        raise AssertionError("a non-SAS row must not write samples back")

    monkeypatch.setattr(ElectraBatchBuilder, "write_back", never)
    cfg = load_config("electra_small", "tiny", ["model.num_layers=1"])  # one layer: the run's logic is the point
    cfg.num_train_steps, cfg.log.every_steps, cfg.ckpt.every_steps, cfg.log.tensorboard = 3, 1, 3, False
    corpus = markov_corpus(32, cfg.seq_len, cfg.model.vocab_size)

    def train_and_evaluate():  # train.train_and_evaluate is Trainer(...).run() on every device
        return train.Trainer(cfg, str(tmp_path), corpus=corpus, devices=jax.devices()[:1]).run()

    out = train_and_evaluate()
    assert out["step"] == 3 and {k for k in out if k.endswith("_loss")} == {"mlm_loss", "rtd_loss"}
    assert "hit_rate" not in out and out["rtd_lambda"] == 50.0
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [d["step"] for d in lines] == [1, 2, 3]
    store = np.load(next((tmp_path / "checkpoints" / "3" / "store").glob("*.npz")))
    assert store.files == []  # the store item exists, empty: every row has the same three items
    again = train_and_evaluate()  # restores step 3: nothing left to do
    assert again == {}
