"""Peer baseline: the same pre-training steps built from Hugging Face transformers + PyTorch.

    python benchmarks/hf_baseline.py [--configs=sas_small,bert_small,electra_small] \
        [--batch=512] [--seq_len=128] [--dtype=bf16] [--steps=20] [--repeats=5] [--warmup=3] \
        [--compile=off|on|both] [--mlm_logits=gathered|all] [--variant=tiny] \
        [--compare=step_throughput.json] [--json=out.json]

This is what a user would run instead of `sas_jax`: every config of `configs/` is
turned into an HF + PyTorch model of **the same shape** (read from the config, so
no size is typed twice) and timed on one device, eagerly or under `torch.compile`:

- **BERT / MLM-only rows** (`objective.mlm` without `rtd`, e.g. `bert_small`,
  `unig_mlm`): `BertForMaskedLM` (no pooler); BERT's 80/10/10 corruption at the
  `sas.max_predictions` slots per row; cross-entropy at those slots.
- **ELECTRA** (`objective.corruption == "electra"`): `ElectraForMaskedLM` as the
  generator (`model.generator_ratio` of the width, heads = width/64, FFN 4x) and
  `ElectraForPreTraining` as the discriminator, sharing one embedding module
  (tables + LayerNorm); 85% [MASK] at the slots, Gumbel-max sampling of the fakes
  under no_grad, loss `mlm + λ·rtd`.
- **SAS rows** (`mlm` and `rtd`, e.g. `sas_small`, `sasc_small`): the SAS recipe on
  HF parts: **one** `ElectraModel` forward (with E = H it is BERT's post-LN encoder
  without a pooler), the MLM head (`ElectraGeneratorPredictions`, output tied to the
  word table + its own bias) on the gathered slots only, the RTD head
  (`ElectraDiscriminatorPredictions`) at every position, loss `mlm + λ·rtd`, and
  the next visit's tokens sampled from the same softmax (`torch.multinomial`, T = 1,
  full vocabulary) and copied to pinned host memory, as the sample store needs them.
  The inputs are a later visit's: stored tokens at the slots, RTD label = replaced.

DeBERTa/SASDA (disentangled attention) rows have no peer here.

Every step is the full optimizer step: forward, backward, global-norm clipping
(`opt.grad_clip_norm`) and AdamW (`opt.*`; no decay on biases and LayerNorm). The
slots are `sas.max_predictions` distinct positions per row (static shapes, so
`torch.compile` never recompiles). λ is `sas.lambda_start`. Timing follows
`benchmarks/step_throughput.py`: every case is built first, then each repeat runs
`--warmup` untimed steps and `--steps` timed steps over 4 pre-built device batches,
repeats of all cases run round-robin, and the median is reported.

`--mlm_logits=all` instead runs HF's stock `BertForMaskedLM` / `ElectraForMaskedLM`
loss (labels = -100 off the slots): MLM logits at every position, HF's default.

JSON (`--json`) uses `step_throughput.py`'s names where they overlap: per result
`config`, `objective`, `heads`, `batch`, `seq_len`, `dtype`, `vocab_size`,
`max_predictions`, `params`, `tokens_per_s`, `ms_per_step`, `ms_per_step_repeats`,
`ms_per_step_min`, `model_flops_per_step` and `model_tflops_per_s` (the live
convention of `sas_jax.flops` for the config: the same model FLOPs as our row),
`mfu`, `peak_memory_bytes` (torch's `max_memory_allocated`, process-wide; null on
CPU), `first_call_s`, `encoder_forwards`, `notes`; at the top `device_kind`,
`platform`, `num_devices`, `cpu_model`, `cpu_count`, `load_average_start/end`,
`date`, `shape`, `dtype`, `variant`, `steps`, `repeats`, `warmup`, `results`,
`ratios`. Its own: `framework`, `recipe`, `compile`, `mlm_logits`, `compile_s`
(the first call under `torch.compile`, compilation included; null eagerly), `loss`,
`mlm_loss`, `rtd_loss` (the last timed step), `torch_version`,
`transformers_version`. `--compare=ours.json` reads a `step_throughput.py` report
and prints (and stores under `comparison`) our tokens/s over HF's per config.

Defaults as in `step_throughput.py`: on CUDA batch 512, L = 128, bf16 autocast,
20 steps x 5 repeats, 3 warm-up steps; on CPU batch 8, L = 128, float32, 3 x 3, 1.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import statistics
import sys
import time

# The configs and the FLOPs count come from sas_jax; JAX itself must never take the GPU here.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/hf_baseline.py` from a checkout
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from transformers import BertConfig, BertForMaskedLM, ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining  # noqa: E402
from transformers import ElectraModel as HFElectraModel  # noqa: E402
from transformers.models.electra.modeling_electra import (  # noqa: E402
    ElectraDiscriminatorPredictions, ElectraGeneratorPredictions)

from benchmarks import common  # noqa: E402
from sas_jax import config_lib, flops  # noqa: E402
from sas_jax.models.electra import generator_config  # noqa: E402

DEFAULT_CONFIGS = ("sas_small", "bert_small", "electra_small")
RATIO_PAIRS = (("sas", "bert"), ("sas", "electra"), ("sasc", "bert"))
RESULT_KEYS = ("config", "framework", "recipe", "compile", "mlm_logits", "objective", "attention_type", "heads",
               "batch", "seq_len", "dtype", "vocab_size", "max_predictions", "params", "tokens_per_s",
               "ms_per_step", "ms_per_step_repeats", "ms_per_step_min", "model_flops_per_step",
               "model_tflops_per_s", "mfu", "peak_memory_bytes", "compile_s", "first_call_s", "encoder_forwards",
               "loss", "mlm_loss", "rtd_loss", "notes")


# ----------------------------------------------------------------------------- configs
def load_config(spec: str, variant: str = ""):
    """`sas_small`, `sas_small:tiny` or `configs/sas_small.py[:tiny]` → (name, ConfigDict)."""
    path, _, arg = spec.partition(":")
    arg = arg or variant or ""
    p = pathlib.Path(path)
    if p.suffix != ".py":
        p = ROOT / "configs" / f"{path}.py"
    if not p.exists():
        raise ValueError(f"config {spec!r}: {p} does not exist; give a name under configs/ or a path")
    return p.stem + (f":{arg}" if arg else ""), config_lib.load_config(str(p) + (f":{arg}" if arg else ""))


def apply_shape(config, *, batch=None, seq_len=None) -> dict:
    """Sets the benchmark shape; raises the slot count if the length needs more (as step_throughput does)."""
    notes = common.apply_shape(config, batch=batch, seq_len=seq_len)
    if config.sas.max_predictions > config.seq_len - 1:
        raise ValueError(f"sas.max_predictions={config.sas.max_predictions} slots do not fit in "
                         f"seq_len={config.seq_len} (position 0 is [CLS])")
    return notes


def recipe_of(config) -> str:
    """bert | electra | sas: the HF recipe that matches the config's objective."""
    o, m = config.objective, config.model
    if m.attention_type != "absolute":
        raise ValueError(f"model.attention_type={m.attention_type!r}: the HF baseline covers absolute-position "
                         "encoders only (BERT, ELECTRA, SAS rows)")
    if m.get("pre_layer_norm", False):
        raise ValueError("model.pre_layer_norm=True has no HF BERT/ELECTRA peer (they are post-LN)")
    if o.corruption == "electra":
        return "electra"
    if o.mlm and o.rtd:
        return "sas"
    if o.mlm:
        return "bert"
    raise ValueError(f"objective {o.corruption!r} with mlm={o.mlm}, rtd={o.rtd} has no HF recipe here")


