"""An evaluation document as files: markdown, CSV of its matrices, and reading it back."""
from __future__ import annotations

import csv
from pathlib import Path

from lime_toolkit.errors import UserError
from lime_toolkit.results import HEADLINE


def matrix_rows(doc: dict) -> list[dict]:
    """The matrices in long format: one row per (seed or "mean", metric, edit language, eval
    language)."""
    rows = []
    per_seed = doc.get("per_seed", {})
    sources = [("mean", doc)] + (list(per_seed.items()) if len(per_seed) > 1 else [])
    for seed, result in sources:
        for metric in ("acc", "con"):
            for le, row in result[f"{metric}_matrix"].items():
                for l, value in row.items():
                    rows.append({"seed": seed, "metric": metric, "edit_lang": le, "eval_lang": l, "value": value})
    return rows


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}"


def _matrix_markdown(matrix: dict, title: str) -> list[str]:
    cols = list(dict.fromkeys(l for row in matrix.values() for l in row))
    lines = [f"### {title}", "", "| edit \\ eval | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for le, row in matrix.items():
        lines.append(f"| {le} | " + " | ".join(_pct(row.get(l)) for l in cols) + " |")
    return lines + [""]


def eval_markdown(doc: dict) -> str:
    """A markdown report of an evaluation document (values in %)."""
    s = doc["setting"]
    std = doc.get("std", {})
    interval = doc.get("interval") or {}

    def head(k):
        text = _pct(doc[k]) + (f" ± {100 * std[k]:.2f}" if len(s.get("seeds", [])) > 1 else "")
        if interval.get(k):
            text += f" [{100 * interval[k][0]:.1f}, {100 * interval[k][1]:.1f}]"
        return text

    lines = [f"# {s.get('editor', '?')} + {s.get('masks', '?')} masks on {s.get('dataset', '?')}: "
             f"{s.get('split', '?')} edits, {','.join(s.get('edit_langs', []))} -> {','.join(s.get('eval_langs', []))}",
             "", f"seeds {s.get('seeds')}, {doc['edits']} edits, n_update {s.get('n_update')}, "
                 f"n_retain {s.get('n_retain')}, max_edits {s.get('max_edits')}", "",
             "| acc [95% interval] | con | succ | succ_per_edit (mean of per-edit harmonic means) |",
             "|---|---|---|---|",
             f"| {head('acc')} | {head('con')} | {head('succ')} | {head('succ_per_edit')} |", "",
             "### Per edit language", "", "| edit lang | edits | acc | con | succ | acc min over eval | acc spread |",
             "|---|---|---|---|---|---|---|"]
    for le, v in doc["per_edit_language"].items():
        a = v.get("acc_over_eval") or {}
        lines.append(f"| {le} | {v['edits']} | {_pct(v['acc'])} | {_pct(v['con'])} | {_pct(v['succ'])} | "
                     f"{_pct(a.get('min'))} | {_pct(a.get('spread'))} |")
    spread = doc["across_edit_languages"]
    lines += ["", "Spread across edit languages (max − min): " + ", ".join(
        f"{k} {_pct((spread.get(k) or {}).get('spread'))}" for k in ("acc", "con", "succ")), "",
        "### Per eval language", "",
        "| eval lang | acc mean | acc min | acc spread | con mean | con min | con spread |",
        "|---|---|---|---|---|---|---|"]
    for l, v in doc["per_eval_language"].items():
        a, c = v["acc"] or {}, v["con"] or {}
        lines.append(f"| {l} | {_pct(a.get('mean'))} | {_pct(a.get('min'))} | {_pct(a.get('spread'))} | "
                     f"{_pct(c.get('mean'))} | {_pct(c.get('min'))} | {_pct(c.get('spread'))} |")
    if doc.get("languages_without_edits"):
        lines += ["", "Edit languages without edits: " + ", ".join(doc["languages_without_edits"])]
    lines.append("")
    lines += _matrix_markdown(doc["acc_matrix"], "acc[l_e][l_u] (%)")
    lines += _matrix_markdown(doc["con_matrix"], "con[l_e][l_r] (%)")
    if doc.get("sequential"):
        seq = doc["sequential"]
        lines += [f"### Sequential editing: {seq['n_edits']} edits in steps of {seq['batch_edits']} "
                  f"(every edit so far; con against the unedited model, %)", "",
                  "| edits | steps | acc | con | succ | succ_per_edit |", "|---|---|---|---|---|---|"]
        lines += [f"| {st['edits']} | {st['steps']} | " + " | ".join(_pct(st[k]) for k in HEADLINE) + " |"
                  for st in seq["stages"]] + [""]
    return "\n".join(lines)


def write_eval_outputs(doc: dict, directory, name: str) -> dict[str, Path]:
    """Write ``<directory>/<name>.json``, ``.csv`` (matrices, long format) and ``.md``."""
    import io

    from lime_toolkit.files import write_json_atomic, write_text_atomic

    directory = Path(directory)
    paths = {ext: directory / f"{name}.{ext}" for ext in ("json", "csv", "md")}
    write_json_atomic(paths["json"], doc)
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=["seed", "metric", "edit_lang", "eval_lang", "value"])
    writer.writeheader()
    writer.writerows(matrix_rows(doc))
    write_text_atomic(paths["csv"], table.getvalue())
    write_text_atomic(paths["md"], eval_markdown(doc))
    return paths


def load_json(path) -> dict:
    """Read a metrics or evaluation JSON file; a damaged one is one line naming it and the way out."""
    from lime_toolkit.files import read_json

    path = Path(path)
    fix = ("run `lime-toolkit evaluate` again to rewrite it" if path.parent.name == "eval" else
           "run `lime-toolkit train` with the same --out again to rewrite it")
    doc = read_json(path, "results file", fix)
    if not isinstance(doc, dict):
        raise UserError(f"results file '{path}' is damaged (not a JSON object); {fix}")
    return doc
