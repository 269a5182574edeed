"""Figures (matplotlib, Agg backend), each written as PNG and SVG.

* :func:`succ_distribution`: per-language succ of one or several runs side by side, a point per
  edit language and the mean (the paper's Figures 3 and 4).
* :func:`matrix_heatmap`: the acc[l_e][l_u] or con[l_e][l_r] matrix.
* :func:`mask_similarity` / :func:`mask_similarity_heatmap`: the mask analysis of Figure 5.
* :func:`training_curves`: loss terms and validation metrics from ``train_log.jsonl``.
* :func:`sequential_curves`: acc, con and succ after each stage of sequential or batch editing.

Every plotting function takes an output *stem* (a path without extension) and returns the written
paths ``[stem.png, stem.svg]``.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

FORMATS = ("png", "svg")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, stem) -> list[Path]:
    """Write ``fig`` to ``stem.png`` and ``stem.svg`` and close it."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in FORMATS:
        path = stem.with_name(stem.name + "." + fmt)
        fig.savefig(path, format=fmt, dpi=120, bbox_inches="tight")
        paths.append(path)
    _plt().close(fig)
    return paths


def succ_distribution(runs: list[tuple[str, dict]], stem, metric: str = "succ") -> list[Path]:
    """One column per run (``(label, metrics)`` with ``per_language``): a point per edit language
    (labelled with its code) and a bar at the mean over languages."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(3.0, 1.6 * len(runs) + 1.5), 4.0))
    for i, (label, metrics) in enumerate(runs):
        per = metrics.get("per_language", {})
        langs = list(per)
        values = [100 * per[l][metric] for l in langs]
        offsets = np.linspace(-0.18, 0.18, len(values)) if len(values) > 1 else np.zeros(len(values))
        ax.scatter(i + offsets, values, s=18, alpha=0.8, zorder=3)
        for x, y, l in zip(i + offsets, values, langs):
            ax.annotate(l, (x, y), fontsize=6, xytext=(3, 0), textcoords="offset points", va="center")
        if values:
            m = float(np.mean(values))
            ax.hlines(m, i - 0.3, i + 0.3, colors="black", linewidth=2, zorder=4)
            ax.annotate(f"{m:.1f}", (i + 0.3, m), fontsize=7, xytext=(2, 0), textcoords="offset points", va="center")
    ax.set_xticks(range(len(runs)))
    ax.set_xticklabels([label for label, _ in runs], rotation=20, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(runs) - 0.4)
    ax.set_ylabel(f"{metric} per edit language (%)")
    ax.set_ylim(-2, 102)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"{metric} by edit language (bar: mean)")
    return save_figure(fig, stem)


def matrix_heatmap(matrix: dict, stem, title: str = "acc", row_label: str = "edit language",
                   col_label: str = "update language") -> list[Path]:
    """Heatmap of ``{row language: {column language: value in [0, 1]}}`` (missing cells blank),
    annotated in %."""
    plt = _plt()
    rows = list(matrix)
    cols = list(dict.fromkeys(c for r in matrix.values() for c in r))
    data = np.full((len(rows), len(cols)), np.nan)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            if matrix[r].get(c) is not None:
                data[i, j] = 100 * matrix[r][c]
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * max(len(cols), 3), 0.8 + 0.4 * max(len(rows), 3)),
                           constrained_layout=True)
    cmap = plt.get_cmap("viridis").with_extremes(bad="#dddddd")  # grey: cells without data
    image = ax.imshow(np.ma.masked_invalid(data), vmin=0, vmax=100, cmap=cmap, aspect="auto")
    _annotate(ax, data, "{:.0f}", light_above=60)
    _ticks(ax, rows, cols, row_label, col_label)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="%")
    return save_figure(fig, stem)


def _annotate(ax, data, fmt, light_above: float | None = None, light_below: float | None = None) -> None:
    """Write each finite value in its cell; black text on light cells (value above ``light_above``
    or below ``light_below``, depending on the colour map), white otherwise."""
    if data.size > 400:
        return
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            v = data[i, j]
            if math.isnan(v):
                continue
            light = (light_above is not None and v > light_above) or (light_below is not None and v < light_below)
            ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=6, color="black" if light else "white")


def _ticks(ax, rows, cols, row_label, col_label) -> None:
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels(cols, fontsize=7, rotation=90 if len(cols) > 8 else 0)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows, fontsize=7)
    ax.set_xlabel(col_label)
    ax.set_ylabel(row_label)


def language_mask_vectors(masks, langs: list[str], names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Per language, ``masks.language_vectors(lang)`` concatenated over the edited weights (in
    ``names`` order, else the order the strategy returns them). Empty when the strategy has no
    vectors (no masks, ``none``)."""
    out = {}
    for lang in langs:
        per_weight = masks.language_vectors(lang) if masks is not None else {}
        if not per_weight:
            return {}
        order = names or list(per_weight)
        out[lang] = np.concatenate([per_weight[n].detach().cpu().double().reshape(-1).numpy() for n in order])
    return out


def top_dimensions(vector: np.ndarray, fraction: float = 0.01, select: str = "value") -> np.ndarray:
    """Indices of the top ``fraction`` of dimensions (at least one) of ``vector``: the largest
    values (``select="value"``: the dimensions a language's mask opens most) or the largest
    absolute values (``"abs"``)."""
    k = max(1, int(math.ceil(fraction * vector.size)))
    key = vector if select == "value" else np.abs(vector)
    return np.argsort(-key, kind="stable")[:k]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