def _electra_config(cfg, **kw) -> ElectraConfig:
    if cfg.num_heads * cfg.head_dim != cfg.hidden_size:
        raise ValueError(f"{cfg.num_heads} heads x {cfg.head_dim} != hidden {cfg.hidden_size}: HF needs kqv = H")
    return ElectraConfig(vocab_size=cfg.vocab_size, embedding_size=cfg.embedding_size, hidden_size=cfg.hidden_size,
                         num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
                         intermediate_size=cfg.intermediate_size, max_position_embeddings=cfg.max_position_embeddings,
                         type_vocab_size=cfg.type_vocab_size, hidden_dropout_prob=cfg.dropout_rate,
                         attention_probs_dropout_prob=cfg.attention_dropout_rate, layer_norm_eps=cfg.layer_norm_eps,
                         hidden_act="gelu", **kw)


def _bert_config(cfg) -> BertConfig:
    if cfg.embedding_size != cfg.hidden_size:
        raise ValueError(f"BertForMaskedLM has no embedding projection: E={cfg.embedding_size} != H={cfg.hidden_size}")
    if cfg.num_heads * cfg.head_dim != cfg.hidden_size:
        raise ValueError(f"{cfg.num_heads} heads x {cfg.head_dim} != hidden {cfg.hidden_size}: HF needs kqv = H")
    return BertConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
                      num_attention_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size,
                      max_position_embeddings=cfg.max_position_embeddings, type_vocab_size=cfg.type_vocab_size,
                      hidden_dropout_prob=cfg.dropout_rate, attention_probs_dropout_prob=cfg.attention_dropout_rate,
                      layer_norm_eps=cfg.layer_norm_eps, hidden_act="gelu")


