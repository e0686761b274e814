"""The bag-of-words baseline of a task file: logistic regression on word counts, the number a
fine-tuned encoder has to beat (`python -m sas_jax.prepare_task ... --baseline`, docs/tasks.md)."""
from __future__ import annotations

import os

import numpy as np

from sas_jax.errors import UserError
from sas_jax.glue import user_task


def bag_of_words_baseline(task_dir: str, *, seed: int = 0) -> dict:
    """Logistic regression on word counts (scikit-learn): the number a fine-tuned encoder has to beat.

    Features: the counts of the sentence's words and, separately, of the target word's
    (`CountVectorizer`, lower-cased, word tokens); `LogisticRegression(C=1, max_iter=2000)` fit
    on train; accuracy on dev and test (and the majority class's). Needs scikit-learn (the test extra).
    """
    try:
        import scipy.sparse  # noqa: PLC0415
        from sklearn.feature_extraction.text import CountVectorizer  # noqa: PLC0415
        from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
    except ImportError:
        raise UserError("the bag-of-words baseline needs scikit-learn: pip install scikit-learn") from None

    task = user_task.load(task_dir)
    tr = task.splits["train"]
    word_vec, sent_vec = CountVectorizer(), CountVectorizer()

    def features(split, fit=False):
        a = word_vec.fit_transform(split.text_a) if fit else word_vec.transform(split.text_a)
        b = split.text_b if split.text_b is not None else [""] * len(split)
        b = sent_vec.fit_transform(b) if fit else sent_vec.transform(b)
        return scipy.sparse.hstack([a, b]).tocsr()

    clf = LogisticRegression(C=1.0, max_iter=2000, random_state=seed)
    clf.fit(features(tr, fit=True), tr.labels)
    majority = int(np.bincount(tr.labels).argmax())
    out = {"model": "logistic regression on word counts (target word and sentence, separately)",
           "train_rows": len(tr)}
    for s in ("dev", "test"):
        if s not in task.splits:
            continue
        split = task.splits[s]
        gold = split.labels if s == "dev" else _test_labels(task, s)
        if gold is None:
            continue
        pred = clf.predict(features(split))
        out[s] = {"accuracy": float(np.mean(pred == gold)), "majority_class": float(np.mean(gold == majority)),
                  "rows": len(split)}
    return out


def _test_labels(task, split: str):
    """Test labels, which the task loader leaves out (test rows are for prediction), read again."""

    desc = task.description
    path = os.path.join(os.path.dirname(task.path), desc[split])
    col_b = desc["text"][1] if isinstance(desc["text"], list) and len(desc["text"]) == 2 else None
    col_a = desc["text"][0] if isinstance(desc["text"], list) else desc["text"]
    rows = user_task.read_split(path, split, col_a, col_b, desc.get("label", "label"), desc.get("format"))
    index = {y: i for i, y in enumerate(task.spec.labels)}
    if any(r[2] not in index for r in rows):
        return None
    return np.asarray([index[r[2]] for r in rows])
