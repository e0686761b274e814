"""Held-out evaluation during pre-training, the same measure for every objective.

`data.eval_rows` corpus rows are held out (a fixed subset, the same for every
run, seed and objective: `held_out_ids`) and never read by training. Each is
corrupted once, as a pure function of (EVAL_SEED, example id), at the same
whole-word positions (`sas.mask_rate`, as training selects them) in two ways:

- `masked`: every selected token becomes [MASK];
- `replaced`: every selected token becomes a unigram draw (no sqrt warm-up).

and evaluated with dropout off (`deterministic=True`):

| metric (logged as `eval/<name>`) | input | head |
|---|---|---|
| `mlm_loss`, `mlm_accuracy` | masked | MLM (ELECTRA: the generator) |
| `mlm_loss_replaced` | replaced | MLM |
| `sample_hit`, `sample_hit_replaced` | masked, replaced | MLM |
| `rtd_accuracy`, `rtd_auc`, `rtd_baseline` | replaced | RTD (ELECTRA: the discriminator) |

`rtd_baseline` is the accuracy of calling every token original (1 − replaced
share); `rtd_auc` is the ROC AUC of the RTD logit for "replaced" over non-pad
positions (from 2,048-bin histograms summed on the device, so it is exact up to
ties inside a bin and needs no gather). The MLM losses are comparable across
objectives because every row sees the same positions with the same inputs.
Two reference levels come with them: `unigram_entropy`, the entropy of the
corpus's token frequencies (printed once), and `unigram_ce` (logged), the
cross-entropy of those frequencies at exactly the held-out positions: the loss
of a model that knows how common each token is but ignores context. Whole-word
positions favour rarer pieces, so `unigram_ce` is the higher, fairer bar.

`sample_hit` is the probability that one draw from the MLM head's softmax (at
`sas.temperature`, as SAS samples) equals the original token, averaged over the
held-out positions: the expected hit rate of the samples SAS would store, with
no sampling noise. `sample_hit_replaced` is the same with the unigram-replaced
input, the condition of SAS's later epochs (the position holds a corrupted
token, not [MASK]). `unigram_hit` (logged) is the same for unigram draws, the
level of samples that ignore context. Unlike the training `hit_rate`, whose
inputs change with the cold start, these compare across epochs.

Every process builds only its slice of each global eval batch (the same layout
as training's), and the sums come back replicated, so a run with any number of
processes, resumed or not, reports the same figures.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sas_jax import sharding
from sas_jax.corruption import keyed_random, masking
from sas_jax.corruption.batch import BATCH_KEYS, assemble
from sas_jax.corruption.cold_start import ColdStartSampler
from sas_jax.data import pipeline
from sas_jax.errors import UserError

EVAL_SEED = 0x5E7A1  # not config.seed: every run sees the same held-out rows and corruption
AUC_BINS = 2048


def held_out_ids(num_rows: int, eval_rows: int) -> np.ndarray:
    """The sorted ids of the held-out rows: a fixed random subset of the corpus."""
    if eval_rows <= 0:
        return np.zeros((0,), np.int64)
    if eval_rows >= num_rows:
        raise UserError(f"data.eval_rows={eval_rows} leaves no training rows of the corpus's {num_rows}; "
                        "hold out fewer rows")
    return np.sort(np.random.default_rng(EVAL_SEED).choice(num_rows, eval_rows, replace=False)).astype(np.int64)


def unigram_entropy(unigram_counts, special_table) -> float:
    """Entropy (nats) of the corpus's token frequencies over non-special ids."""
    counts = np.asarray(unigram_counts, np.float64).copy()
    special = np.asarray(special_table, bool)
    counts[: special.size][special[: counts.size]] = 0.0
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def corrupt(rows_BxL, example_ids, *, tokenizer, sampler: ColdStartSampler, mask_rate: float,
            max_predictions: int) -> dict:
    """{'masked': batch, 'replaced': batch} of held-out rows (numpy, the step's `BATCH_KEYS`)."""
    x = np.asarray(rows_BxL, np.int32)
    length = x.shape[1]
    streams = keyed_random.Streams(EVAL_SEED, 0, example_ids)
    input_mask = x != tokenizer.pad_id
    special = np.asarray(tokenizer.special_table, bool)
    eligible = input_mask & ~special[x]
    n = masking.target_counts(input_mask, mask_rate)
    selected = masking.select_whole_words(streams.uniform(0, length), np.asarray(tokenizer.word_start_table,
                                                                                 bool)[x], eligible, n)
    positions, valid = masking.positions_from_mask(selected, max_predictions)
    replacements = sampler.tokens(streams.uniform(1, length), step=sampler.warmup_steps)  # plain unigram
    return {name: assemble(x, np.where(selected, tokens, x).astype(np.int32), input_mask, positions, valid)
            for name, tokens in (("masked", np.full_like(x, tokenizer.mask_id)), ("replaced", replacements))}


