"""Whole runs ↔ Hugging Face folders: what `python -m sas_jax.convert` does.

- `export_checkpoint(checkpoint_dir, out)`: a finished pre-training checkpoint →
  HF folder(s) by objective: ELECTRA → `generator/` + `discriminator/`; a row with
  an RTD head (SAS, SASc, SASDA, Unig-MLM-RTD, ...) → `export_sas`; an MLM-only row
  → BertForMaskedLM (E = H), ElectraForMaskedLM (E != H) or DebertaV2ForMaskedLM.
  Each folder gets the tokenizer (`hf_tokenizer`), a `README.md` model card and
  `sas_jax_run.json` (the run's config and step, which `import_to_workdir` reuses).
  The MLM-head eps policy is `hf_export`'s, refusing by default here.
- `import_to_workdir(hf_folder, workdir)`: an HF folder (ours or a stock
  ELECTRA/BERT/DebertaV2 one) → `workdir/checkpoints/0/` in the trainer's own format
  (state with a fresh optimizer state, meta, an empty self-augmentation store), the
  tokenizer copied to `workdir/tokenizer/`, and `workdir/config.json`. Pre-training
  then continues with `python -m sas_jax.main --config=<the row> --workdir=<workdir>`
  (it resumes at step 0 with these weights), and GLUE fine-tunes it with
  `init_from.checkpoint_dir=<workdir>`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil

import numpy as np

from sas_jax import metrics_log
from sas_jax.convert import hf_export, hf_tokenizer
from sas_jax.errors import UserError

RUN_FILE = "sas_jax_run.json"
MODEL_CARD = "README.md"


# ----------------------------------------------------------------------------- export
def _refuse_emd(meta: dict, where: str):
    if bool(((meta.get("config") or {}).get("model") or {}).get("enhanced_mask_decoder", False)):
        raise UserError(f"{where} has model.enhanced_mask_decoder=True; Hugging Face DeBERTa has no enhanced "
                        "mask decoder, so it cannot be exported (export a row without it)")


def _sample_lines(tok, config: dict, limit: int = 300) -> list:
    """Text lines the tokenizer export is verified on: the run's text files, if any."""
    import glob  # noqa: PLC0415

    spec = ((config.get("data") or {}).get("prepare") or {}).get("text_files", "") or ""
    lines: list = []
    for item in [s.strip() for s in spec.split(",") if s.strip()]:
        for path in sorted(glob.glob(item)) if glob.has_magic(item) else [item]:
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    for line in hf_tokenizer.tokenizer_lib.decoded_lines(f):
                        lines.append(line)
                        if len(lines) >= limit:
                            return lines
    return lines


def _flops(config: dict, vocab: int) -> dict:
    try:
        import ml_collections  # noqa: PLC0415

        from sas_jax import flops  # noqa: PLC0415

        c = ml_collections.ConfigDict(config)
        return {"train_flops_paper": flops.train_flops(c, vocab_size=vocab),
                "model_flops_per_step": flops.model_flops_per_step(c, vocab_size=vocab)}
    except Exception:  # noqa: BLE001 - an old or partial config: the card says "n/a"
        return {}


def _eval_figures(checkpoint_dir: str, step: int) -> dict:
    """The last `eval/*` line of the run's metrics.jsonl at or before `step`."""
    for root in (checkpoint_dir, os.path.dirname(os.path.abspath(checkpoint_dir))):
        path = os.path.join(root, "metrics.jsonl")
        if os.path.isfile(path):
            best = {}
            for row in metrics_log.read_records(path):
                evals = {k: v for k, v in row.items() if k.startswith("eval/")}
                if evals and int(row["step"]) <= step:
                    best = {"step": row["step"], **evals}
            return best
    return {}


