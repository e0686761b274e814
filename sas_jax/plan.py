"""Dry run: the resolved mesh, per-host batch and memory plan of a launch, without training.

    python -m sas_jax.plan --config=configs/sas_small.py --nodes=4 --gpus_per_node=8 \
        [--processes_per_node=8] [--num_examples=25600000]

Nothing is compiled or allocated: parameter counts come from `jax.eval_shape`.
Activation memory is an estimate (stated as such); everything else is exact.
"""
from __future__ import annotations

import sys

import jax
import numpy as np

from sas_jax import cli, config_lib, objectives, sharding, train_state
from sas_jax.corruption.store import SampleStore
from sas_jax.errors import UserError

REFERENCE_EXAMPLES = 25_600_000  # the paper's corpus: 25.6M rows of 128 tokens (~3.3B tokens)


load_config = config_lib.load_config


def param_count(config, vocab: int) -> int:
    """Parameters of the model the trainer builds for `config` (`objectives.build`), from shapes only."""
    model = objectives.build(config, vocab).model
    ids, mask, pos = train_state.dummy_inputs(1, config.seq_len, config.sas.max_predictions)
    shapes = jax.eval_shape(
        lambda r: model.init({"params": r, "dropout": r}, ids, mask, pos, deterministic=True)["params"],
        jax.random.key(0))
    return train_state.param_count(shapes)


def plan_launch(config, *, nodes: int, gpus_per_node: int, processes_per_node: int, num_examples: int) -> dict:
    """The mesh, batch split, parameter/optimizer/store memory of a launch, as a dict (`format_plan` prints it)."""
    devices = nodes * gpus_per_node
    processes = nodes * processes_per_node
    if min(nodes, gpus_per_node, processes_per_node, num_examples) < 1:
        raise UserError(f"--nodes={nodes}, --gpus_per_node={gpus_per_node}, --processes_per_node="
                        f"{processes_per_node} and --num_examples={num_examples} must all be positive")
    if gpus_per_node % processes_per_node:
        raise UserError(f"{gpus_per_node} GPUs per node cannot be split over {processes_per_node} processes; "
                        "pass a --processes_per_node that divides --gpus_per_node")
    try:
        mesh = sharding.mesh_axis_sizes(config.mesh, devices)
    except ValueError as e:  # the config's mesh does not fit this launch
        raise UserError(f"{e} (launch of {devices} devices)") from None
    shards = int(np.prod([mesh[a] for a in sharding.BATCH_AXES]))
    if config.batch_size % shards:
        raise UserError(f"batch_size={config.batch_size} is not divisible by {shards} batch shards; "
                        "set --config.batch_size to a multiple of it")
    vocab = config.model.vocab_size if config.model.vocab_size > 0 else 30522
    n_params = param_count(config, vocab)
    param_shards = {"data_parallel": 1, "fsdp": mesh["fsdp"], "fsdp_tensor": mesh["fsdp"] * mesh["tensor"]}[
        config.mesh.rules]
    steps_per_epoch = num_examples // config.batch_size
    store = SampleStore(np.arange(0), max_predictions=config.sas.max_predictions, seq_len=config.seq_len,
                        vocab_size=vocab)
    per_process_examples = steps_per_epoch * config.batch_size // processes
    b_dev = config.batch_size // shards
    bytes_act = 2 if config.model.dtype == "bfloat16" else 4
    m = config.model
    # Estimate: per layer per token ~16·H values kept for backward + N·L attention probabilities.
    activations = b_dev * config.seq_len * m.num_layers * (16 * m.hidden_size + 2 * m.num_heads * config.seq_len) * bytes_act
    return {
        "devices": devices, "processes": processes, "mesh": mesh, "rules": config.mesh.rules,
        "global_batch": config.batch_size, "per_host_batch": config.batch_size // nodes,
        "per_process_batch": config.batch_size // processes, "per_device_batch": b_dev,
        "params": n_params,
        "device_param_bytes": 4 * n_params // param_shards,
        "device_optimizer_bytes": 8 * n_params // param_shards,
        "device_gradient_bytes": 4 * n_params // param_shards,
        "device_activation_bytes_estimate": activations,
        "examples": num_examples, "steps_per_epoch": steps_per_epoch,
        "per_process_examples": per_process_examples,
        "store_bytes_per_example": store.bytes_per_example,
        "host_store_bytes": per_process_examples * processes_per_node * store.bytes_per_example,
        # each process keeps its ids (int64) and its slice of the order (int32)
        "host_order_bytes": 12 * per_process_examples * processes_per_node,
    }