def batch_sums(params, masked, replaced, *, model, temperature: float = 1.0) -> dict:
    """Additive statistics of one held-out batch (pure; jitted by `HeldOut`)."""
    sums = {}
    for name, batch in (("masked", masked), ("replaced", replaced)):
        out = model.apply({"params": params}, batch["input_ids"], batch["input_mask"], batch["mlm_positions"],
                          deterministic=True)
        if "mlm_logits" in out:
            logits = out["mlm_logits"].astype(jnp.float32)
            w = batch["mlm_weights"].astype(jnp.float32)
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["mlm_targets"])
            sums[f"{name}/mlm_ce"] = (ce * w).sum()
            sums[f"{name}/mlm_correct"] = ((jnp.argmax(logits, -1) == batch["mlm_targets"]) * w).sum()
            log_q = jax.nn.log_softmax(logits / temperature, axis=-1)  # the distribution SAS samples
            p_true = jnp.exp(jnp.take_along_axis(log_q, batch["mlm_targets"][..., None], axis=-1)[..., 0])
            sums[f"{name}/sample_hit"] = (p_true * w).sum()
            sums[f"{name}/mlm_slots"] = w.sum()
        if name == "replaced" and "rtd_logits" in out:
            logits = out["rtd_logits"].astype(jnp.float32)
            y = batch["rtd_labels"].astype(jnp.float32)
            m = batch["input_mask"].astype(jnp.float32)
            sums["rtd_correct"] = (((logits > 0) == (y > 0)) * m).sum()
            sums["rtd_positions"] = m.sum()
            sums["rtd_replaced"] = (y * m).sum()
            bins = jnp.clip((jax.nn.sigmoid(logits) * AUC_BINS).astype(jnp.int32), 0, AUC_BINS - 1)
            sums["rtd_hist_pos"] = jnp.zeros(AUC_BINS, jnp.float32).at[bins.ravel()].add((y * m).ravel())
            sums["rtd_hist_neg"] = jnp.zeros(AUC_BINS, jnp.float32).at[bins.ravel()].add(((1 - y) * m).ravel())
    return sums


