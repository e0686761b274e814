"""The pure pre-training step and its one jit signature.

`train_step(state, batch, rng) -> (state, metrics, sampled_tokens)` serves every
objective (`sas_jax/objectives.py`) from `forward`:

- SAS / BERT / unigram / uniform (`PretrainingModel`): one encoder forward feeds
  the MLM loss (at the gathered slots) and the RTD loss (everywhere), as the row's
  heads call for. SAS (`settings.sample`) draws the next visit's tokens from the
  same MLM logits under stop-gradient, before the optimizer update.
- ELECTRA (`settings.generator`, `ElectraModel`): in one `apply`, the generator
  reads the [MASK]ed input, its stop-gradient logits are Gumbel-max sampled into
  the selected positions of the original ids, and the discriminator reads that;
  `is_fake = selected & (sample != original)`.

The metrics hold exactly the losses the row trains (`mlm_loss` / `rtd_loss`), and
`hit_rate` only where the model's samples are kept (SAS).
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax

from sas_jax import losses, optim, sharding
from sas_jax.corruption.batch import BATCH_KEYS  # noqa: F401 (the step's batch: the builders' keys)


@dataclasses.dataclass(frozen=True)
class StepSettings:
    """Static (hashable) pieces of the objective, bound into the step; filled by
    `objectives.Objective.step_settings` (this module never reads the config)."""

    use_mlm: bool = True
    use_rtd: bool = True
    sample: bool = True  # SAS: draw next-visit tokens from the MLM softmax, returned for the store
    generator: bool = False  # ELECTRA: Gumbel-sample the generator into the discriminator's input
    temperature: float = 1.0
    lambda_schedule: str = "epochwise"
    lambda_start: float = 50.0
    lambda_end: float = 200.0
    steps_per_epoch: int = 1
    num_epochs: int = 1
    rtd_off_steps: int = 0  # steps with λ = 0 (SAS's `mlm` cold phase has no replaced-token task)

    def rtd_weight(self, step):
        lam = optim.rtd_weight(step, schedule=self.lambda_schedule, start=self.lambda_start,
                               end=self.lambda_end, steps_per_epoch=self.steps_per_epoch,
                               num_epochs=self.num_epochs)
        if self.rtd_off_steps:
            lam = jnp.where(step < self.rtd_off_steps, 0.0, lam)
        return lam


def gumbel_sample(rng, logits_BxPxV, temperature: float = 1.0):
    """ELECTRA's Gumbel-max draw: argmax(logits/T + g), g = -log(-log(u + 1e-9) + 1e-9), no gradient."""
    logits = jax.lax.stop_gradient(logits_BxPxV.astype(jnp.float32))
    u = jax.random.uniform(rng, logits.shape, jnp.float32)
    g = -jnp.log(-jnp.log(u + 1e-9) + 1e-9)
    return jnp.argmax(logits / temperature + g, axis=-1).astype(jnp.int32)


def scatter_slots(ids_BxL, positions_BxP, tokens_BxP, valid_BxP):
    """ids with ids[b, positions[b, p]] = tokens[b, p] at valid slots; a repeated position takes
    its first valid slot's token (deterministic, unlike a scatter of duplicates)."""
    p = positions_BxP.shape[1]
    earlier = jnp.tril(jnp.ones((p, p), bool), k=-1)[None, :, :]
    same = (positions_BxP[:, :, None] == positions_BxP[:, None, :]) & valid_BxP[:, None, :] & earlier
    first = valid_BxP & ~same.any(axis=-1)
    index = jnp.where(first, positions_BxP, ids_BxL.shape[1])  # out of range: dropped
    return jax.vmap(lambda row, i, t: row.at[i].set(t.astype(row.dtype), mode="drop"))(ids_BxL, index, tokens_BxP)


