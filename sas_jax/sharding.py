"""Mesh and sharding: the only place that maps logical axes to devices."""
from __future__ import annotations

import contextlib

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")  # the batch dimension is split over both

# Logical-axis rule sets, chosen by `mesh.rules`. Each maps a logical axis of the model
# (models/encoder.py: parameters use vocab/embed/hidden/mlp/heads/kv/layers, activations
# batch/length/act_*) to mesh axes; unnamed axes stay replicated.
SHARDING_RULES = {
    # Pure data parallel: parameters replicated, batch split over every device.
    "data_parallel": (("batch", ("data", "fsdp")),),
    # FSDP (ZeRO-3 style): parameters split along their `embed`/`hidden` dim too.
    "fsdp": (
        ("batch", ("data", "fsdp")),
        ("embed", "fsdp"),
    ),
    # Megatron-style tensor parallelism on top of FSDP.
    "fsdp_tensor": (
        ("batch", ("data", "fsdp")),
        ("embed", "fsdp"),
        ("mlp", "tensor"),
        ("heads", "tensor"),
        ("act_mlp", "tensor"),
        ("act_heads", "tensor"),
    ),
}


def make_mesh(mesh_cfg, devices=None) -> Mesh:
    """A (data, fsdp, tensor) mesh; one size may be -1 to take the remaining devices."""
    devices = list(jax.devices() if devices is None else devices)
    sizes = [mesh_axis_sizes(mesh_cfg, len(devices))[a] for a in MESH_AXES]
    return Mesh(np.asarray(devices).reshape(sizes), MESH_AXES)


def mesh_axis_sizes(mesh_cfg, num_devices: int) -> dict:
    """{axis: size} of the mesh `make_mesh` builds over `num_devices` devices (no devices needed)."""
    n = int(num_devices)
    sizes = [int(mesh_cfg.data), int(mesh_cfg.fsdp), int(mesh_cfg.tensor)]
    if sizes.count(-1) > 1:
        raise ValueError("mesh: at most one of mesh.data/fsdp/tensor may be -1")
    known = int(np.prod([s for s in sizes if s != -1]))
    if -1 in sizes:
        if n % known:
            raise ValueError(f"mesh: {n} devices cannot be split into fsdp*tensor={known}; "
                             "set mesh.fsdp and mesh.tensor to divisors of the device count")
        sizes[sizes.index(-1)] = n // known
    if int(np.prod(sizes)) != n:
        raise ValueError(f"mesh: data*fsdp*tensor={int(np.prod(sizes))} but there are {n} devices; "
                         "make the product equal the device count (or use -1 for one axis)")
    return dict(zip(MESH_AXES, sizes))


def logical_rules(mesh_cfg):
    """The rule list named by `mesh.rules`; unnamed logical axes stay replicated."""
    if mesh_cfg.rules not in SHARDING_RULES:
        raise ValueError(f"mesh.rules={mesh_cfg.rules!r} is unknown; use one of "
                         f"{sorted(SHARDING_RULES)}")
    return tuple(SHARDING_RULES[mesh_cfg.rules])


def batch_sharding(mesh: Mesh, ndim: int = 2) -> NamedSharding:
    """Rows split over (data, fsdp), other dimensions whole."""
    return NamedSharding(mesh, P(BATCH_AXES, *([None] * (ndim - 1))))


def batch_shardings(mesh: Mesh, keys) -> dict:
    """{key: `batch_sharding(mesh)`} for a batch dict of [B, ...] rows (the step's and the held-out batches)."""
    return {k: batch_sharding(mesh) for k in keys}


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def logical_to_shardings(boxed_tree, mesh: Mesh, rules):
    """NamedShardings for a tree of `nn.Partitioned` (or plain) abstract values."""
    specs = nn.get_partition_spec(boxed_tree)
    return nn.logical_to_mesh_sharding(specs, mesh, rules)


@contextlib.contextmanager
def activation_rules(mesh: Mesh, rules):
    """Context in which the model's `with_logical_constraint`s take effect."""
    with jax.sharding.use_abstract_mesh(mesh.abstract_mesh), nn.logical_axis_rules(rules):
        yield


def jit_with_rules(fn, mesh: Mesh, rules, **jit_kwargs):
    """`jax.jit(fn, **jit_kwargs)` traced under `activation_rules(mesh, rules)`: the one way a
    model function is jitted on the mesh (the train step, held-out sums, the fill-mask line)."""
    def traced(*args):
        with activation_rules(mesh, rules):
            return fn(*args)

    return jax.jit(traced, **jit_kwargs)


def num_batch_shards(mesh: Mesh) -> int:
    return mesh.shape["data"] * mesh.shape["fsdp"]
