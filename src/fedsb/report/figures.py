"""The figures of a report, each from plain data (predictions, score dicts, metrics rows).

Every function writes ``out`` (PNG) and the same stem as PDF (for the paper) and returns the PNG
path. Methods keep one colour and marker everywhere (``STYLE``), so figures read together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation import metrics as m
from ..evaluation.scoring import Predictions
from ..federated.methods import METHODS, OTHER_STYLE
from .savefig import plt, save_figure

PAPER = (".pdf",)
STYLE = {name: fed.style for name, fed in METHODS.items()}  # method -> (colour, marker)


def style(method: str) -> dict[str, Any]:
    """Matplotlib colour and marker keywords for ``method`` (a default for unknown methods)."""
    colour, marker = STYLE.get(method, OTHER_STYLE)
    return {"color": colour, "marker": marker}


def _finish(ax, xlabel: str, ylabel: str, legend: bool = True) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def reliability_figure(pred: Predictions, temperature: float, out: str | Path) -> Path:
    """Reliability diagrams before and after temperature scaling, with ECE in the titles."""
    before, after = (
        m.reliability(*m.top_label(pred.probs(t), pred.labels)) for t in (1.0, temperature)
    )
    return reliability_bins_figure(before, after, temperature, out)


def reliability_bins_figure(
    before: m.Reliability, after: m.Reliability, temperature: float, out: str | Path
) -> Path:
    """``reliability_figure`` from the bins themselves (a federated evaluation's sums)."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6), sharey=True, constrained_layout=True)
    for ax, t, name, rel in (
        (axes[0], 1.0, "before", before),
        (axes[1], temperature, "after", after),
    ):
        width = np.diff(rel.lower)
        seen = rel.count[:-1] > 0
        left = rel.lower[:-1][seen]
        ax.bar(
            left,
            rel.accuracy[:-1][seen],
            width[seen],
            align="edge",
            color="#1f77b4",
            edgecolor="white",
            label="accuracy",
        )
        ax.bar(
            left,
            (rel.confidence - rel.accuracy)[:-1][seen],
            width[seen],
            bottom=rel.accuracy[:-1][seen],
            align="edge",
            color="#d62728",
            alpha=0.35,
            label="gap to confidence",
        )
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(f"{name} (T = {t:.2f}): ECE {100 * rel.ece:.1f} %", fontsize=10)
        _finish(ax, "confidence", "accuracy" if name == "before" else "", name == "before")
    return save_figure(fig, out, also=PAPER)


def pr_figure(pred: Predictions, temperature: float, out: str | Path) -> Path:
    """One-vs-rest precision-recall curve per class, AP in the legend."""
    probs = pred.probs(temperature)
    fig, ax = plt.subplots(figsize=(6, 4.2), constrained_layout=True)
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, max(len(pred.class_names), 2)))
    for c, name in enumerate(pred.class_names):
        positive = pred.labels == c
        if not positive.any():
            continue
        precision, recall = m.pr_curve(probs[:, c], positive)
        ap = m.average_precision(probs[:, c], positive)
        ax.step(
            np.r_[0, recall],
            np.r_[precision[0], precision],
            where="pre",
            color=colours[c],
            lw=1.2,
            label=f"{name} (AP {ap:.2f})",
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    _finish(ax, "recall", "precision", legend=False)
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    return save_figure(fig, out, also=PAPER)


def confusion_figure(scored: Mapping[str, Any], out: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix (percent of each true class), counts in the cells."""
    counts = np.asarray(scored["confusion"], dtype=np.float64)
    names = scored["class_names"]
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    k = len(names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * k, 0.8 + 0.42 * k), constrained_layout=True)
    image = ax.imshow(100 * share, cmap="Blues", vmin=0, vmax=100)
    for i in range(k):
        for j in range(k):
            if counts[i, j]:
                ax.text(
                    j,
                    i,
                    f"{int(counts[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if share[i, j] > 0.6 else "black",
                )
    ax.set_xticks(range(k), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(k), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(image, ax=ax, shrink=0.8, label="% of true class")
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, out, also=PAPER)


def snr_figure(scores: Mapping[str, Mapping[str, Any]], out: str | Path) -> Path:
    """Accuracy vs SNR, one line per method (``scores``: method -> ``score()`` dict)."""
    fig, ax = plt.subplots(figsize=(6, 3.8), constrained_layout=True)
    for method, scored in scores.items():
        rows = [r for r in scored["per_snr"] if r["accuracy"] is not None]
        x = [(r["low_db"] + r["high_db"]) / 2 for r in rows]
        ax.plot(x, [100 * r["accuracy"] for r in rows], label=method, **style(method))
    ax.set_ylim(0, 100)
    _finish(ax, "SNR (dB)", "accuracy (%)")
    return save_figure(fig, out, also=PAPER)


def rounds_figure(runs: Mapping[str, Sequence[Mapping[str, Any]]], out: str | Path) -> Path:
    """Test accuracy vs round (left) and vs cumulative bytes, log scale (right), per method."""
    fig, (ax_r, ax_b) = plt.subplots(1, 2, figsize=(9, 3.6), constrained_layout=True)
    for method, rows in runs.items():
        kept = [
            r for r in rows if r.get("stage") in ("init", "round") and r.get("test_acc") is not None
        ]
        x = [r["round"] for r in kept]
        y = [100 * r["test_acc"] for r in kept]
        ax_r.plot(x, y, label=method, markersize=4, **style(method))
        sent = [r for r in kept if r.get("cumulative_bytes")]
        ax_b.plot(
            [r["cumulative_bytes"] for r in sent],
            [100 * r["test_acc"] for r in sent],
            label=method,
            markersize=4,
            **style(method),
        )
    ax_b.set_xscale("log")
    ax_r.xaxis.get_major_locator().set_params(integer=True)
    _finish(ax_r, "round", "test accuracy (%)")
    _finish(ax_b, "cumulative bytes, all clients", "test accuracy (%)", legend=False)
    return save_figure(fig, out, also=PAPER)


def agreement_figure(runs: Mapping[str, Sequence[Mapping[str, Any]]], out: str | Path) -> Path:
    """Update agreement per round and method: |mean update| / mean |update|.

    How much of each client's step survives the averaging; dotted, 1/sqrt(K): K clients moving
    independently.
    """
    fig, ax = plt.subplots(figsize=(6.4, 3.6), constrained_layout=True)
    clients = 0
    for method, rows in runs.items():
        kept = [r for r in rows if r.get("stage") == "round" and "update_agreement" in r]
        ax.plot(
            [r["round"] for r in kept],
            [r["update_agreement"] for r in kept],
            label=method,
            markersize=4,
            **style(method),
        )
        clients = max([clients, *(len(r.get("accepted", ())) for r in kept)])
    if clients > 1:
        ax.axhline(clients**-0.5, color="k", ls=":", lw=1, label=f"1/sqrt({clients})")
    ax.set_ylim(0, 1.02)
    ax.xaxis.get_major_locator().set_params(integer=True)
    _finish(ax, "round", "update agreement")
    return save_figure(fig, out, also=PAPER)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats (fewer bytes and at least as accurate)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -np.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def accuracy_floor(accuracies: Sequence[float], span: float = 20.0) -> float:
    """The lowest accuracy the Pareto axis shows (-inf: every cell's).

    When a cell lies more than ``span`` points below the best (a diverged run, which would
    squash the others), the lowest accuracy within ``span`` of the best.
    """
    if not accuracies:
        return -np.inf
    near = [a for a in accuracies if a >= max(accuracies) - span]
    return min(near) if len(near) < len(accuracies) else -np.inf


def pareto_figure(cells: Sequence[Mapping[str, Any]], out: str | Path) -> Path:
    """Final accuracy vs total bytes per (method, rank) cell, each method's ranks joined.

    The Pareto front of all cells is dotted. A cell far below the rest (``accuracy_floor``) is
    drawn on the axis' floor and labelled with its accuracy.

    ``cells``: dicts with method, rank, total_bytes, accuracy.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.2), constrained_layout=True)
    accuracies = [100 * c["accuracy"] for c in cells]
    floor = accuracy_floor(accuracies)
    shown = [max(a, floor) for a in accuracies]  # a diverged cell sits on the floor
    seen: list[str] = []  # methods in order of first cell (a stable legend and z-order)
    for cell, accuracy, y in zip(cells, accuracies, shown):
        method = cell["method"]
        ax.scatter(
            cell["total_bytes"],
            y,
            s=40,
            zorder=3,
            label=None if method in seen else method,
            **style(method),
        )
        seen += [] if method in seen else [method]
        below = accuracy < floor
        if cell["rank"] or below:  # fedavg and head-only have no rank to name
            label = f"r{cell['rank']}" if cell["rank"] else ""
            label += f" ({accuracy:.1f} %, below the axis)" if below else ""
            at = (cell["total_bytes"], y)
            ax.annotate(label.strip(), at, textcoords="offset points", xytext=(4, 3), fontsize=7)
    for method in seen:  # each method's curve: its cells in order of bytes
        own = sorted((c["total_bytes"], y) for c, y in zip(cells, shown) if c["method"] == method)
        if len(own) > 1:
            ax.plot(*zip(*own), lw=1, alpha=0.6, color=style(method)["color"], zorder=2)
    pts = [(c["total_bytes"], y) for c, y in zip(cells, shown)]
    front = pareto_front([(c["total_bytes"], a) for c, a in zip(cells, accuracies)])
    if len(front) > 1:
        ax.plot(*zip(*[pts[i] for i in front]), "k:", lw=1, label="Pareto front")
    if floor > -np.inf:
        ax.set_ylim(bottom=floor - 1)
    ax.set_xscale("log")
    _finish(ax, "total bytes sent, all clients and rounds", "final test accuracy (%)")
    return save_figure(fig, out, also=PAPER)


def partition_figure(
    partition: Sequence[Mapping[str, Any]], class_names: Sequence[str], out: str | Path
) -> Path:
    """Clients x classes record counts (heat map) and each client's SNR window and channel."""
    counts = np.array([p["counts"] for p in partition], dtype=np.float64)
    n, k = counts.shape
    fig, (ax_h, ax_s) = plt.subplots(
        1,
        2,
        figsize=(4 + 0.4 * k, 1.2 + 0.32 * n),
        width_ratios=[k, 5],
        constrained_layout=True,
    )
    image = ax_h.imshow(counts, cmap="viridis", aspect="auto", vmin=0)
    if n * k <= 400:  # small enough to read the counts
        top = counts.max() or 1.0
        for i, j in np.ndindex(n, k):
            colour = "black" if counts[i, j] > 0.6 * top else "white"
            ax_h.text(
                j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=6, color=colour
            )
    ax_h.set_xticks(range(k), class_names, rotation=60, ha="right", fontsize=7)
    ax_h.set_yticks(range(n), [f"client {p['client']}" for p in partition], fontsize=7)
    fig.colorbar(image, ax=ax_h, shrink=0.8, label="training records")
    profiles = sorted({str(p.get("profile", "-")) for p in partition})
    colours = dict(zip(profiles, plt.get_cmap("Set2")(np.arange(len(profiles)))))
    for i, p in enumerate(partition):
        lo, hi = p["snr_db"]
        ax_s.barh(i, hi - lo, left=lo, color=colours[str(p.get("profile", "-"))], height=0.6)
        ax_s.text(hi + 0.5, i, str(p.get("profile", "")), va="center", fontsize=7)
    ax_s.set_yticks(range(n), [""] * n)
    ax_s.set_ylim(n - 0.5, -0.5)
    lows = [p["snr_db"][0] for p in partition]
    highs = [p["snr_db"][1] for p in partition]
    ax_s.set_xlim(min(lows) - 2, max(highs) + 14)
    _finish(ax_s, "SNR window (dB)", "", legend=False)
    ax_s.set_title("SNR and channel", fontsize=9)
    return save_figure(fig, out, also=PAPER)
