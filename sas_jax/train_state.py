"""The train state and its abstract, sharded initialisation."""
from __future__ import annotations

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sas_jax import sharding


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any


def dummy_inputs(batch_size: int, seq_len: int, max_predictions: int):
    ids = jnp.zeros((batch_size, seq_len), jnp.int32)
    return ids, jnp.ones_like(ids), jnp.zeros((batch_size, max_predictions), jnp.int32)


def init_fn(rng, *, model, tx, seq_len: int, max_predictions: int):
    """Builds the (boxed) state from one key; traced abstractly, never run eagerly."""
    ids, mask, pos = dummy_inputs(1, seq_len, max_predictions)
    params = model.init({"params": rng, "dropout": rng}, ids, mask, pos, deterministic=True)["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))


def create_sharded_state(rng, *, model, tx, mesh, rules, seq_len: int, max_predictions: int):
    """eval_shape → logical specs → mesh shardings → jitted init with out_shardings.

    Returns (state, state_shardings); the state is born sharded on the mesh.
    """
    def boxed(r):
        return init_fn(r, model=model, tx=tx, seq_len=seq_len, max_predictions=max_predictions)

    # No activation rules here: init only needs the parameter shardings, and
    # DenseGeneral's reshaped kernel init would trip over activation constraints.
    abstract = jax.eval_shape(boxed, rng)
    shardings = sharding.logical_to_shardings(abstract, mesh, rules)
    init = jax.jit(lambda r: nn.meta.unbox(boxed(r)), out_shardings=shardings)
    return init(rng), shardings


def param_count(params) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(params)))