# ----------------------------------------------------------------------------- models
def _gather(h_BxLxH, pos_BxP):
    return torch.gather(h_BxLxH, 1, pos_BxP[..., None].expand(-1, -1, h_BxLxH.shape[-1]))


class SASPeer(torch.nn.Module):
    """SAS on HF parts: one encoder forward, MLM head at the slots (tied output + bias), RTD head everywhere."""

    def __init__(self, cfg):
        super().__init__()
        c = _electra_config(cfg)
        self.encoder = HFElectraModel(c)  # E == H: no embeddings_project, BERT's post-LN encoder, no pooler
        self.mlm = ElectraGeneratorPredictions(c)
        self.mlm.LayerNorm.eps = cfg.mlm_layer_norm_eps
        self.mlm_bias = torch.nn.Parameter(torch.zeros(cfg.vocab_size))
        self.rtd = ElectraDiscriminatorPredictions(c)

    def forward(self, x_BxL, pos_BxP):
        h = self.encoder(input_ids=x_BxL).last_hidden_state
        t = self.mlm(_gather(h, pos_BxP))
        logits = t @ self.encoder.embeddings.word_embeddings.weight.t() + self.mlm_bias
        return logits, self.rtd(h)


def _mlm_loss(logits_BxPxV, targets_BxP):
    return F.cross_entropy(logits_BxPxV.float().flatten(0, 1), targets_BxP.flatten())


def _full_labels(ids_BxL, pos_BxP):
    return torch.full_like(ids_BxL, -100).scatter(1, pos_BxP, torch.gather(ids_BxL, 1, pos_BxP))


