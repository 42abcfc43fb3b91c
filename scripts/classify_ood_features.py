"""Unknown-signal scores on the model's features against the logit scores ``fedsb classify`` uses.

    .venv/bin/python scripts/classify_ood_features.py RUN --fit DATA... --known TEST --unseen TEST

``--fit``: labelled data of the model's classes (its training files) for the class means and
the shared covariance of the penultimate features (the input of ``head``). ``--known`` and
``--unseen``: labelled test sets of known classes and of classes the model never saw (e.g.
``scripts/gnuradio_recordings.py test --classes extra``). Prints the AUROC (known against
unseen windows, overall and at >= 10 dB) of the maximum softmax probability, the energy score,
the Mahalanobis distance to the nearest class mean (Lee et al. 2018), the relative Mahalanobis
distance (Ren et al. 2021) and the cosine distance to the 10th nearest training feature (Sun et
al. 2022). docs/classify.md quotes its output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fedsb.data.imageset import quantised_images  # noqa: E402
from fedsb.data.sources import windows  # noqa: E402
from fedsb.evaluation.classify_model import window_scores  # noqa: E402
from fedsb.evaluation.evaluate_run import load_classifier  # noqa: E402
from fedsb.io.load import load_records  # noqa: E402


def features(loaded, path: Path, cap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(logits, features, label names, SNR) of up to ``cap`` windows of ``path`` (seeded)."""
    records = windows(load_records(path, length=loaded.length), loaded.length, path)
    index = np.random.default_rng(0).permutation(len(records))[:cap]
    images = quantised_images(records.iq[index], loaded.images)
    kept: list[torch.Tensor] = []
    hook = loaded.model.head.register_forward_hook(lambda m, i, o: kept.append(i[0].detach()))
    with torch.no_grad():
        logits = [
            loaded.model.eval()(images[s : s + 256].float() / 255)
            for s in range(0, len(index), 256)
        ]
    hook.remove()
    names = np.asarray(records.class_names)[records.labels[index]]
    return (torch.cat(logits).double().numpy(), torch.cat(kept).double().numpy(), names,
            np.asarray(records.snr_db, np.float64)[index])  # fmt: skip


def feature_scores(fit_f: np.ndarray, fit_y: np.ndarray):
    """Score functions (higher: more familiar) fitted on the training features."""
    classes = sorted(set(fit_y))
    mu = np.stack([fit_f[fit_y == c].mean(0) for c in classes])
    centred = fit_f - mu[[classes.index(c) for c in fit_y]]
    eye = 1e-6 * np.eye(fit_f.shape[1])
    inv = np.linalg.inv(centred.T @ centred / len(centred) + eye)
    mu0 = fit_f.mean(0)
    inv0 = np.linalg.inv((fit_f - mu0).T @ (fit_f - mu0) / len(fit_f) + eye)
    unit = fit_f / np.linalg.norm(fit_f, axis=1, keepdims=True)

    def maha(f):
        d = f[:, None, :] - mu[None]
        return -np.einsum("nkd,de,nke->nk", d, inv, d).min(1)

    def relative(f):
        return maha(f) + np.einsum("nd,de,ne->n", f - mu0, inv0, f - mu0)

    def knn(f):
        sims = (f / np.linalg.norm(f, axis=1, keepdims=True)) @ unit.T
        return np.sort(sims, 1)[:, -10]

    return {"mahalanobis": maha, "relative mahalanobis": relative, "knn (k=10)": knn}


def main() -> int:
    """Fit on ``--fit``, score ``--known`` against ``--unseen``, print the AUROCs."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--fit", type=Path, nargs="+", required=True)
    p.add_argument("--known", type=Path, required=True)
    p.add_argument("--unseen", type=Path, required=True)
    p.add_argument("--cap", type=int, default=4000, help="windows per file at most")
    a = p.parse_args()
    torch.set_num_threads(1)
    loaded, _ = load_classifier(a.run)
    fit = [features(loaded, f, a.cap) for f in a.fit]
    funcs = feature_scores(np.concatenate([f[1] for f in fit]), np.concatenate([f[2] for f in fit]))
    (kl, kf, _, ks), (ul, uf, _, us) = (
        features(loaded, a.known, a.cap),
        features(loaded, a.unseen, a.cap),
    )
    temperature = loaded.temperature
    scores = {
        "max softmax": lambda lg, f: np.exp(window_scores(lg, temperature)[0].max(1)),
        "energy": lambda lg, f: window_scores(lg, temperature)[1],
        **{name: (lambda lg, f, fn=fn: fn(f)) for name, fn in funcs.items()},
    }
    for band, mk, mu in (("all", ks > -np.inf, us > -np.inf), (">= 10 dB", ks >= 10, us >= 10)):
        print(f"AUROC, known ({mk.sum()}) against unseen ({mu.sum()}) windows, {band}:")
        for name, score in scores.items():
            known, unseen = score(kl, kf)[mk], score(ul, uf)[mu]
            truth = np.r_[np.ones(known.size), np.zeros(unseen.size)]
            print(f"  {name:22s} {roc_auc_score(truth, np.r_[known, unseen]):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