def model_card(*, role: str, architecture: str, config: dict, step: int, source: str, tok, flops: dict,
               evals: dict, gap: dict | None, corpus_meta: dict | None) -> str:
    obj = config.get("objective") or {}
    m = config.get("model") or {}
    name = config.get("name") or f"{obj.get('corruption', '?')} pre-training"
    shape = (f"{m.get('attention_type', 'absolute')} attention, {m.get('num_layers', '?')} layers, "
             f"H {m.get('hidden_size', '?')}, E {m.get('embedding_size', '?')}, {m.get('num_heads', '?')} heads, "
             f"FFN {m.get('intermediate_size', '?')}, LayerNorm eps {m.get('layer_norm_eps', '?')} "
             f"(MLM head {m.get('mlm_layer_norm_eps', '?')})")
    lines = [
        f"# {name}: {role} ({architecture})",
        "",
        "Exported by `python -m sas_jax.convert export` from a `sas_jax` pre-training checkpoint.",
        "",
        "| | |",
        "|---|---|",
        f"| objective | corruption `{obj.get('corruption', '?')}`, MLM {bool(obj.get('mlm', True))}, "
        f"RTD {bool(obj.get('rtd', False))} |",
        f"| config row | {shape}; λ `{(config.get('sas') or {}).get('lambda_schedule', '-')}` "
        f"(the full config is in `{RUN_FILE}`) |",
        f"| checkpoint | `{source}`, step {step} of {config.get('num_train_steps', '?')} |",
        f"| batch x seq_len | {config.get('batch_size', '?')} x {config.get('seq_len', '?')} |",
        f"| tokenizer | {tok.kind}, {tok.vocab_size} ids, sha256 {tok.fingerprint[:12]}"
        f"{', lowercase' if getattr(tok, 'lowercase', False) else ''} |",
    ]
    if corpus_meta:
        lines.append(f"| data | {corpus_meta.get('num_rows', '?')} rows, {corpus_meta.get('num_tokens', '?')} "
                     f"tokens, packing {corpus_meta.get('packing', 'stream')}, from "
                     f"{', '.join(os.path.basename(s) for s in corpus_meta.get('sources', [])[:4])} |")
    else:
        data = config.get("data") or {}
        lines.append(f"| data | corpus `{data.get('corpus_dir', '?')}` |")
    if flops:
        lines.append(f"| training FLOPs of the whole run, num_train_steps (paper convention, `sas_jax.flops.train_flops`) | "
                     f"{flops['train_flops_paper']:.3e} |")
        lines.append(f"| model FLOPs per step (`sas_jax.flops.model_flops_per_step`) | "
                     f"{flops['model_flops_per_step']:.3e} |")
    if evals:
        lines.append("| held-out eval | " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                                       for k, v in evals.items()) + " |")
    lines += [
        "",
        "Tokenization: `tokenizer.json` gives exactly the ids of the project's tokenizer (kept as "
        f"`{hf_tokenizer.PROJECT_FILE[tok.kind]}`). One sequence is encoded `[CLS] text` as in "
        "pre-training (rows are `[CLS]` + tokens, no `[SEP]`); a pair `[CLS] a [SEP] b [SEP]`. A literal "
        "`[MASK]` (or other special token) in text is the special id here.",
    ]
    if gap:
        lines += ["", f"**MLM head not exact**: its LayerNorm eps is {gap['head_eps']:g}, HF uses "
                  f"{gap['hf_eps']:g}; logits differ by up to {gap['max_abs_logit']:.1e}, probabilities by "
                  f"{gap['max_abs_prob']:.1e} (written with `--mlm_eps_gap=allow`)."]
    return "\n".join(lines) + "\n"