def build_case(config, *, device, mlm_logits: str):
    """(modules, forward(batch) -> (loss, mlm, rtd, sampled), encoder forwards per step)."""
    vocab = flops.resolve_vocab_size(config)[0]
    cfg = flops.model_config(config, vocab)
    recipe = recipe_of(config)
    lam = float(config.sas.lambda_start)
    zero = torch.zeros((), device=device)
    if recipe == "bert":
        model = BertForMaskedLM(_bert_config(cfg)).to(device)
        model.cls.predictions.transform.LayerNorm.eps = cfg.mlm_layer_norm_eps

        def forward(b):
            if mlm_logits == "all":
                mlm = model(input_ids=b["x"], labels=_full_labels(b["ids"], b["pos"])).loss
            else:
                h = model.bert(input_ids=b["x"]).last_hidden_state
                mlm = _mlm_loss(model.cls(_gather(h, b["pos"])), b["targets"])
            return mlm, mlm, zero, None
        return [model], forward, 1
    if recipe == "electra":
        gen = ElectraForMaskedLM(_electra_config(generator_config(cfg))).to(device)
        disc = ElectraForPreTraining(_electra_config(cfg)).to(device)
        disc.electra.embeddings = gen.electra.embeddings  # shared tables and embedding LayerNorm

        def forward(b):
            if mlm_logits == "all":
                out = gen(input_ids=b["x"], labels=_full_labels(b["ids"], b["pos"]))
                mlm, logits = out.loss, _gather(out.logits, b["pos"])
            else:
                h = gen.electra(input_ids=b["x"]).last_hidden_state
                logits = gen.generator_lm_head(gen.generator_predictions(_gather(h, b["pos"])))
                mlm = _mlm_loss(logits, b["targets"])
            with torch.no_grad():  # Gumbel-max at T = 1; the original token is not excluded
                u = torch.rand(logits.shape, device=logits.device)
                fake = torch.argmax(logits.float() - torch.log(-torch.log(u + 1e-9) + 1e-9), -1)
            dx = b["ids"].scatter(1, b["pos"], fake)
            rtd = F.binary_cross_entropy_with_logits(disc(input_ids=dx).logits.float(), (dx != b["ids"]).float())
            return mlm + lam * rtd, mlm, rtd, None
        return [gen, disc], forward, 2
    model = SASPeer(cfg).to(device)
    temperature = float(config.sas.temperature)

    def forward(b):
        logits, rtd_logits = model(b["x"], b["pos"])
        mlm = _mlm_loss(logits, b["targets"])
        rtd = F.binary_cross_entropy_with_logits(rtd_logits.float(), b["replaced"])
        with torch.no_grad():  # the next visit's tokens, from the training forward's softmax
            probs = torch.softmax(logits.detach().float() / temperature, -1)
            sampled = torch.multinomial(probs.flatten(0, 1), 1).view(logits.shape[:2])
        return mlm + lam * rtd, mlm, rtd, sampled
    return [model], forward, 1


def make_batches(config, recipe: str, *, device, vocab: int, count: int = 4, seed: int = 0):
    """`count` device batches: ids, the slots (distinct, never position 0) and the recipe's inputs."""
    g = torch.Generator().manual_seed(seed)
    b, s, p = int(config.batch_size), int(config.seq_len), int(config.sas.max_predictions)
    low = 1000 if vocab > 2000 else 5  # ordinary word pieces, clear of the special ids
    mask_id = 103 if vocab > 103 else vocab - 1
    out = []
    for _ in range(count):
        ids = torch.randint(low, vocab, (b, s), generator=g)
        pos = torch.argsort(torch.rand((b, s - 1), generator=g), dim=1)[:, :p] + 1
        orig = torch.gather(ids, 1, pos)
        u = torch.rand((b, p), generator=g)
        rand_tok = torch.randint(low, vocab, (b, p), generator=g)
        if recipe == "bert":  # 80% [MASK], 10% random, 10% unchanged
            tok = torch.where(u < 0.8, torch.full_like(orig, mask_id), torch.where(u < 0.9, rand_tok, orig))
        elif recipe == "electra":  # 85% [MASK], 15% unchanged
            tok = torch.where(u < float(config.objective.mask_token_rate), torch.full_like(orig, mask_id), orig)
        else:  # a later SAS visit: the stored sample at every slot (a hit keeps the original)
            tok = rand_tok
        x = ids.scatter(1, pos, tok)
        batch = {"ids": ids, "pos": pos, "targets": orig, "x": x, "replaced": (x != ids).float()}
        out.append({k: v.to(device) for k, v in batch.items()})
    return out