def forward(params, batch, dropout_rng, sample_rng, *, model, settings: StepSettings):
    """The row's training-mode forward: (model outputs, RTD labels [B, L], 1 = replaced).

    ELECTRA's outputs add `discriminator_ids` (what the discriminator read),
    `original_ids` and `generator_samples [B, P]`.
    """
    ids, mask, positions = batch["input_ids"], batch["input_mask"], batch["mlm_positions"]
    rngs = {"dropout": dropout_rng}
    if not settings.generator:
        out = model.apply({"params": params}, ids, mask, positions, deterministic=False, rngs=rngs)
        return out, batch["rtd_labels"]
    valid = batch["mlm_weights"] > 0
    original = scatter_slots(ids, positions, batch["mlm_targets"], valid)  # undo the [MASK]s

    def corrupt(logits_BxPxV):  # already under stop-gradient
        return scatter_slots(original, positions, gumbel_sample(sample_rng, logits_BxPxV, settings.temperature),
                             valid)

    out = model.apply({"params": params}, ids, mask, positions, deterministic=False, rngs=rngs,
                      corrupt_fn=corrupt)
    out["original_ids"] = original
    out["generator_samples"] = gumbel_sample(sample_rng, out["mlm_logits"], settings.temperature)  # same draw
    return out, (out["discriminator_ids"] != original).astype(jnp.int32)


def train_step(state, batch, rng, *, model, tx, lr_schedule, settings: StepSettings):
    step_rng = jax.random.fold_in(rng, state.step)
    dropout_rng, sample_rng = jax.random.split(step_rng)
    lam = settings.rtd_weight(state.step)

    def loss_fn(params):
        out, rtd_labels = forward(params, batch, dropout_rng, sample_rng, model=model, settings=settings)
        total = jnp.float32(0.0)
        aux = {}
        if settings.use_mlm:
            mlm, m = losses.mlm_loss(out["mlm_logits"], batch["mlm_targets"], batch["mlm_weights"])
            total, aux = total + mlm, {**aux, "mlm_loss": mlm, **m}
        if settings.use_rtd:
            rtd, m = losses.rtd_loss(out["rtd_logits"], rtd_labels, batch["input_mask"])
            total, aux = total + lam * rtd, {**aux, "rtd_loss": rtd, **m}
        return total, (aux, out.get("mlm_logits"), out.get("generator_samples"))

    (loss, (metrics, mlm_logits, gen_samples)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)

    # Sample before the update: the pre-update weights produced these logits.
    if settings.sample:
        sampled = losses.sample_tokens(sample_rng, mlm_logits, settings.temperature)
        w = batch["mlm_weights"].astype(jnp.float32)
        metrics["hit_rate"] = ((sampled == batch["mlm_targets"]) * w).sum() / jnp.maximum(w.sum(), 1.0)
    elif settings.generator:
        sampled = gen_samples  # consumed on the device already; returned for inspection only
    else:
        sampled = jnp.zeros_like(batch["mlm_positions"])

    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    if settings.use_rtd:
        metrics["rtd_lambda"] = lam
    metrics.update(
        loss=loss,
        learning_rate=lr_schedule(state.step),
        grad_norm=optax.tree.norm(grads),
        param_norm=optax.tree.norm(params),
        update_norm=optax.tree.norm(updates),
    )
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
    return new_state, metrics, sampled


def jit_train_step(*, model, tx, lr_schedule, settings, mesh, rules, state_shardings):
    """The one jit signature of the step: explicit shardings, donated state.

    Used by the trainer, the benchmark and the tests alike.
    """
    step_fn = functools.partial(train_step, model=model, tx=tx, lr_schedule=lr_schedule,
                                settings=settings)
    return sharding.jit_with_rules(
        step_fn, mesh, rules,
        in_shardings=(state_shardings, sharding.batch_shardings(mesh, BATCH_KEYS), sharding.replicated(mesh)),
        out_shardings=(state_shardings, sharding.replicated(mesh), sharding.batch_sharding(mesh)),
        donate_argnums=(0,),
    )