def mask_similarity(vectors: dict[str, np.ndarray], fraction: float | None = 0.01, select: str = "value",
                    center: bool = False) -> tuple[list[str], np.ndarray]:
    """The Figure 5 matrix: S[i, j] = cos(v_i[T_i], v_j[T_i]) where T_i are language i's top
    ``fraction`` dimensions (:func:`top_dimensions`); ``fraction=None`` compares whole vectors.
    ``center=True`` first subtracts the mean over languages per dimension (what is specific to a
    language). Rows are the languages whose top dimensions are used, so S need not be symmetric."""
    langs = list(vectors)
    stack = np.stack([vectors[l] for l in langs]) if langs else np.zeros((0, 0))
    if center and len(langs):
        stack = stack - stack.mean(axis=0, keepdims=True)
    sim = np.zeros((len(langs), len(langs)))
    for i in range(len(langs)):
        dims = slice(None) if fraction is None else top_dimensions(stack[i], fraction, select)
        for j in range(len(langs)):
            sim[i, j] = _cosine(stack[i][dims], stack[j][dims])
    return langs, sim


def mask_similarity_heatmap(vectors: dict[str, np.ndarray], stem, fraction: float = 0.01,
                            select: str = "value", center: bool = False) -> list[Path]:
    """Two heatmaps side by side: cosine similarity of the whole mask vectors, and restricted to
    each row language's top ``fraction`` dimensions (:func:`mask_similarity`)."""
    plt = _plt()
    n = len(vectors)
    side = 1.0 + 0.45 * max(n, 3)
    fig, axes = plt.subplots(1, 2, figsize=(2 * side + 1.5, side + 0.6), constrained_layout=True)
    for ax, frac, title in ((axes[0], None, "all dimensions"),
                            (axes[1], fraction, f"top {100 * fraction:g}% dims of row language\n(by {select})")):
        langs, sim = mask_similarity(vectors, frac, select, center)
        image = ax.imshow(sim, vmin=-1, vmax=1, cmap="RdBu_r")
        _annotate(ax, sim, "{:.2f}", light_above=-0.5, light_below=0.5)
        _ticks(ax, langs, langs, "language i", "language j")
        ax.set_title(title, fontsize=8)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="cosine similarity")
    fig.suptitle("mask vectors" + (" (centred over languages)" if center else ""), fontsize=9)
    return save_figure(fig, stem)


def training_curves(records: list[dict], stem, smooth: int = 0) -> list[Path]:
    """One panel per loss term against the step (``smooth`` > 1: running mean over that many steps)
    and one with validation acc/con/succ, from ``train_log.jsonl`` records."""
    plt = _plt()
    steps = [r for r in records if r.get("event") == "step"]
    vals = [r for r in records if r.get("event") == "validation"]
    skip = {"event", "step", "time", "steps_per_s"}
    terms = list(dict.fromkeys(k for r in steps for k in r if k not in skip))
    fig, axes = plt.subplots(1, len(terms) + 1, figsize=(2.6 * (len(terms) + 1), 2.6), constrained_layout=True,
                             squeeze=False)
    for ax, k in zip(axes[0], terms):
        xs = [r["step"] for r in steps if k in r]
        ys = np.array([r[k] for r in steps if k in r], dtype=float)
        if smooth > 1 and len(ys) >= smooth:
            ys = np.convolve(ys, np.ones(smooth) / smooth, mode="valid")
            xs = xs[smooth - 1:]
        ax.plot(xs, ys, linewidth=1)
        ax.set_title(k, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    right = axes[0][-1]
    for k in ("acc", "con", "succ"):
        pts = [(r["step"], 100 * r[k]) for r in vals if k in r]
        if pts:
            right.plot(*zip(*pts), marker="o", markersize=3, label=k)
    best = [r["step"] for r in vals if r.get("improved")]
    if best:
        right.axvline(best[-1], color="grey", linestyle=":", label="best")
    right.set_ylim(-2, 102)
    right.set_xlabel("step", fontsize=8)
    right.set_title("validation (%)", fontsize=9)
    right.tick_params(labelsize=7)
    if vals:
        right.legend(fontsize=7)
    return save_figure(fig, stem)


def sequential_curves(runs: list[tuple[str, dict]], stem) -> list[Path]:
    """Sequential/batch editing: one panel each for acc, con and succ (%) of every edit so far
    against the number of edits made (log scale), a line per ``(label, evaluation document)``."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(9.0, 2.8), constrained_layout=True)
    for label, doc in runs:
        stages = (doc.get("sequential") or {}).get("stages") or []
        xs = [st["edits"] for st in stages]
        for ax, k in zip(axes, ("acc", "con", "succ")):
            ax.plot(xs, [100 * st[k] for st in stages], marker="o", markersize=3, label=label)
    for ax, k in zip(axes, ("acc", "con", "succ")):
        ax.set_xscale("log")
        ax.set_ylim(-2, 102)
        ax.set_xlabel("edits made", fontsize=8)
        ax.set_title(f"{k} of every edit so far (%)", fontsize=9)
        ax.tick_params(labelsize=7)
    axes[-1].legend(fontsize=7)
    return save_figure(fig, stem)