def auc_from_histograms(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a positive > score of a negative) + ½ P(same bin), from per-bin counts."""
    pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
    if pos.sum() == 0 or neg.sum() == 0:
        return float("nan")
    neg_below = np.cumsum(neg) - neg
    return float((pos * (neg_below + 0.5 * neg)).sum() / (pos.sum() * neg.sum()))


def summarize(sums: dict) -> dict:
    """The logged figures from the summed statistics."""
    out = {}
    for name, key in (("masked", "mlm_loss"), ("replaced", "mlm_loss_replaced")):
        if f"{name}/mlm_slots" in sums:
            slots = max(float(sums[f"{name}/mlm_slots"]), 1.0)
            out[key] = float(sums[f"{name}/mlm_ce"]) / slots
            out["sample_hit" + ("" if name == "masked" else "_replaced")] = float(sums[f"{name}/sample_hit"]) / slots
            if name == "masked":
                out["mlm_accuracy"] = float(sums[f"{name}/mlm_correct"]) / slots
    if "rtd_positions" in sums:
        positions = max(float(sums["rtd_positions"]), 1.0)
        out["rtd_accuracy"] = float(sums["rtd_correct"]) / positions
        out["rtd_baseline"] = 1.0 - float(sums["rtd_replaced"]) / positions
        out["rtd_auc"] = auc_from_histograms(sums["rtd_hist_pos"], sums["rtd_hist_neg"])
    return out


class HeldOut:
    """The held-out batches of this process and the jitted evaluation over them."""

    def __init__(self, config, corpus, *, vocab_size: int, model, mesh, rules, ids: np.ndarray):
        self.ids = np.asarray(ids, np.int64)
        batch = int(config.batch_size)
        if self.ids.size % batch:
            raise UserError(f"data.eval_rows={self.ids.size} is not a multiple of batch_size={batch}; "
                            f"use a multiple such as {max(batch, self.ids.size // batch * batch)}")
        tok = corpus.tokenizer
        counts = np.zeros(vocab_size, np.int64)
        corpus_counts = np.asarray(corpus.unigram_counts)
        counts[: corpus_counts.size] = corpus_counts
        self.unigram_entropy = unigram_entropy(counts, tok.special_table)
        sampler = ColdStartSampler("unigram", vocab_size, counts, warmup_steps=0)
        # Global eval batch k is ids[k*B:(k+1)*B]; process i holds its contiguous slice of it.
        local = batch // jax.process_count()
        lo = jax.process_index() * local
        self.batches = []
        for k in range(self.ids.size // batch):
            mine = self.ids[k * batch + lo: k * batch + lo + local]
            self.batches.append(corrupt(corpus.read(mine), mine, tokenizer=tok, sampler=sampler,
                                        mask_rate=config.sas.mask_rate,
                                        max_predictions=config.sas.max_predictions))
        # The loss of a model that knows the token frequencies but ignores context, at exactly
        # the held-out positions (whole words favour rarer pieces, so it exceeds the entropy).
        log_p = np.log(np.maximum(sampler.probs, 1e-30))
        nll = sum(float((-log_p[b["masked"]["mlm_targets"]] * b["masked"]["mlm_weights"]).sum()) for b in self.batches)
        slots = sum(float(b["masked"]["mlm_weights"].sum()) for b in self.batches)
        self.unigram_ce = self._global_mean(nll, slots)
        hits = sum(float((sampler.probs[b["masked"]["mlm_targets"]] * b["masked"]["mlm_weights"]).sum())
                   for b in self.batches)
        self.unigram_hit = self._global_mean(hits, slots)  # P(a unigram draw equals the original token)
        self.shardings = sharding.batch_shardings(mesh, BATCH_KEYS)
        fn = functools.partial(batch_sums, model=model, temperature=float(config.sas.temperature))
        self._fn = sharding.jit_with_rules(fn, mesh, rules, out_shardings=sharding.replicated(mesh))
        # Placed once, as global arrays (each process gives its rows), so an evaluation inside the
        # trainer's no-implicit-transfer loop moves nothing but the summed figures back.
        self.device_batches = [(pipeline.to_global(b["masked"], self.shardings),
                                pipeline.to_global(b["replaced"], self.shardings)) for b in self.batches]

    @staticmethod
    def _global_mean(total: float, count: float) -> float:
        """total / count summed over every process (each holds its slice of the held-out rows)."""
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils  # noqa: PLC0415

            total, count = np.asarray(multihost_utils.process_allgather(np.asarray([total, count]))).reshape(-1, 2).sum(0)
        return float(total) / max(float(count), 1.0)

    def __len__(self) -> int:
        return self.ids.size

    def evaluate(self, params) -> dict:
        """The figures of `summarize` over every held-out batch.

        Each batch's sums reach the host before the next batch starts. On one CPU with several
        devices, a loop that queues programs without waiting can fill a device's queue of
        in-flight programs while a program with collectives waits for that device, and XLA's
        CPU runtime then deadlocks (seen in the test suite); the wait costs nothing here."""
        total = None
        for masked, replaced in self.device_batches:
            sums = jax.device_get(self._fn(params, masked, replaced))
            total = sums if total is None else jax.tree.map(np.add, total, sums)
        if total is None:
            return {}
        out = summarize(total)
        if "mlm_loss" in out:
            out.update(unigram_ce=self.unigram_ce, unigram_hit=self.unigram_hit)
        return out


def fill_mask_example(corpus, ids, *, mask_rate: float, max_predictions: int, common: int = 200):
    """(example id, position) of the demo's fill-mask line, chosen without the model: the first
    held-out position (in id order) whose token is a whole one-piece word among the `common`
    most frequent tokens, so that the line shows an easy case; else the first position."""
    tok = corpus.tokenizer
    counts = np.asarray(corpus.unigram_counts, np.float64)
    rank = np.empty(counts.size, np.int64)
    rank[np.argsort(-counts, kind="stable")] = np.arange(counts.size)
    starts = np.asarray(tok.word_start_table, bool)
    sampler = ColdStartSampler("uniform", max(int(corpus.vocab_size), 1))
    first = None
    for i in np.asarray(ids[:64], np.int64):
        row = corpus.read(np.asarray([i]))
        b = corrupt(row, np.asarray([i]), tokenizer=tok, sampler=sampler, mask_rate=mask_rate,
                    max_predictions=max_predictions)["masked"]
        for p, w in zip(b["mlm_positions"][0], b["mlm_weights"][0]):
            if w <= 0:
                continue
            first = first or (int(i), int(p))
            t = int(row[0, p])
            whole = starts[t] and (p + 1 >= row.shape[1] or starts[int(row[0, p + 1])])
            if whole and rank[t] < common and not tok.special_table[t]:
                return int(i), int(p)
    return first


def fill_mask_line(model, params, corpus, example_id: int, position: int, *, mesh, rules, top_k: int = 3,
                   context_chars: int = 60) -> str:
    """One human-readable fill-mask line: `position` of held-out row `example_id` becomes
    [MASK], and the model's top-k pieces are shown beside the truth."""
    tok = corpus.tokenizer
    row = corpus.read(np.asarray([example_id]))
    pos = int(position)
    ids = row.copy()
    truth = int(ids[0, pos])
    ids[0, pos] = tok.mask_id
    rep = sharding.replicated(mesh)

    def fn(p, x, m, q):
        return model.apply({"params": p}, x, m, q, deterministic=True)["mlm_logits"][0, 0]

    # Replicated global arrays built from the same host values on every process.
    args = [jax.make_array_from_callback(a.shape, rep, lambda index, a=a: a[index])
            for a in (ids, (ids != tok.pad_id).astype(np.int32), np.asarray([[pos]], np.int32))]
    logits = np.asarray(jax.device_get(sharding.jit_with_rules(fn, mesh, rules, out_shardings=rep)(params, *args)),
                        np.float64)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    best = np.argsort(-probs)[:top_k]

    def text(piece_ids):
        return tok.decode([int(i) for i in piece_ids if int(i) != tok.pad_id and int(i) != tok.cls_id])

    left, right = text(ids[0, :pos])[-context_chars:], text(ids[0, pos + 1:])[:context_chars]
    guesses = ", ".join(f"{tok.id_to_piece(int(i))!r} {probs[i]:.2f}" for i in best)
    return (f"fill-mask (held-out row {example_id}): ...{left} [MASK] {right}... -> {guesses}; "
            f"truth {tok.id_to_piece(truth)!r} (p={probs[truth]:.2f})")