def _optimizer(modules, opt_cfg):
    params = list({id(p): p for m in modules for p in m.parameters()}.values())  # shared and tied tables once
    decay = [p for p in params if p.ndim >= 2]  # kernels and tables; not biases or LayerNorm
    rest = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": float(opt_cfg.weight_decay)},
                             {"params": rest, "weight_decay": 0.0}], lr=float(opt_cfg.learning_rate),
                            betas=(float(opt_cfg.b1), float(opt_cfg.b2)), eps=float(opt_cfg.eps))
    return params, opt


class CaseBench:
    """One config under one mode (eager or compiled): built once, then timed repeat by repeat."""

    def __init__(self, spec, *, variant, batch, seq_len, dtype, steps, warmup, compiled, mlm_logits, device):
        self.name, config = load_config(spec, variant)
        self.notes = apply_shape(config, batch=batch, seq_len=seq_len)
        config.model.dtype = dtype
        self.config, self.device, self.steps, self.warmup = config, device, steps, warmup
        self.compiled, self.mlm_logits, self.dtype = compiled, mlm_logits, dtype
        self.recipe = recipe_of(config)
        self.vocab = flops.resolve_vocab_size(config)[0]
        torch.manual_seed(int(config.seed))
        self.modules, forward, self.encoder_forwards = build_case(config, device=device, mlm_logits=mlm_logits)
        for m in self.modules:
            m.train()  # dropout on, as in training
        self.params, opt = _optimizer(self.modules, config.opt)
        clip = float(config.opt.grad_clip_norm)
        autocast = dtype == "bfloat16"
        params = self.params

        def train_step(b):
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss, mlm, rtd, sampled = forward(b)
            loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
            return loss.detach(), mlm.detach(), rtd.detach(), sampled

        self.step = torch.compile(train_step) if compiled else train_step
        self.data = make_batches(config, self.recipe, device=device, vocab=self.vocab)
        p = int(config.sas.max_predictions)
        pin = device.type == "cuda"
        self.host_samples = torch.empty((config.batch_size, p), dtype=torch.int64, pin_memory=pin)
        self.times, self.out, self.i = [], None, 0
        t = time.perf_counter()
        self._run(1)
        self._sync()
        self.first_call_s = time.perf_counter() - t

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _run(self, n):
        for _ in range(n):
            self.out = self.step(self.data[self.i % len(self.data)])
            if self.out[3] is not None:  # the samples leave the device, as the store needs them
                self.host_samples.copy_(self.out[3], non_blocking=True)
            self.i += 1

    def repeat(self) -> str:
        self._run(self.warmup)
        self._sync()
        t = time.perf_counter()
        self._run(self.steps)
        self._sync()
        dt = (time.perf_counter() - t) / self.steps
        self.times.append(dt)
        return f"{1e3 * dt:.2f} ms/step"

    def result(self, device_kind: str) -> dict:
        c, b, s = self.config, int(self.config.batch_size), int(self.config.seq_len)
        step_s = statistics.median(self.times)
        flops_per_step = flops.model_flops_per_step(c, vocab_size=self.vocab)
        loss, mlm, rtd = (float(x) for x in self.out[:3])
        peak = torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda" else None
        notes = dict(self.notes)
        if self.mlm_logits == "all" and self.recipe != "sas":
            notes["mlm_logits"] = "HF's stock loss: MLM logits at every position (model FLOPs count the slots only)"
        r = {
            "config": self.name, "framework": f"transformers {transformers.__version__} + torch {torch.__version__}",
            "recipe": self.recipe, "compile": self.compiled,
            "mlm_logits": "gathered" if self.recipe == "sas" else self.mlm_logits,
            "objective": str(c.objective.corruption), "attention_type": str(c.model.attention_type),
            "heads": {"mlm": bool(c.objective.mlm), "rtd": bool(c.objective.rtd)},
            "batch": b, "seq_len": s, "dtype": self.dtype, "vocab_size": self.vocab,
            "max_predictions": int(c.sas.max_predictions), "params": int(sum(p.numel() for p in self.params)),
            "tokens_per_s": b * s / step_s, "ms_per_step": 1e3 * step_s,
            "ms_per_step_repeats": [1e3 * x for x in self.times], "ms_per_step_min": 1e3 * min(self.times),
            "model_flops_per_step": flops_per_step, "model_tflops_per_s": flops_per_step / step_s / 1e12,
            "mfu": flops.mfu(flops_per_step, step_s, 1, device_kind), "peak_memory_bytes": peak,
            "compile_s": self.first_call_s if self.compiled else None, "first_call_s": self.first_call_s,
            "encoder_forwards": self.encoder_forwards, "loss": loss, "mlm_loss": mlm, "rtd_loss": rtd,
            "notes": notes,
        }
        assert tuple(r) == RESULT_KEYS
        return r