def export_checkpoint(checkpoint_dir: str, out_dir: str, *, step: int | None = None, tokenizer: str = "",
                      mlm_eps_gap: str = "refuse") -> dict[str, str]:
    """A finished checkpoint → HF folder(s) under `out_dir`; returns {role: folder}.
    UserError (one line) for what cannot be exported exactly."""
    from sas_jax import checkpoint_damage, checkpointing  # noqa: PLC0415

    if os.path.exists(os.path.join(out_dir, "config.json")) or os.path.exists(os.path.join(out_dir, RUN_FILE)):
        raise UserError(f"output folder {out_dir} already holds an export; pick another --out or delete it")
    if mlm_eps_gap not in hf_export.MLM_EPS_GAP_POLICIES:
        raise UserError(f"--mlm_eps_gap={mlm_eps_gap}; use one of {', '.join(hf_export.MLM_EPS_GAP_POLICIES)}")
    with checkpoint_damage.explained(checkpoint_dir, step):  # damaged files: one line
        _refuse_emd(checkpointing.read_step_meta(checkpoint_dir, step), checkpoint_dir)
        ckpt = checkpointing.read_model(checkpoint_dir, step, tokenizer=tokenizer)
    cfg, params, tok, meta = ckpt.cfg, ckpt.params, ckpt.tokenizer, ckpt.meta
    config = meta.get("config") or {}
    if cfg.vocab_size != tok.vocab_size:
        raise UserError(f"{checkpoint_dir}: the model has {cfg.vocab_size} word embeddings but its tokenizer "
                        f"{tok.path} has {tok.vocab_size} ids; pass --tokenizer=<the one it was trained with>")
    lines = _sample_lines(tok, config)
    gap = None
    try:
        if "discriminator" in params:  # ELECTRA
            folders = hf_export.export_electra_pair(params, cfg, out_dir, tokenizer=tok, sample_lines=lines)
        elif "rtd_head" in params:
            write_mlm, gap = hf_export.mlm_eps_decision(params, cfg, mlm_eps_gap)
            folders = hf_export.export_sas(params, cfg, out_dir, tokenizer=tok, sample_lines=lines,
                                           decision=(write_mlm, gap))  # measured and warned once
        else:
            write_mlm, gap = hf_export.mlm_eps_decision(params, cfg, mlm_eps_gap)
            if cfg.disentangled:
                arch = "DebertaV2ForMaskedLM" if write_mlm else "DebertaV2Model"
            elif not write_mlm:
                arch = "BertModel" if cfg.embedding_size == cfg.hidden_size else "ElectraModel"
            else:
                arch = "BertForMaskedLM" if cfg.embedding_size == cfg.hidden_size else "ElectraForMaskedLM"
            extra = {"mlm_eps_gap": gap} if gap and write_mlm else {}
            folders = {"mlm" if write_mlm else "encoder": hf_export.export_hf(
                params, cfg, out_dir, arch, tokenizer=tok, sample_lines=lines, extra=extra)}
    except (ValueError, KeyError) as e:
        raise UserError(f"{checkpoint_dir} cannot be exported: {' '.join(str(e).split())}") from None
    corpus_meta = None
    data = config.get("data") or {}
    corpus_dir = data.get("corpus_dir", "") or ""
    step_dir, _ = checkpointing.resolve_step(checkpoint_dir, ckpt.step)
    workdir = os.path.dirname(os.path.dirname(os.path.abspath(step_dir)))  # <workdir>/checkpoints/<step>
    if corpus_dir and not os.path.isabs(corpus_dir):
        corpus_dir = os.path.join(workdir, corpus_dir)
    if corpus_dir and os.path.isfile(os.path.join(corpus_dir, "meta.json")):
        with open(os.path.join(corpus_dir, "meta.json")) as f:
            corpus_meta = json.load(f)
    flops = _flops(config, cfg.vocab_size)
    evals = _eval_figures(workdir, ckpt.step)
    for role, folder in folders.items():
        with open(os.path.join(folder, "config.json")) as f:
            arch = json.load(f)["architectures"][0]
        written_gap = gap if role in ("generator", "mlm") else None
        with open(os.path.join(folder, MODEL_CARD), "w") as f:
            f.write(model_card(role=role, architecture=arch, config=config, step=ckpt.step,
                               source=os.path.abspath(checkpoint_dir), tok=tok, flops=flops, evals=evals,
                               gap=written_gap, corpus_meta=corpus_meta))
        with open(os.path.join(folder, RUN_FILE), "w") as f:
            json.dump({"role": role, "step": ckpt.step, "source": ckpt.source, "config": config,
                       "flops": flops, "eval": evals, "mlm_eps_gap": written_gap}, f, indent=2, default=str)
            f.write("\n")
    return folders


