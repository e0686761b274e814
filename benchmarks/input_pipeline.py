"""Input pipeline throughput vs. the model's consumption, on CPU.

    python benchmarks/input_pipeline.py --config=configs/sas_small.py:demo \
        --corpus=runs/demo/demo_corpus [--steps=200] [--json=out.json]

Times (1) the host batch build (corpus read + SAS corruption from the store) on
the first visit (cold start + whole-word selection) and a later visit (stored
samples), and (2) the jitted train step of the same config, then prints the
ratio: how many times faster batches are produced than the model consumes them.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import numpy as np
from sas_jax import config_lib, objectives, optim, sharding, train, train_state, train_step
from sas_jax.data.corpus import Corpus



def time_builds(builder, order, corpus, steps: int, start: int) -> float:
    """Median seconds per host batch over `steps` steps from `start`."""
    times = []
    for step in range(start, start + steps):
        t0 = time.perf_counter()
        ids = order.batch_ids(step)
        batch, pending = builder.build(corpus.read(ids), ids, step)
        times.append(time.perf_counter() - t0)
        # fake samples so the next epoch's visits take the "later visit" path
        builder.write_back(pending, (batch["mlm_targets"] + 1) % corpus.vocab_size)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    config = config_lib.load_config(args.config)
    corpus = Corpus.open(args.corpus)
    config.seq_len = corpus.seq_len
    vocab = corpus.vocab_size
    objective = objectives.build(config, vocab)
    order, builder = train.build_inputs(config, corpus, objective)
    steps = min(args.steps, order.steps_per_epoch)
    first_visit = time_builds(builder, order, corpus, steps, 0)
    for step in range(steps, order.steps_per_epoch):  # finish epoch 0 so every row has samples
        ids = order.batch_ids(step)
        batch, pending = builder.build(corpus.read(ids), ids, step)
        builder.write_back(pending, (batch["mlm_targets"] + 1) % vocab)
    later_visit = time_builds(builder, order, corpus, steps, order.steps_per_epoch)

    mesh = sharding.make_mesh(config.mesh)
    rules = sharding.logical_rules(config.mesh)
    model = objective.model
    tx = optim.make_optimizer(config.opt, config.num_train_steps)
    state, shardings = train_state.create_sharded_state(
        jax.random.key(0), model=model, tx=tx, mesh=mesh, rules=rules, seq_len=config.seq_len,
        max_predictions=config.sas.max_predictions)
    step_fn = train_step.jit_train_step(
        model=model, tx=tx, lr_schedule=optim.learning_rate_schedule(config.opt, config.num_train_steps),
        settings=objective.step_settings(order.steps_per_epoch), mesh=mesh,
        rules=rules, state_shardings=shardings)
    ids = order.batch_ids(0)
    batch, _ = builder.build(corpus.read(ids), ids, 0)
    key = jax.random.key(1)
    state, m, s = step_fn(state, batch, key)  # compile
    jax.block_until_ready(s)
    n = 30
    t0 = time.perf_counter()
    for _ in range(n):
        state, m, s = step_fn(state, batch, key)
    jax.block_until_ready(s)
    model_step = (time.perf_counter() - t0) / n

    out = {
        "device": jax.devices()[0].device_kind, "config": args.config, "batch_size": config.batch_size,
        "seq_len": config.seq_len, "host_batch_ms_first_visit": 1e3 * first_visit,
        "host_batch_ms_later_visit": 1e3 * later_visit, "model_step_ms": 1e3 * model_step,
        "pipeline_over_model_first_visit": model_step / first_visit,
        "pipeline_over_model_later_visit": model_step / later_visit,
    }
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
