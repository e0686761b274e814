"""A kept fine-tuned classifier (`glue.kept_model`) → a Hugging Face
`*ForSequenceClassification` folder that stock `AutoModelForSequenceClassification` and
`AutoTokenizer` load, giving the project's logits.

    python -m sas_jax.convert export --model=runs/x/glue/models/sst2/best --out=hf_sst2

The family follows the encoder, and the head must map exactly (else: refused, one line):

- absolute attention (SAS, ELECTRA, BERT rows; any embedding size) →
  `ElectraForSequenceClassification`. Its `ElectraClassificationHead` is the project's
  head: [CLS] → dropout → dense H→H → exact GELU → dropout → out_proj
  (`classifier.dense`, `classifier.out_proj`), on an `ElectraModel` encoder.
- disentangled attention (DA rows) → `DebertaV2ForSequenceClassification`: its
  `ContextPooler` ([CLS] → dropout → dense → `pooler_hidden_act="gelu"`) then dropout →
  `classifier` is the same head (`pooler.dense`, `classifier`).
- `BertForSequenceClassification` is refused: its head is BERT's pooler (dense → tanh)
  → dropout → classifier, and tanh is not the project's GELU. The same absolute encoder
  exports exactly as ELECTRA (it is BERT's encoder without the pooler).
- what the encoder export refuses (pre-LayerNorm, an enhanced mask decoder, ...) is
  refused here too (`hf_config.to_hf_config`).

config.json holds `id2label`/`label2id` (the task's class names in id order) and
`problem_type` (`single_label_classification`, or `regression` with `num_labels=1`).
The tokenizer is the pre-training export's (`hf_tokenizer`, verified on export) except
that one text is `[CLS] a [SEP]`, as the classifier was fine-tuned; a pair is
`[CLS] a [SEP] b [SEP]` with token types 0/1; `model_max_length` is the run's
max_seq_length. `sas_jax_classifier.json` keeps the kept model's `model.json`.
Truncation: one text cut with `truncation=True` gives the project's ids; a pair whose two
texts are both cut, with an odd number of tokens of room, differs by one token (the
project cuts as BERT, leaving the extra token to the first text; the tokenizers library's
`longest_first` gives it to the second), so long pairs are exact only when cut beforehand.
"""
from __future__ import annotations

import json
import os

import numpy as np

from sas_jax import files
from sas_jax.convert import hf_config as hfc
from sas_jax.convert import hf_export
from sas_jax.errors import UserError

ELECTRA, BERT, DEBERTA = ("ElectraForSequenceClassification", "BertForSequenceClassification",
                          "DebertaV2ForSequenceClassification")
ARCHITECTURES = ("auto", ELECTRA, DEBERTA, BERT)
# classifier class → (the bare encoder class whose keys and config it shares, its key prefix)
BASE = {ELECTRA: ("ElectraModel", "electra."), DEBERTA: ("DebertaV2Model", "deberta."), BERT: ("BertModel", "bert.")}
# our head params → HF keys, per class
HEAD_KEYS = {
    ELECTRA: {("classifier", "dense"): "classifier.dense", ("classifier", "out_proj"): "classifier.out_proj"},
    DEBERTA: {("classifier", "dense"): "pooler.dense", ("classifier", "out_proj"): "classifier"},
}
RECORD = "sas_jax_classifier.json"
BERT_REFUSAL = ("BertForSequenceClassification's head is BERT's pooler (dense -> tanh) then dropout -> classifier; "
                "the project's head is dense -> GELU -> out_proj, which it cannot hold exactly (export this "
                f"encoder as {ELECTRA}, --architecture=auto: the same encoder, and the same head)")


def choose_architecture(cfg, architecture: str = "auto") -> str:
    """The classifier class for `cfg`'s encoder; ValueError (one line) for one that cannot hold it exactly."""
    if architecture in ("", "auto"):
        return DEBERTA if cfg.disentangled else ELECTRA
    if architecture == BERT:
        raise ValueError(BERT_REFUSAL)
    if architecture not in BASE:
        raise ValueError(f"architecture {architecture!r}; use one of {', '.join(ARCHITECTURES)}")
    return architecture