# ----------------------------------------------------------------------------- report
def ratios(results) -> list:
    """Step-time ratios between HF peers of the same size and mode (e.g. sas_small / bert_small)."""
    return common.ratios(results, RATIO_PAIRS, mode="compile")


def compare(ours: dict, report: dict) -> list:
    """Our tokens/s (a `step_throughput.py` report) over HF's, per config and HF mode."""
    mine = {r["config"]: r for r in ours["results"]}
    out = []
    for r in report["results"]:
        o = mine.get(r["config"])
        if o is None:
            continue
        entry = {"config": r["config"], "compile": r["compile"], "ours_tokens_per_s": o["tokens_per_s"],
                 "hf_tokens_per_s": r["tokens_per_s"], "tokens_per_s_ratio": o["tokens_per_s"] / r["tokens_per_s"],
                 "same_shape": (o["batch"], o["seq_len"], o["dtype"]) == (r["batch"], r["seq_len"], r["dtype"])}
        if "with_store_tokens_per_s" in o:
            entry["ours_with_store_tokens_per_s"] = o["with_store_tokens_per_s"]
            entry["with_store_tokens_per_s_ratio"] = o["with_store_tokens_per_s"] / r["tokens_per_s"]
        out.append(entry)
    return out


def format_table(report: dict) -> str:
    lines = [f"device: {report['device_kind']} ({report['platform']}; host CPU {report['cpu_model']}, "
             f"{report['cpu_count']} cores)  date: {report['date']}  torch {report['torch_version']}, "
             f"transformers {report['transformers_version']}",
             common.shape_line(report),
             f"{'HF peer of':<22}{'mode':>9}{'tokens/s':>11}{'ms/step':>10}{'min':>9}{'MFU':>7}{'TFLOP/s':>9}"
             f"{'peak mem':>10}{'1st call s':>11}{'params':>12}{'loss':>10}"]
    for r in report["results"]:
        mfu = "n/a" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        lines.append(f"{r['config']:<22}{'compile' if r['compile'] else 'eager':>9}{r['tokens_per_s']:>11,.0f}"
                     f"{r['ms_per_step']:>10.2f}{r['ms_per_step_min']:>9.2f}{mfu:>7}{r['model_tflops_per_s']:>9.3f}"
                     f"{common.fmt_bytes(r['peak_memory_bytes']):>10}{r['first_call_s']:>11.1f}{r['params']:>12,}"
                     f"{r['loss']:>10.3f}")
    for q in report["ratios"]:
        paired = f", paired per repeat {q['paired_ratio_median']:.3f}" if "paired_ratio_median" in q else ""
        lines.append(f"HF step time {q['numerator']} / {q['denominator']} ({'compile' if q['compile'] else 'eager'})"
                     f" = {q['step_time_ratio']:.3f} (medians; of minima {q['step_time_ratio_of_min']:.3f}{paired})")
    for c in report.get("comparison", []):
        store = (f"; with the store {c['with_store_tokens_per_s_ratio']:.3f}"
                 if "with_store_tokens_per_s_ratio" in c else "")
        shape = "" if c["same_shape"] else "  (SHAPES DIFFER: batch, seq_len or dtype)"
        lines.append(f"ours / HF {'compile' if c['compile'] else 'eager'} tokens/s, {c['config']}: "
                     f"{c['ours_tokens_per_s']:,.0f} / {c['hf_tokens_per_s']:,.0f} = {c['tokens_per_s_ratio']:.3f}"
                     f"{store}{shape}")
    return "\n".join(lines)


