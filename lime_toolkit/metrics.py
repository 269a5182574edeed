"""acc, con and succ (paper section 4.1), macro-averaged over editing languages, with the full
per-language matrices."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from statistics import mean


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


def summarise(records: list[EditRecord], edit_langs: list[str], eval_langs: list[str]) -> dict:
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
    return {
        "acc": acc,
        "con": con,
        "succ": harmonic(acc, con),
        "succ_per_edit": mean(per_edit) if per_edit else 0.0,
        "edits": len(records),
        "per_language": per_language,
        "languages_without_edits": [l for l in edit_langs if l not in per_language],
        "acc_matrix": matrix(acc_cells),
        "con_matrix": matrix(con_cells),
    }