def classifier_state_dict(params, cfg, architecture: str) -> dict:
    """{HF key: float32 array} of the encoder and the head."""
    base, prefix = BASE[architecture]
    sd = hf_export.to_hf_state_dict(params, cfg, base, prefix=prefix)
    for ours, hf in HEAD_KEYS[architecture].items():
        layer = params[ours[0]][ours[1]]
        sd[f"{hf}.weight"] = np.ascontiguousarray(np.asarray(layer["kernel"], np.float32).T)
        sd[f"{hf}.bias"] = np.ascontiguousarray(np.asarray(layer["bias"], np.float32))
    return sd


def classifier_config(cfg, architecture: str, *, labels, regression: bool, pad_token_id: int,
                      head_dropout: float, max_seq_length: int | None = None) -> dict:
    """config.json of the classifier: the encoder's (`to_hf_config`) + labels and head settings."""
    base, _ = BASE[architecture]
    d = hfc.to_hf_config(cfg, base, pad_token_id=pad_token_id)
    names = ["score"] if regression else [str(x) for x in labels]
    d.update(architectures=[architecture], id2label={str(i): n for i, n in enumerate(names)},
             label2id={n: i for i, n in enumerate(names)}, num_labels=len(names),
             problem_type="regression" if regression else "single_label_classification")
    if architecture == ELECTRA:
        d["classifier_dropout"] = float(head_dropout)
    else:
        d.update(pooler_hidden_size=cfg.hidden_size, pooler_hidden_act="gelu", pooler_dropout=float(head_dropout),
                 cls_dropout=float(head_dropout))
    if max_seq_length:
        d[hfc.EXTRA_KEY]["max_seq_length"] = int(max_seq_length)
    return d


def model_card(kept, architecture: str) -> str:
    run, task = kept.meta["run"], kept.task
    labels = "a score (regression)" if kept.is_regression else ", ".join(f"`{x}`" for x in kept.labels)
    return "\n".join([
        f"# {task['title']} classifier ({architecture})",
        "",
        "Fine-tuned by `python -m sas_jax.glue sweep` and exported by `python -m sas_jax.convert export --model`.",
        "",
        "| | |", "|---|---|",
        f"| task | {task['title']} (`{task['name']}`), {'text pairs' if task.get('pair') else 'one text'} "
        f"→ {labels} |",
        f"| run | {run.get('id')}, best epoch {run.get('best_epoch')} |",
        f"| dev {run.get('selection_metric') or 'score'} | {run.get('score')} |",
        f"| encoder | {json.dumps(kept.meta.get('init_from'))} |",
        f"| inputs | `[CLS] a [SEP]` (pairs `[CLS] a [SEP] b [SEP]`), at most {kept.max_seq_length} tokens |",
        "",
        "The whole record of the kept model (its run config included) is in "
        f"`{RECORD}`.",
    ]) + "\n"


def export_classifier(kept, out_dir: str, *, architecture: str = "auto") -> str:
    """Writes `kept` (a `glue.kept_model.KeptModel`) as an HF classifier folder; returns it.
    ValueError for what HF cannot hold exactly."""
    from safetensors.numpy import save_file  # noqa: PLC0415

    from sas_jax.convert import hf_tokenizer  # noqa: PLC0415

    arch = choose_architecture(kept.cfg, architecture)
    tok = kept.tokenizer
    config = classifier_config(kept.cfg, arch, labels=kept.labels, regression=kept.is_regression,
                               pad_token_id=tok.pad_id, head_dropout=float(kept.meta.get("head_dropout", 0.1)),
                               max_seq_length=kept.max_seq_length)
    sd = classifier_state_dict(hf_export._host(kept.params), kept.cfg, arch)
    with files.atomic_dir(out_dir) as tmp:
        hf_tokenizer.write_hf_tokenizer(tok, tmp, model_max_length=kept.max_seq_length, single_sep=True)
        save_file(sd, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        files.write_json(os.path.join(tmp, "config.json"), config)
        files.write_json(os.path.join(tmp, RECORD), kept.meta)
        files.write_text(os.path.join(tmp, "README.md"), model_card(kept, arch))
    return out_dir


def export_kept(model_dir: str, out_dir: str, *, architecture: str = "auto") -> str:
    """`convert export --model`: the kept model in `model_dir` → `out_dir`; one-line UserErrors."""
    from sas_jax.glue import kept_model  # noqa: PLC0415

    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise UserError(f"output folder {out_dir} is not empty; pick another --out or delete it")
    kept = kept_model.load(model_dir)
    try:
        return export_classifier(kept, out_dir, architecture=architecture)
    except (ValueError, KeyError) as e:
        raise UserError(f"{model_dir} cannot be exported: {' '.join(str(e).split())}") from None
