"""Optimizer and schedules: AdamW with masked weight decay, warm-up + linear decay, λ."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

NO_DECAY_NAMES = ("bias", "scale")  # biases and LayerNorm scale/offset are not decayed


def learning_rate_schedule(opt_cfg, num_train_steps: int) -> optax.Schedule:
    """Linear warm-up from 0 to the peak, then linear decay to 0 at the last step."""
    warmup = int(opt_cfg.warmup_steps)
    peak = float(opt_cfg.learning_rate)
    decay_steps = max(int(num_train_steps) - warmup, 1)
    return optax.join_schedules(
        [optax.linear_schedule(0.0, peak, max(warmup, 1)), optax.linear_schedule(peak, 0.0, decay_steps)],
        [warmup],
    )


def decay_mask(params):
    """True for the parameters that get weight decay: kernels and embedding tables."""
    def keep(path, _):
        return getattr(path[-1], "key", None) not in NO_DECAY_NAMES
    return jax.tree_util.tree_map_with_path(keep, params)


def make_optimizer(opt_cfg, num_train_steps: int) -> optax.GradientTransformation:
    schedule = learning_rate_schedule(opt_cfg, num_train_steps)
    parts = []
    if opt_cfg.grad_clip_norm > 0:
        parts.append(optax.clip_by_global_norm(opt_cfg.grad_clip_norm))
    parts.append(optax.adamw(schedule, b1=opt_cfg.b1, b2=opt_cfg.b2, eps=opt_cfg.eps,
                             weight_decay=opt_cfg.weight_decay, mask=decay_mask))
    return optax.chain(*parts)


def rtd_weight(step, *, schedule: str, start: float, end: float, steps_per_epoch: int,
               num_epochs: int):
    """λ of the RTD loss at `step`: constant (SASc) or epoch-wise linear (SAS).

    Epoch-wise: λ_e = start + (end - start) · e / (E - 1), piecewise constant within
    an epoch (e = step // steps_per_epoch, 0-based; E = epochs of the run).
    """
    if schedule == "constant":
        return jnp.float32(start)
    if schedule != "epochwise":
        raise ValueError(f"sas.lambda_schedule={schedule!r}; use constant or epochwise")
    epoch = jnp.minimum(step // steps_per_epoch, num_epochs - 1)
    frac = epoch / max(num_epochs - 1, 1)
    return jnp.float32(start) + (end - start) * frac.astype(jnp.float32)