def _gib(x: float) -> str:
    return f"{x / 2**30:.2f} GiB"


def format_plan(p: dict) -> str:
    mesh = " x ".join(f"{k}={v}" for k, v in p["mesh"].items())
    return "\n".join([
        f"devices: {p['devices']} in {p['processes']} processes",
        f"mesh: {mesh} (rules {p['rules']})",
        f"global batch: {p['global_batch']}; per host: {p['per_host_batch']}; per process: "
        f"{p['per_process_batch']}; per device: {p['per_device_batch']}",
        f"parameters: {p['params']:,}",
        f"per device: params {_gib(p['device_param_bytes'])}, Adam state {_gib(p['device_optimizer_bytes'])}, "
        f"gradients {_gib(p['device_gradient_bytes'])}, activations ~{_gib(p['device_activation_bytes_estimate'])} (estimate)",
        f"examples: {p['examples']:,} ({p['steps_per_epoch']:,} steps/epoch); per process {p['per_process_examples']:,}",
        f"per host: self-augmentation store {_gib(p['host_store_bytes'])} "
        f"({p['store_bytes_per_example']} B/example), example order {_gib(p['host_order_bytes'])}",
    ])


def check_corpus(config, workdir: str) -> str:
    """What the real run checks of its corpus before it starts, without reading the rows: a
    one-line UserError for an empty `data.corpus_dir`, a folder holding no prepared corpus
    (unless the config prepares its own, the demo), or another sequence length; the workdir
    must be able to be a folder. Returns a line describing the corpus."""
    import json  # noqa: PLC0415
    import os  # noqa: PLC0415

    from sas_jax import files  # noqa: PLC0415
    from sas_jax.data import prepare as prepare_lib  # noqa: PLC0415

    files.check_dir(workdir, "WORKDIR")
    corpus_dir = config.data.corpus_dir
    if not corpus_dir:
        raise UserError("data.corpus_dir is empty; prepare a corpus with `python -m sas_jax.prepare` "
                        "and pass --config.data.corpus_dir=<dir>")
    path = corpus_dir if os.path.isabs(corpus_dir) else os.path.join(workdir, corpus_dir)
    if not prepare_lib.holds_corpus(path):
        if config.data.prepare.text_files:
            return f"corpus: {path} is prepared by the run on first use (data.prepare.text_files)"
        raise UserError(f"data.corpus_dir={corpus_dir} holds no prepared corpus (no meta.json in {path}); "
                        "prepare one with `python -m sas_jax.prepare --output=<dir>` and pass its folder")
    with open(os.path.join(path, "meta.json")) as f:
        meta = json.load(f)
    if int(meta.get("seq_len", config.seq_len)) != int(config.seq_len):
        raise UserError(f"seq_len={config.seq_len} but the corpus was prepared with {meta['seq_len']}; set "
                        f"--config.seq_len={meta['seq_len']} or re-prepare")
    return f"corpus: {path}, {int(meta.get('num_rows', 0)):,} rows of {meta.get('seq_len')} tokens"


@cli.entry_point  # bad arguments, configs, overrides: one line `error: ...`, exit 2
def main(argv=None) -> int:
    ap = cli.ArgumentParser(prog="python -m sas_jax.plan", description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="config file[:variant]; --config.KEY=VALUE overrides a field")
    ap.add_argument("--nodes", type=int, default=1)
    ap.add_argument("--gpus_per_node", type=int, default=8)
    ap.add_argument("--processes_per_node", type=int, default=0, help="default: one per GPU")
    ap.add_argument("--num_examples", type=int, default=REFERENCE_EXAMPLES)
    ap.add_argument("--workdir", default="", help="the run's --workdir: check its corpus (data.corpus_dir) as "
                    "the run would (the SLURM launch's dry run passes it)")
    args, extra = ap.parse_known_args(argv)
    overrides, rest = cli.split_config_overrides(extra)
    if rest:
        raise UserError(f"unrecognized arguments: {' '.join(rest)}; config overrides look like --config.KEY=VALUE")
    config = load_config(args.config, overrides)
    corpus = check_corpus(config, args.workdir) if args.workdir else None
    p = plan_launch(config, nodes=args.nodes, gpus_per_node=args.gpus_per_node,
                    processes_per_node=args.processes_per_node or args.gpus_per_node, num_examples=args.num_examples)
    print(format_plan(p))
    if corpus:
        print(corpus)


if __name__ == "__main__":
    sys.exit(main())
