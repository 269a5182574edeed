"""``lime-toolkit report``: one self-contained HTML file (figures embedded as base64 PNG) with the
tables and figures of one or several finished runs, readable offline."""
from __future__ import annotations

import base64
import datetime
import html
import tempfile
from pathlib import Path

from lime_toolkit.report import figures
from lime_toolkit.report.documents import load_json
from lime_toolkit.report.tables import paper_table
from lime_toolkit.results import language_summaries
from lime_toolkit.runs.train_log import read_train_log

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:0.6em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
th{background:#f3f3f3} img{max-width:100%} h2{border-bottom:2px solid #ddd;margin-top:2em}
.note{color:#666;font-size:0.9em} code{background:#f5f5f5;padding:0 3px}
"""


def _esc(v) -> str:
    return html.escape(str(v))


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _image(paths) -> str:
    png = next(p for p in paths if str(p).endswith(".png"))
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    return f'<img alt="{_esc(Path(png).stem)}" src="data:image/png;base64,{data}">'


def _matrix_table(matrix: dict) -> str:
    cols = list(dict.fromkeys(c for r in matrix.values() for c in r))
    return _table(["edit \\ eval", *cols], [[le, *(_pct(row.get(c)) for c in cols)] for le, row in matrix.items()])


def _summary_table(rows: list[dict]) -> str:
    def cell(v):
        return f"{100 * v['mean']:.2f}" + (f" ± {100 * v['std']:.2f}" if v["n"] > 1 else "")

    header = ["dataset", "editor", "train langs", "masks", "evaluation", "seeds", "acc", "con", "succ", "succ_per_edit"]
    return _table(header, [[r["dataset"], r["editor"], "en only" if r["train_langs"] == "en" else r["train_langs"],
                            r["masks"], r["evaluation"], ",".join(map(str, r["seeds"])),
                            *(cell(r[k]) for k in ("acc", "con", "succ", "succ_per_edit"))] for r in rows])


def run_label(metrics: dict, run_dir: Path) -> str:
    """A short label for a run: editor+masks (train langs), or the directory name."""
    s = metrics.get("setting")
    if not s:
        return run_dir.name
    masks = "" if s.get("masks") in (None, "none") else f"+{s['masks']}"
    train = s.get("train_langs")
    if train in (None, "n/a"):
        return f"{s.get('editor')}{masks}"
    return f"{s.get('editor')}{masks} ({'en only' if train == 'en' else train})"


def _run_section(run_dir: Path, metrics: dict, tmp: Path, index: int, masks: bool, log) -> str:
    parts = [f"<h2>{_esc(run_label(metrics, run_dir))}</h2>",
             f"<p class='note'>run directory <code>{_esc(run_dir)}</code></p>"]
    s = metrics.get("setting", {})
    parts.append(_table(["setting", "value"], [[k, v if not isinstance(v, list) else ", ".join(map(str, v))]
                                                 for k, v in s.items()]))
    b = metrics.get("baselines") or {}
    trained = "training" in metrics  # editors with nothing to train have no separate baseline
    rows = [["trained editor" if trained else "editor", _pct(metrics["acc"]), _pct(metrics["con"]),
             _pct(metrics["succ"]), _pct(metrics.get("succ_per_edit"))]]
    if b and trained:
        rows.append(["untrained editor", _pct(b.get("acc")), _pct(b.get("con")), _pct(b.get("succ")),
                     _pct(b.get("succ_per_edit"))])
    parts.append("<h3>Headline (macro average over edit languages, %)</h3>")
    parts.append(_table(["", "acc", "con", "succ", "succ_per_edit"], rows))
    if "training" in metrics:
        t = metrics["training"]
        parts.append(f"<p class='note'>trained {t.get('steps')} steps; best step {t.get('best_step')} "
                     f"(validation succ {_pct(t.get('best_val_succ'))}); stopped early: {t.get('stopped_early')}</p>")
    summary = language_summaries(metrics, s.get("eval_langs"))
    parts.append("<h3>Per edit language (%)</h3>")
    parts.append(_table(["edit language", "edits", "acc", "con", "succ", "acc min over eval", "acc spread"], [
        [l, v["edits"], _pct(v["acc"]), _pct(v["con"]), _pct(v["succ"]), _pct((v["acc_over_eval"] or {}).get("min")),
         _pct((v["acc_over_eval"] or {}).get("spread"))] for l, v in summary["per_edit_language"].items()]))
    spread = summary["across_edit_languages"]
    parts.append("<p class='note'>spread across edit languages (max − min): " + ", ".join(
        f"{k} {_pct((spread.get(k) or {}).get('spread'))}" for k in ("acc", "con", "succ")) + "</p>")
    if metrics.get("languages_without_edits"):
        parts.append(f"<p class='note'>no edits in: {_esc(', '.join(metrics['languages_without_edits']))}</p>")
    stem = tmp / f"run{index}"
    parts.append("<h3>acc[l_e][l_u] and con[l_e][l_r]</h3>")
    for metric, role in (("acc", "update"), ("con", "retain")):
        paths = figures.matrix_heatmap(metrics[f"{metric}_matrix"], f"{stem}_{metric}", f"{metric} (%)",
                                       col_label=f"{role} language")
        parts.append(_image(paths))
    parts.append("<details><summary>matrices as numbers (%)</summary>" + _matrix_table(metrics["acc_matrix"])
                 + _matrix_table(metrics["con_matrix"]) + "</details>")
    records = read_train_log(run_dir)
    if records:
        parts.append("<h3>Training curves</h3>")
        parts.append(_image(figures.training_curves(records, f"{stem}_curves", smooth=5 if len(records) > 50 else 0)))
    if masks and s.get("masks") not in (None, "none"):
        parts.append(_mask_section(run_dir, stem, log))
    evals = sorted((run_dir / "eval").glob("*.json")) if (run_dir / "eval").is_dir() else []
    if evals:
        rows = []
        for path in evals:
            doc = load_json(path)
            rows.append([path.stem, doc.get("edits"), _pct(doc.get("acc")), _pct(doc.get("con")),
                         _pct(doc.get("succ")), _pct(doc.get("succ_per_edit")),
                         ", ".join(map(str, doc.get("setting", {}).get("seeds", [])))])
        parts.append("<h3>Evaluations (<code>lime-toolkit evaluate</code>)</h3>")
        parts.append(_table(["setting", "edits", "acc", "con", "succ", "succ_per_edit", "seeds"], rows))
        many = [(path.stem, doc) for path, doc in ((p, load_json(p)) for p in evals) if doc.get("sequential")]
        if many:
            parts.append("<h3>Sequential and batch editing</h3><p class='note'>acc, con and succ of every edit "
                         "made so far; con against the unedited model</p>")
            parts.append(_image(figures.sequential_curves(many, f"{stem}_sequential")))
    return "\n".join(parts)


def _mask_section(run_dir: Path, stem: Path, log) -> str:
    try:
        from lime_toolkit.runs.build import open_run

        run = open_run(run_dir)
        vectors = figures.language_mask_vectors(run.system.masks, list(run.dataset.languages), run.system.param_names)
    except Exception as exc:  # the report still shows everything else
        log(f"mask analysis skipped for {run_dir}: {exc}")
        return f"<p class='note'>mask analysis skipped: {_esc(exc)}</p>"
    if not vectors:
        return "<p class='note'>this mask strategy has no per-language vectors to analyse</p>"
    dims = len(next(iter(vectors.values())))
    return ("<h3>Mask analysis (paper Figure 5)</h3><p class='note'>cosine similarity between the languages' "
            f"mask vectors ({dims} dimensions over the edited weights); right: restricted to the row language's "
            "top-1% dimensions by value</p>" + _image(figures.mask_similarity_heatmap(vectors, f"{stem}_masks")))


def build_report(run_dirs: list, out, masks: bool = True, log=print) -> Path:
    """Write the HTML report of ``run_dirs`` (each with a ``metrics.json``) to ``out``."""
    from lime_toolkit.errors import UserError

    runs = []
    for d in map(Path, run_dirs):
        if not (d / "metrics.json").is_file():
            raise UserError(f"'{d}' has no metrics.json; finish `lime-toolkit train --out {d}` first")
        runs.append((d, load_json(d / "metrics.json")))
    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        body = [f"<h1>lime-toolkit report</h1><p class='note'>{len(runs)} run(s), generated "
                f"{datetime.datetime.now().isoformat(timespec='seconds')}</p>"]
        rows = paper_table([m for _, m in runs if "setting" in m])
        if rows:
            body.append("<h2>Summary (mean ± std over seeds, %)</h2>")
            body.append(_summary_table(rows))
        body.append("<h2>succ per edit language</h2>")
        body.append(_image(figures.succ_distribution([(run_label(m, d), m) for d, m in runs], tmp / "succ")))
        for i, (d, m) in enumerate(runs):
            body.append(_run_section(d, m, tmp, i, masks, log))
        page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>lime-toolkit report</title>"
                f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>")
    from lime_toolkit.files import write_text_atomic

    write_text_atomic(out, page)
    return out
