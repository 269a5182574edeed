"""acc, con and succ (paper section 4.1), macro-averaged over editing languages, with the full
per-language matrices."""
from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from statistics import mean

#: Bootstrap resamples behind the 95% intervals (seeded: the same records give the same interval).
BOOTSTRAP_SAMPLES = 1000


def harmonic(acc: float, con: float) -> float:
    """succ = 2·acc·con / (acc + con); 0 when both are 0."""
    return 0.0 if acc + con == 0 else 2 * acc * con / (acc + con)


@dataclass
class EditRecord:
    """The outcome of one edit: per eval language, whether each parallel (update) input took the
    target, and whether each unrelated (retain) input kept its prediction."""

    edit_lang: str
    updates: list[tuple[str, bool]] = field(default_factory=list)
    retains: list[tuple[str, bool]] = field(default_factory=list)


def _rate(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def summarise(records: list[EditRecord], edit_langs: list[str], eval_langs: list[str],
              intervals: bool = True) -> dict:
    """The metrics of a set of edits.

    ``acc``/``con`` are the means over editing languages of each language's acc/con (languages with
    no edits are left out and listed under ``languages_without_edits``); ``succ`` is their harmonic
    mean (the paper's headline); ``succ_per_edit`` is the mean over edits of each edit's harmonic
    mean (what the reference code reports).
    """
    acc_cells, con_cells = defaultdict(list), defaultdict(list)
    for r in records:
        for lang, ok in r.updates:
            acc_cells[(r.edit_lang, lang)].append(ok)
        for lang, ok in r.retains:
            con_cells[(r.edit_lang, lang)].append(ok)

    def matrix(cells):
        return {le: {l: _rate(cells[(le, l)]) for l in eval_langs if cells.get((le, l))} for le in edit_langs}

    per_language = {}
    for le in edit_langs:
        mine = [r for r in records if r.edit_lang == le]
        acc = _rate([ok for r in mine for _, ok in r.updates])
        con = _rate([ok for r in mine for _, ok in r.retains])
        if acc is None or con is None:
            continue
        per_language[le] = {"acc": acc, "con": con, "succ": harmonic(acc, con), "edits": len(mine)}
    acc = mean(v["acc"] for v in per_language.values()) if per_language else 0.0
    con = mean(v["con"] for v in per_language.values()) if per_language else 0.0
    per_edit = [harmonic(_rate([ok for _, ok in r.updates]) or 0.0, _rate([ok for _, ok in r.retains]) or 0.0)
                for r in records if r.updates and r.retains]
    macro_interval = {}
    if intervals:
        macro_interval, language_intervals = bootstrap_intervals(records, list(per_language))
        for le, ci in language_intervals.items():
            per_language[le]["interval"] = ci
    return {
        "acc": acc,
        "con": con,
        "succ": harmonic(acc, con),
        "interval": macro_interval,
        "succ_per_edit": mean(per_edit) if per_edit else 0.0,
        "edits": len(records),
        "per_language": per_language,
        "languages_without_edits": [l for l in edit_langs if l not in per_language],
        "acc_matrix": matrix(acc_cells),
        "con_matrix": matrix(con_cells),
    }


def bootstrap_intervals(records: list[EditRecord], langs: list[str], samples: int = BOOTSTRAP_SAMPLES,
                        level: float = 0.95, seed: int = 0) -> tuple[dict, dict]:
    """95% percentile-bootstrap intervals of the macro acc, con and succ, and of each edit
    language's own, resampling edits (with all their checks) within each edit language.

    Returns ``({"acc": [lo, hi], "con": ..., "succ": ...}, {lang: {...}})``; empty dicts when
    there is nothing to resample."""
    # per edit: (update hits, update checks, retain hits, retain checks)
    counts = {l: [(sum(ok for _, ok in r.updates), len(r.updates), sum(ok for _, ok in r.retains), len(r.retains))
                  for r in records if r.edit_lang == l] for l in langs}
    counts = {l: c for l, c in counts.items() if c}
    if not counts:
        return {}, {}
    rng = random.Random(seed)
    draws: list[dict[str, float]] = []
    per_lang_draws: dict[str, list[dict[str, float]]] = {l: [] for l in counts}
    for _ in range(samples):
        rates = {}
        for l, c in counts.items():
            picked = [c[rng.randrange(len(c))] for _ in c]
            totals = [sum(column) for column in zip(*picked)]
            rates[l] = (totals[0] / totals[1] if totals[1] else 0.0, totals[2] / totals[3] if totals[3] else 0.0)
            per_lang_draws[l].append(_rates(*rates[l]))
        draws.append(_rates(mean(a for a, _ in rates.values()), mean(c for _, c in rates.values())))
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2

    def bounds(values: list[dict[str, float]]) -> dict[str, list[float]]:
        out = {}
        for k in ("acc", "con", "succ"):
            ordered = sorted(v[k] for v in values)
            out[k] = [ordered[int(lo_q * (len(ordered) - 1))], ordered[int(round(hi_q * (len(ordered) - 1)))]]
        return out

    return bounds(draws), {l: bounds(v) for l, v in per_lang_draws.items()}


def _rates(acc: float, con: float) -> dict[str, float]:
    return {"acc": acc, "con": con, "succ": harmonic(acc, con)}
