"""Checkpoint saves on 8 devices (conftest): the jax.Array handler `checkpointing` registers
writes a replicated array whole unless each replica's slice would be 4 MiB or more (then the
replicas split it, as orbax's default does for every replicated array); either way a restore
gives back every bit that was saved, with the sharding asked for."""
import contextlib
import logging
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from sas_jax import checkpointing


class State(NamedTuple):
    params: dict
    step: jax.Array


def _state() -> State:
    mesh = jax.make_mesh((8,), ("data",))
    replicated, split = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    rng = np.random.default_rng(0)
    params = {
        "matrix": rng.standard_normal((256, 160), dtype=np.float32),
        "bf16": rng.standard_normal((40, 24)).astype(jnp.bfloat16),
        "ids": rng.integers(-2**31, 2**31 - 1, size=(16,), dtype=np.int32),
        "sharded": rng.standard_normal((64, 8), dtype=np.float32),
    }
    params = {k: jax.device_put(v, split if k == "sharded" else replicated) for k, v in params.items()}
    return State(params, jax.device_put(np.int32(7), replicated))


def _bits(x) -> np.ndarray:
    a = np.asarray(x)
    return a.view(np.dtype(f"u{a.dtype.itemsize}"))


@contextlib.contextmanager
def _min_slice_bytes(n):
    """The handler with another threshold while the block runs (0: every replicated array split,
    orbax's default), then the package's again."""
    package = ocp.type_handlers.get_type_handler(jax.Array)
    split = ocp.type_handlers.ArrayHandler(min_slice_bytes_for_replica_parallel=n,
                                           array_metadata_store=package._array_metadata_store)
    with checkpointing._quiet_absl():
        ocp.type_handlers.register_type_handler(jax.Array, split, override=True)
    try:
        yield
    finally:
        with checkpointing._quiet_absl():
            ocp.type_handlers.register_type_handler(jax.Array, package, override=True)


def _save(folder, state, meta) -> None:
    """`state` saved as step 3 (an async save, waited for) and the checkpointer closed."""
    ckpt = checkpointing.Checkpointer(str(folder), keep=2, async_save=True)
    try:
        ckpt.save(3, state, None, meta)
        ckpt.wait()
    finally:
        ckpt.close()


@pytest.mark.parametrize("slices", [
    "whole (this package)",
    # orbax's default: a big array's path here, every array's before; ~25 slicing compiles (4 s)
    pytest.param("split over the replicas", marks=pytest.mark.slow),
])
def test_a_save_on_8_devices_restores_bit_for_bit(tmp_path, slices):
    state = _state()
    checkpointing._register_array_handler()
    assert (ocp.type_handlers.get_type_handler(jax.Array)._min_slice_bytes_for_replica_parallel
            == checkpointing._MIN_REPLICA_SLICE_BYTES > state.params["matrix"].nbytes)
    meta = {"config": {}, "param_shapes": checkpointing.param_shapes(state.params), "data": {}}
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
    with _min_slice_bytes(0) if slices.startswith("split") else contextlib.nullcontext():
        _save(tmp_path, state, meta)
    ckpt = checkpointing.Checkpointer(str(tmp_path), keep=2, async_save=True)
    try:
        restored, restored_meta, step = ckpt.restore_latest(abstract, None)
    finally:
        ckpt.close()
    assert step == 3 and restored_meta == meta
    saved, back = jax.tree.leaves(state), jax.tree.leaves(restored)
    assert [x.dtype for x in back] == [x.dtype for x in saved]
    assert [x.sharding for x in back] == [x.sharding for x in saved]
    for x, y in zip(saved, back):
        np.testing.assert_array_equal(_bits(y), _bits(x))


def test_the_array_handler_is_registered_once_and_quietly(monkeypatch, caplog):
    monkeypatch.setitem(checkpointing._array_handler, "registered", False)
    with caplog.at_level(logging.DEBUG):
        checkpointing._register_array_handler()
        first = ocp.type_handlers.get_type_handler(jax.Array)
        checkpointing._register_array_handler()  # once per process: nothing more
    assert ocp.type_handlers.get_type_handler(jax.Array) is first
    assert first._min_slice_bytes_for_replica_parallel == 4 << 20
    assert [r.getMessage() for r in caplog.records if r.name == "absl"] == []  # orbax's "overriding" warning


def test_reads_and_saves_that_go_well_collect_nothing(tmp_path, monkeypatch):
    """The quiet region's drain runs a full collection (a second or more in a process with a
    large heap, per region) only when a failed read or write left something; here none did."""
    state = _state()
    meta = {"config": {}, "param_shapes": checkpointing.param_shapes(state.params), "data": {}}
    collections = []
    monkeypatch.setattr(checkpointing.gc, "collect", lambda *a: collections.append(a) or 0)
    _save(tmp_path, state, meta)
    params, read_meta = checkpointing.read_params(str(tmp_path))
    assert read_meta == meta and collections == []
    np.testing.assert_array_equal(params["matrix"], np.asarray(state.params["matrix"]))
    # A failure left behind (a task pending on a closed loop) is drained: collections run.
    monkeypatch.setattr(checkpointing, "_failure_left", lambda: True)
    checkpointing.read_params(str(tmp_path))
    assert collections
