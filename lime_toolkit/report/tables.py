"""Tables shaped like the paper's Tables 1 and 2 from finished runs.

Input: metrics dicts (a run's ``metrics.json`` or an evaluation JSON written by
``lime-toolkit evaluate``), each with a ``setting`` naming dataset, editor, masks, train_langs,
seed, edit_langs and eval_langs. Runs that differ only in the seed form one row; each value is the
mean ± sample standard deviation over the seeds (std 0 for one seed).
"""
from __future__ import annotations

from lime_toolkit.results import mean_std

METRICS = ("acc", "con", "succ", "succ_per_edit")


def _langs(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(value)
    return str(value)


def evaluation_name(setting: dict) -> str:
    """``"en -> all"`` style name of the (edit languages -> eval languages) setting. A language
    list is written ``all`` when it holds every language of the run (``setting["languages"]``
    when given, else the union of edit and eval languages) and more than one."""
    edit, evals = list(setting.get("edit_langs") or []), list(setting.get("eval_langs") or [])
    every = list(setting.get("languages") or dict.fromkeys(evals + edit))

    def short(langs):
        return "all" if len(langs) > 1 and set(langs) == set(every) else _langs(langs) or "?"

    return f"{short(edit)} -> {short(evals)}"


def row_key(setting: dict) -> tuple:
    """What makes two runs the same row: everything in the setting except the seed."""
    return (setting.get("dataset"), setting.get("editor"), _langs(setting.get("train_langs")),
            setting.get("masks") or "none", evaluation_name(setting), setting.get("split"),
            setting.get("model"))


def paper_table(metrics_list: list[dict]) -> list[dict]:
    """Rows ``{"dataset", "editor", "train_langs", "masks", "evaluation", "split", "model", "seeds",
    "runs", "acc": {"mean", "std", "n"}, "con": ..., "succ": ..., "succ_per_edit": ...}`` in the
    order rows first appear; values are fractions in [0, 1]."""
    groups: dict[tuple, list[dict]] = {}
    for m in metrics_list:
        groups.setdefault(row_key(m.get("setting", {})), []).append(m)
    rows = []
    for key, members in groups.items():
        dataset, editor, train_langs, masks, evaluation, split, model = key
        row = {"dataset": dataset, "editor": editor, "train_langs": train_langs, "masks": masks,
               "evaluation": evaluation, "split": split, "model": model,
               "seeds": [m["setting"].get("seed") for m in members], "runs": len(members)}
        for k in METRICS:
            row[k] = mean_std(m.get(k, 0.0) for m in members)
            if row[k]["interval"]:  # rates: an interval never leaves [0, 1]
                row[k]["interval"] = [max(0.0, row[k]["interval"][0]), min(1.0, row[k]["interval"][1])]
            if len(members) == 1 and (members[0].get("interval") or {}).get(k):
                row[k]["interval"] = list(members[0]["interval"][k])  # one run: bootstrap over its edits
        rows.append(row)
    return rows


def cell(v: dict, percent: bool) -> str:
    """``mean ± std [lo, hi]`` over seeds (t-interval), or ``value [lo, hi]`` for one run (bootstrap
    interval over its edits, when the run has one)."""
    scale = 100 if percent else 1
    digits = 2 if percent else 4
    text = f"{scale * v['mean']:.{digits}f}"
    if v["n"] > 1:
        text += f" ± {scale * v['std']:.{digits}f}"
    if v.get("interval"):
        lo, hi = v["interval"]
        text += f" [{scale * lo:.{digits - 1}f}, {scale * hi:.{digits - 1}f}]"
    return text


def to_markdown(rows: list[dict], percent: bool = True, per_edit: bool = False) -> str:
    """A markdown table: editor, train langs, masks, evaluation setting, seeds, acc, con, succ (and
    ``succ_per_edit`` when asked); values in % by default, each with its 95% interval."""
    metrics = METRICS if per_edit else METRICS[:3]
    header = ["dataset", "editor", "train langs", "masks", "evaluation", "seeds", *metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        train = "en only" if r["train_langs"] == "en" else r["train_langs"]
        cells = [str(r["dataset"]), str(r["editor"]), train, str(r["masks"]), r["evaluation"],
                 ",".join(map(str, r["seeds"]))]
        cells += [cell(r[k], percent) for k in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