# ----------------------------------------------------------------------------- import
def _folder_kind(hf_folder: str) -> str:
    """"sas" (discriminator/ + generator/), "electra_pair" (an ELECTRA export), or "single"."""
    if not os.path.isdir(hf_folder):
        raise UserError(f"HF folder {hf_folder} not found; pass --hf_folder=<a folder with config.json>")
    disc, gen = (os.path.join(hf_folder, r) for r in ("discriminator", "generator"))
    if os.path.isfile(os.path.join(disc, "config.json")):
        if not os.path.isfile(os.path.join(gen, "config.json")):
            return "discriminator"
        with open(os.path.join(gen, "config.json")) as f:
            g = json.load(f)
        with open(os.path.join(disc, "config.json")) as f:
            d = json.load(f)
        return "sas" if g["hidden_size"] == d["hidden_size"] else "electra_pair"
    if not os.path.isfile(os.path.join(hf_folder, "config.json")):
        raise UserError(f"{hf_folder} is not a Hugging Face model folder (no config.json, nor "
                        "discriminator/config.json); pass the folder `export` wrote or a downloaded model")
    return "single"


def _check_family(hf_folder: str, kind: str) -> None:
    """A one-line UserError for a folder of a model family this package does not read (e.g.
    GPT-2), naming the families it reads and the one it found."""
    from sas_jax.convert import hf_keys  # noqa: PLC0415

    sub = {"single": "", "discriminator": "discriminator"}.get(kind)
    if sub is None:  # generator/ + discriminator/: written by export (each config is read on import)
        return
    path = os.path.join(hf_folder, sub, "config.json")
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"{path} cannot be read as JSON ({' '.join(str(e).split())}); re-copy the folder") from None
    found = (config.get("architectures") or [None])[0]
    model_type = config.get("model_type")
    known_types = sorted({f.model_type for f in hf_keys.FAMILIES.values()})
    if found in hf_keys.FAMILIES or model_type in known_types:  # a known family: its classes are checked later
        return
    raise UserError(f"{hf_folder} holds a {found or '?'} model (model_type {model_type!r}); this package reads "
                    f"{', '.join(known_types)} encoders: {', '.join(sorted(hf_keys.FAMILIES))}; pass such a folder "
                    "(e.g. one `python -m sas_jax.convert export` wrote)")


def _run_config(hf_folder: str, config_spec: str):
    import ml_collections  # noqa: PLC0415

    from sas_jax import config_lib  # noqa: PLC0415

    if config_spec:
        return config_lib.load_config(config_spec)
    for sub in ("", "discriminator", "generator"):
        path = os.path.join(hf_folder, sub, RUN_FILE)
        if os.path.isfile(path):
            with open(path) as f:
                return ml_collections.ConfigDict(json.load(f)["config"])
    raise UserError(f"{hf_folder} has no {RUN_FILE} (not exported by sas_jax); pass --config=configs/<row>.py "
                    "naming the row to continue it as")