def run_benchmark(configs=DEFAULT_CONFIGS, *, batch=None, seq_len=None, dtype=None, steps=None, repeats=None,
                  warmup=None, variant: str = "", compile_mode: str = "off", mlm_logits: str = "gathered",
                  device: str | None = None, log=print) -> dict:
    """Builds every (config, mode) case, times their repeats round-robin; returns the report."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    run = common.settings(accelerator=dev.type == "cuda", variant=variant, batch=batch, seq_len=seq_len,
                          dtype=dtype, steps=steps, repeats=repeats, warmup=warmup)
    batch, seq_len, dtype, steps, repeats, warmup = (run[k] for k in ("batch", "seq_len", "dtype", "steps",
                                                                     "repeats", "warmup"))
    modes = {"off": [False], "on": [True], "both": [False, True]}[compile_mode]
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    device_kind = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    load0 = common.load_average()
    benches = []
    for spec in configs:
        for compiled in modes:
            t = time.perf_counter()
            benches.append(CaseBench(spec, variant=variant, batch=batch, seq_len=seq_len, dtype=dtype, steps=steps,
                                     warmup=warmup, compiled=compiled, mlm_logits=mlm_logits, device=dev))
            log(f"{benches[-1].name} ({'compile' if compiled else 'eager'}): built, first call "
                f"{benches[-1].first_call_s:.1f} s (total {time.perf_counter() - t:.1f} s)")
    common.time_round_robin(benches, repeats, log,
                            label=lambda b: f"{b.name} ({'compile' if b.compiled else 'eager'})")
    results = [bench.result(device_kind) for bench in benches]
    return {
        "device_kind": device_kind, "platform": "gpu" if dev.type == "cuda" else dev.type, "num_devices": 1,
        **common.host_facts(load0),
        "torch_version": torch.__version__, "transformers_version": transformers.__version__,
        "shape": common.report_shape(results, batch, seq_len), "dtype": dtype, "variant": variant, "steps": steps, "repeats": repeats, "warmup": warmup,
        "compile_mode": compile_mode, "mlm_logits": mlm_logits, "results": results, "ratios": ratios(results),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_shape_arguments(ap, DEFAULT_CONFIGS,
                               dtype_help="bf16 = autocast to bfloat16 (default on CUDA); f32 (default on CPU)")
    ap.add_argument("--compile", dest="compile_mode", default="off", choices=("off", "on", "both"),
                    help="torch.compile the train step: off (eager), on, or both (each config twice)")
    ap.add_argument("--mlm_logits", default="gathered", choices=("gathered", "all"),
                    help="BERT/ELECTRA MLM logits at the slots only (as our rows) or HF's stock loss at every position")
    ap.add_argument("--device", default=None, help="torch device (default cuda if available, else cpu)")
    ap.add_argument("--compare", default="", help="a step_throughput.py --json report: print ours / HF tokens/s")
    ap.add_argument("--json", default="", help="write the report here")
    args = ap.parse_args(argv)
    report = run_benchmark(**common.shape_arguments(args), compile_mode=args.compile_mode,
                           mlm_logits=args.mlm_logits, device=args.device, log=common.log_to_stderr)
    if args.compare:
        with open(args.compare) as f:
            report["comparison"] = compare(json.load(f), report)
    print(format_table(report), flush=True)
    common.write_report(args.json, report)
    if not all(math.isfinite(r["loss"]) for r in report["results"]):
        raise SystemExit("a loss is not finite")
    return report


if __name__ == "__main__":
    main()
