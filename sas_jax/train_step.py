"""The pure pre-training step and its one jit signature.

`train_step(state, batch, rng) -> (state, metrics, sampled_tokens)` runs one
encoder forward that serves the MLM loss (at the gathered slots) and the RTD
loss (everywhere), draws the next visit's tokens from the same MLM logits under
stop-gradient, and applies the optimizer update.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax

from sas_jax import losses, optim, sharding

BATCH_KEYS = ("input_ids", "input_mask", "mlm_positions", "mlm_targets", "mlm_weights", "rtd_labels")


@dataclasses.dataclass(frozen=True)
class StepSettings:
    """Static (hashable) pieces of the objective, bound into the step."""

    use_mlm: bool = True
    use_rtd: bool = True
    sample: bool = True  # draw next-visit tokens from the MLM softmax (SAS)
    temperature: float = 1.0
    lambda_schedule: str = "epochwise"
    lambda_start: float = 50.0
    lambda_end: float = 200.0
    steps_per_epoch: int = 1
    num_epochs: int = 1

    @classmethod
    def from_config(cls, config, steps_per_epoch: int) -> "StepSettings":
        num_epochs = max(1, -(-int(config.num_train_steps) // int(steps_per_epoch)))
        s = config.sas
        return cls(temperature=float(s.temperature), lambda_schedule=s.lambda_schedule,
                   lambda_start=float(s.lambda_start), lambda_end=float(s.lambda_end),
                   steps_per_epoch=int(steps_per_epoch), num_epochs=num_epochs)

    def rtd_weight(self, step):
        return optim.rtd_weight(step, schedule=self.lambda_schedule, start=self.lambda_start,
                                end=self.lambda_end, steps_per_epoch=self.steps_per_epoch,
                                num_epochs=self.num_epochs)


def train_step(state, batch, rng, *, model, tx, lr_schedule, settings: StepSettings):
    step_rng = jax.random.fold_in(rng, state.step)
    dropout_rng, sample_rng = jax.random.split(step_rng)
    lam = settings.rtd_weight(state.step)

    def loss_fn(params):
        out = model.apply({"params": params}, batch["input_ids"], batch["input_mask"],
                          batch["mlm_positions"], deterministic=False, rngs={"dropout": dropout_rng})
        total = jnp.float32(0.0)
        aux = {}
        if settings.use_mlm:
            mlm, m = losses.mlm_loss(out["mlm_logits"], batch["mlm_targets"], batch["mlm_weights"])
            total, aux = total + mlm, {**aux, "mlm_loss": mlm, **m}
        if settings.use_rtd:
            rtd, m = losses.rtd_loss(out["rtd_logits"], batch["rtd_labels"], batch["input_mask"])
            total, aux = total + lam * rtd, {**aux, "rtd_loss": rtd, **m}
        return total, (aux, out.get("mlm_logits"))

    (loss, (metrics, mlm_logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)

    # Sample before the update: the pre-update weights produced these logits.
    if settings.sample:
        sampled = losses.sample_tokens(sample_rng, mlm_logits, settings.temperature)
        w = batch["mlm_weights"].astype(jnp.float32)
        metrics["hit_rate"] = ((sampled == batch["mlm_targets"]) * w).sum() / jnp.maximum(w.sum(), 1.0)
    else:
        sampled = jnp.zeros_like(batch["mlm_positions"])

    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics.update(
        loss=loss,
        rtd_lambda=lam,
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

    def traced(state, batch, rng):
        with sharding.activation_rules(mesh, rules):
            return step_fn(state, batch, rng)

    batch_shardings = {k: sharding.batch_sharding(mesh) for k in BATCH_KEYS}
    return jax.jit(
        traced,
        in_shardings=(state_shardings, batch_shardings, sharding.replicated(mesh)),
        out_shardings=(state_shardings, sharding.replicated(mesh), sharding.batch_sharding(mesh)),
        donate_argnums=(0,),
    )
