"""The one mixed-precision matmul: bf16 operands, a float32 result, bf16 backward matmuls.

`einsum_f32(spec, a, b)` is `jnp.einsum(spec, a, b, preferred_element_type=float32)`
(attention scores, MLM logits, the disentangled c2p/p2c terms: what a softmax reads
must be float32). Left to autodiff, its backward matmuls would take the float32
cotangent times a bf16 operand, a mixed dot that XLA runs in float32 (on a GPU at
TF32 or FP32 speed, not bf16's). Here the cotangent is cast to the operands' dtype
first, so both backward matmuls are bf16 x bf16 with float32 accumulation, as in
every bf16 trainer (flash attention's dS, the LM head's dlogits).

With float32 operands it is the plain einsum (no custom rule): f32 runs are unchanged.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def einsum_f32(spec: str, a, b):
    """`spec` einsum of `a`, `b` with a float32 result; bf16-operand backward (module doc)."""
    if a.dtype == jnp.float32 and b.dtype == jnp.float32:
        return jnp.einsum(spec, a, b, preferred_element_type=jnp.float32)
    if a.dtype != b.dtype:
        b = b.astype(a.dtype)
    return _einsum_f32(spec, a, b)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _einsum_f32(spec, a, b):
    return jnp.einsum(spec, a, b, preferred_element_type=jnp.float32)


def _fwd(spec, a, b):
    return _einsum_f32(spec, a, b), (a, b)


def _bwd(spec, res, g):
    a, b = res
    _, vjp = jax.vjp(lambda x, y: jnp.einsum(spec, x, y), a, b)  # bf16 in, bf16 out
    return vjp(g.astype(a.dtype))


_einsum_f32.defvjp(_fwd, _bwd)


def jaxpr_equations(jaxpr, prefix=""):
    """(name stack, equation) of every equation of `jaxpr`, sub-jaxprs (pjit, custom_vjp,
    checkpoint) included: how the tests and the device check read the dtypes of a compiled step."""
    for e in jaxpr.eqns:
        where = f"{prefix}/{e.source_info.name_stack}"
        yield where, e
        for p in e.params.values():
            for sub in p if isinstance(p, (list, tuple)) else (p,):
                if hasattr(sub, "jaxpr") and hasattr(sub, "consts"):
                    yield from jaxpr_equations(sub.jaxpr, where)
                elif hasattr(sub, "eqns"):
                    yield from jaxpr_equations(sub, where)
