"""The evaluation document: one evaluation's results (or several seeds' mean and spread) as the JSON
that ``metrics.json`` and ``eval/*.json`` hold."""
from __future__ import annotations

from statistics import mean, stdev

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