def import_to_workdir(hf_folder: str, workdir: str, *, config: str = "", tokenizer: str = "") -> str:
    """An HF folder → a step-0 checkpoint in `workdir` that the trainer resumes and
    GLUE fine-tunes from; returns the checkpoint folder."""
    import jax  # noqa: PLC0415

    from sas_jax import checkpointing, objectives, optim  # noqa: PLC0415
    from sas_jax.convert import hf_import  # noqa: PLC0415
    from sas_jax.corruption.store import SampleStore  # noqa: PLC0415
    from sas_jax.data import tokenizer as tokenizer_lib  # noqa: PLC0415
    from sas_jax.train_state import TrainState  # noqa: PLC0415

    kind = _folder_kind(hf_folder)
    _check_family(hf_folder, kind)  # before "no sas_jax_run.json": no --config can read another family
    if checkpointing.checkpoint_steps(workdir):
        raise UserError(f"workdir {workdir} already holds checkpoints; pick another --workdir or delete it")
    run = _run_config(hf_folder, config)
    try:
        if kind == "electra_pair":
            cfg, params = hf_import.import_electra_pair(os.path.join(hf_folder, "generator"),
                                                        os.path.join(hf_folder, "discriminator"))
        elif kind == "sas":
            cfg, params = hf_import.import_sas(hf_folder)
        else:
            folder = os.path.join(hf_folder, "discriminator") if kind == "discriminator" else hf_folder
            cfg, params = hf_import.import_hf(folder, strict=False)
    except (KeyError, ValueError, FileNotFoundError) as e:
        raise UserError(f"{hf_folder} cannot be imported: {' '.join(str(e).split())[:300]}") from None
    tok_dir = hf_folder if kind == "single" else os.path.join(hf_folder, "discriminator")
    tok = tokenizer_lib.load_tokenizer(tokenizer) if tokenizer else hf_tokenizer.project_tokenizer(tok_dir)
    if tok is None:
        raise UserError(f"{hf_folder} has no vocab.txt or SentencePiece .model; pass --tokenizer=<path>")
    if tok.vocab_size != cfg.vocab_size:
        raise UserError(f"{hf_folder}: the model has {cfg.vocab_size} word embeddings, its tokenizer {tok.path} "
                        f"{tok.vocab_size} ids; pass --tokenizer=<the matching one>")

    # The row's config, with the imported shape (and the objective's heads).
    electra = "discriminator" in params
    if electra != (run.objective.corruption == "electra"):
        raise UserError(f"{hf_folder} holds {'an ELECTRA pair' if electra else 'one encoder'} but the config is "
                        f"objective.corruption={run.objective.corruption}; pass a matching --config")
    for field in dataclasses.fields(cfg):
        if field.name in run.model and field.name != "vocab_size":
            run.model[field.name] = getattr(cfg, field.name)
    if int(run.model.get("vocab_size", -1)) not in (-1, cfg.vocab_size):
        run.model.vocab_size = cfg.vocab_size
    os.makedirs(os.path.join(workdir, "tokenizer"), exist_ok=True)
    tok_copy = os.path.abspath(os.path.join(workdir, "tokenizer", os.path.basename(tok.path)))
    shutil.copyfile(tok.path, tok_copy)
    run.data.prepare.tokenizer = tok_copy
    run.data.prepare.vocab_size = 0  # the tokenizer is given: never train another one

    model = objectives.build(run, cfg.vocab_size).model
    if not electra:  # heads the row has and the folder lacks start fresh; extra heads are dropped
        import flax.linen as nn  # noqa: PLC0415

        def init():
            return nn.meta.unbox(model.init(jax.random.key(int(run.seed)), *_dummy(run))["params"])

        heads = jax.eval_shape(init)  # which heads the row has; an init is compiled only when one is missing
        fresh = jax.jit(init)() if any(k not in params for k in heads) else {}
        params = {k: (params[k] if k in params else jax.tree.map(np.asarray, fresh[k])) for k in heads}
    try:
        hf_import.check_params(params, model)
    except ValueError as e:
        raise UserError(f"{hf_folder} does not fit the config's model: {' '.join(str(e).split())[:300]}") from None
    params = jax.tree.map(lambda x: np.asarray(x, np.float32), params)
    tx = optim.make_optimizer(run.opt, int(run.num_train_steps))
    state = TrainState(step=np.zeros((), np.int32), params=params, opt_state=tx.init(params))
    store = SampleStore(np.zeros(0, np.int64), max_predictions=int(run.sas.max_predictions),
                        seq_len=int(run.seq_len), vocab_size=cfg.vocab_size)
    meta = {"config": run.to_dict(), "data": {"step": 0, "epoch": 0, "position": 0, "seed": int(run.seed),
                                              "shuffle": run.data.shuffle, "num_rows": None},
            "max_predictions": int(run.sas.max_predictions), "param_shapes": checkpointing.param_shapes(params),
            "process_count": 1, "imported_from": os.path.abspath(hf_folder)}
    ckpt = checkpointing.Checkpointer(workdir, keep=1, async_save=False)
    ckpt.save(0, state, store, meta)
    ckpt.wait(0)
    ckpt.close()
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump({**run.to_dict(), "resolved": {"vocab_size": cfg.vocab_size}}, f, indent=2)
    return os.path.join(workdir, "checkpoints", "0")


def _dummy(run):
    import jax.numpy as jnp  # noqa: PLC0415

    ids = jnp.zeros((1, int(run.seq_len)), jnp.int32)
    return ids, jnp.ones_like(ids), jnp.zeros((1, int(run.sas.max_predictions)), jnp.int32)
