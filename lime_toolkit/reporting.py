"""Evaluation reports built from :func:`lime_toolkit.metrics.summarise` dicts.

A *result* is one ``summarise()`` dict (one seed). :func:`eval_document` combines the results of
several seeds into the document that ``lime-toolkit evaluate`` writes as JSON (schema in
docs/evaluation.md), with per edit language and per eval language summaries (mean, min, spread =
max − min). :func:`write_eval_outputs` writes it as JSON, CSV (the matrices in long format) and
markdown.
"""
from __future__ import annotations

import csv
from pathlib import Path
from statistics import mean, stdev

from .errors import UserError

SCHEMA = "lime-toolkit/eval/1"
HEADLINE = ("acc", "con", "succ", "succ_per_edit")


def stats(values) -> dict | None:
    """``{"mean", "min", "max", "spread"}`` of the non-None ``values`` (spread = max − min);
    None when there are none."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"mean": mean(values), "min": min(values), "max": max(values), "spread": max(values) - min(values)}


#: Two-sided 97.5% quantiles of Student's t for 1..10 degrees of freedom (95% intervals over seeds).
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def mean_std(values) -> dict:
    """``{"mean", "std", "n", "interval"}``; ``std`` is the sample standard deviation (0 for one
    value) and ``interval`` the 95% t-interval of the mean over the values (None for one value)."""
    values = [float(v) for v in values]
    n = len(values)
    m = mean(values)
    sd = stdev(values) if n > 1 else 0.0
    interval = None
    if n > 1:
        half = (T975[n - 2] if n - 2 < len(T975) else 1.96) * sd / n ** 0.5
        interval = [m - half, m + half]
    return {"mean": m, "std": sd, "n": n, "interval": interval}


def _mean_matrix(matrices: list[dict]) -> dict:
    """Cell-wise mean of ``{l_e: {l: value}}`` matrices over the cells each has."""
    out: dict = {}
    for le in dict.fromkeys(k for m in matrices for k in m):
        cells = dict.fromkeys(l for m in matrices for l in m.get(le, {}))
        out[le] = {l: mean(m[le][l] for m in matrices if l in m.get(le, {})) for l in cells}
    return out


def mean_result(results: list[dict]) -> dict:
    """The mean of several ``summarise()`` dicts (seeds): headline numbers, per-language values and
    matrices averaged; ``succ`` is the mean of each seed's succ (the paper averages runs)."""
    if len(results) == 1:
        return results[0]
    langs = dict.fromkeys(l for r in results for l in r["per_language"])
    per_language = {}
    for l in langs:
        mine = [r["per_language"][l] for r in results if l in r["per_language"]]
        per_language[l] = {k: mean(v[k] for v in mine) for k in ("acc", "con", "succ")}
        per_language[l]["edits"] = sum(v["edits"] for v in mine)
    return {
        **{k: mean(r[k] for r in results) for k in HEADLINE},
        "edits": sum(r["edits"] for r in results),
        "per_language": per_language,
        "languages_without_edits": [l for l in results[0]["languages_without_edits"] if l not in per_language],
        "acc_matrix": _mean_matrix([r["acc_matrix"] for r in results]),
        "con_matrix": _mean_matrix([r["con_matrix"] for r in results]),
    }


def language_summaries(result: dict, eval_langs: list[str] | None = None) -> dict:
    """Per edit language (its acc/con/succ and, over eval languages, the stats of its acc and con
    row) and per eval language (stats of the acc and con columns over edit languages), plus the
    spread of acc/con/succ across edit languages."""
    acc_m, con_m = result["acc_matrix"], result["con_matrix"]
    eval_langs = eval_langs or list(dict.fromkeys(l for m in (acc_m, con_m) for row in m.values() for l in row))
    per_edit = {}
    for le, v in result["per_language"].items():
        per_edit[le] = {**v, "acc_over_eval": stats(acc_m.get(le, {}).values()),
                        "con_over_eval": stats(con_m.get(le, {}).values())}
    per_eval = {}
    for l in eval_langs:
        acc = stats(row.get(l) for row in acc_m.values())
        con = stats(row.get(l) for row in con_m.values())
        if acc or con:
            per_eval[l] = {"acc": acc, "con": con}
    spread = {k: stats(v[k] for v in result["per_language"].values()) for k in ("acc", "con", "succ")}
    return {"per_edit_language": per_edit, "per_eval_language": per_eval, "across_edit_languages": spread}


def eval_document(results: dict, setting: dict, source: dict | None = None) -> dict:
    """The JSON document of an evaluation: ``results`` maps seed -> ``summarise()`` dict;
    ``setting`` describes what was evaluated; ``source`` where (run directory, checkpoint)."""
    seeds = list(results)
    combined = mean_result([results[s] for s in seeds])
    doc = {
        "schema": SCHEMA,
        **{k: combined[k] for k in HEADLINE},
        "std": {k: mean_std(results[s][k] for s in seeds)["std"] for k in HEADLINE},
        # one seed: bootstrap over its edits; several: the t-interval of the mean over seeds
        "interval": (combined.get("interval") if len(seeds) == 1 else
                     {k: mean_std(results[s][k] for s in seeds)["interval"] for k in ("acc", "con", "succ")}),
        "edits": combined["edits"],
        "acc_matrix": combined["acc_matrix"],
        "con_matrix": combined["con_matrix"],
        "per_language": combined["per_language"],
        "languages_without_edits": combined["languages_without_edits"],
        **language_summaries(combined, setting.get("eval_langs")),
        "setting": {**setting, "seeds": seeds},
        "source": source or {},
        "per_seed": {str(s): results[s] for s in seeds},
    }
    return doc


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

    from .cache import write_json_atomic, write_text_atomic

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
    from .rundir import read_json

    path = Path(path)
    fix = ("run `lime-toolkit evaluate` again to rewrite it" if path.parent.name == "eval" else
           "run `lime-toolkit train` with the same --out again to rewrite it")
    doc = read_json(path, "results file", fix)
    if not isinstance(doc, dict):
        raise UserError(f"results file '{path}' is damaged (not a JSON object); {fix}")
    return doc
