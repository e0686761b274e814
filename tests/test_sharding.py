"""Sharding rules, directly: which mesh axis each parameter and the batch are split over."""
import jax
import pytest
from jax.sharding import PartitionSpec as P

from sas_jax import config_lib, objectives, optim, sharding, train_state


def sharded_params(rules: str, **mesh):
    overrides = [f"mesh.rules={rules}"] + [f"mesh.{k}={v}" for k, v in mesh.items()]
    c = config_lib.load_config("sas_small:tiny", overrides)
    m = sharding.make_mesh(c.mesh)
    state, _ = train_state.create_sharded_state(
        jax.random.key(0), model=objectives.build(c, 128).model, tx=optim.make_optimizer(c.opt, 10), mesh=m,
        rules=sharding.logical_rules(c.mesh), seq_len=c.seq_len, max_predictions=c.sas.max_predictions)
    return m, {jax.tree_util.keystr(p): x for p, x in jax.tree_util.tree_flatten_with_path(state.params)[0]}


def test_data_parallel_replicates_every_parameter():
    mesh, params = sharded_params("data_parallel")
    assert dict(mesh.shape) == {"data": 8, "fsdp": 1, "tensor": 1}
    assert all(x.sharding.is_fully_replicated for x in params.values())


def test_fsdp_splits_the_embed_dimension_and_nothing_else():
    _, params = sharded_params("fsdp", data=1, fsdp=8)
    layer = "['encoder']['layer_0']"
    expected = {
        "['embeddings']['word_embeddings']['embedding']": P(None, "fsdp"),  # [V, E]: E split
        f"{layer}['query']['kernel']": P("fsdp", None),  # [H, heads*kv]: H split
        f"{layer}['intermediate']['kernel']": P("fsdp", None),  # [H, F]
        f"{layer}['output']['kernel']": P(None, "fsdp"),  # [F, H]
        f"{layer}['attention_LayerNorm']['scale']": P("fsdp"),
        f"{layer}['intermediate']['bias']": P(None),  # mlp: not an fsdp axis
        "['mlm_head']['bias']": P(None),  # vocab: replicated
    }
    for name, spec in expected.items():
        assert params[name].sharding.spec == spec, name
        shard = params[name].addressable_shards[0].data.shape
        split = [d for d, a in enumerate(spec) if a == "fsdp"]
        for d in split:
            assert shard[d] == params[name].shape[d] // 8


def test_fsdp_tensor_also_splits_mlp_and_heads_over_tensor():
    _, params = sharded_params("fsdp_tensor", data=1, fsdp=4, tensor=2)
    layer = "['encoder']['layer_0']"
    assert params[f"{layer}['intermediate']['kernel']"].sharding.spec == P("fsdp", "tensor")
    assert params[f"{layer}['output']['kernel']"].sharding.spec == P("tensor", "fsdp")


def test_batch_sharding_splits_rows_over_data_and_fsdp():
    c = config_lib.load_config("sas_small:tiny", ["mesh.data=2", "mesh.fsdp=4"])
    m = sharding.make_mesh(c.mesh)
    assert sharding.batch_sharding(m).spec == P(("data", "fsdp"), None)
    assert sharding.batch_sharding(m, ndim=3).spec == P(("data", "fsdp"), None, None)
    assert sharding.num_batch_shards(m) == 8 and sharding.replicated(m).spec == P()


def test_unknown_rules_and_bad_meshes_are_named():
    c = config_lib.load_config("sas_small:tiny")
    c.mesh.rules = "zero3"
    with pytest.raises(ValueError, match="mesh.rules='zero3' is unknown; use one of"):
        sharding.logical_rules(c.mesh)
    c.mesh.fsdp, c.mesh.data = 3, -1
    with pytest.raises(ValueError, match="8 devices cannot be split"):
        sharding.make_mesh(c.mesh)
