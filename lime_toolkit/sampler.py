"""The cross-lingual sampling wrapper (paper section 3.2), outside every editor.

Each draw picks an edit language l_e, an update language l_u and a retain language l_r from the
configured sets; x_e is an edit case in l_e, x_u its parallel version in l_u, x_r unrelated inputs
in l_r. A draw depends only on (seed, step, micro-step), so a resumed run continues exactly where
it stopped.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from lime_toolkit.data import EditCase, Example
from lime_toolkit.errors import UserError


@dataclass(frozen=True)
class LanguageRoles:
    """Languages that may take each role, in order."""

    edit: tuple[str, ...]
    update: tuple[str, ...]
    retain: tuple[str, ...]

    @classmethod
    def parse(cls, spec: str | list[str], languages: list[str]) -> "LanguageRoles":
        """``"en"`` (English only: every role en), ``"all"`` (every language in every role) or a
        comma list. Unknown languages are an error naming the known ones."""
        if spec == "all":
            langs = list(languages)
        else:
            langs = spec.split(",") if isinstance(spec, str) else list(spec)
            langs = [l.strip() for l in langs if l.strip()]
            unknown = [l for l in langs if l not in languages]
            if unknown or not langs:
                raise UserError(f"unknown language(s) {', '.join(unknown) or '(none given)'}; "
                                f"this dataset has: {', '.join(languages)}")
        return cls(tuple(langs), tuple(langs), tuple(langs))


@dataclass(frozen=True)
class Sample:
    """One training draw: the edit input x_e, the update inputs x_u (parallel to x_e; the first is
    the paper's single x_u) and the unrelated retain inputs x_r."""

    case: EditCase
    edit: Example
    updates: list[Example]
    retain: list[Example]

    @property
    def update(self) -> Example:
        return self.updates[0]


class CrossLingualSampler:
    """Draws (x_e, x_u, x_r) triples deterministically from a seed; a case with ``alternatives``
    takes one of its target sets (its own or an alternative) uniformly at each draw, or, with
    ``hard_targets`` k > 1 and a ``difficulty`` scorer, the hardest of k such sets drawn without
    replacement."""

    def __init__(self, cases: list[EditCase], pool: dict[str, list[Example]], roles: LanguageRoles,
                 n_retain: int = 1, seed: int = 0, n_update: int = 1, hard_targets: int = 1,
                 difficulty: Callable[[EditCase], float] | None = None):
        """``n_update``: update inputs per draw, in distinct languages (1 is the paper's sampler;
        0 or more than there are languages: every update language of the case). ``difficulty``:
        how hard an edit (a case with its chosen targets) is for the unedited model (higher:
        harder), used when ``hard_targets`` > 1."""
        self.roles, self.n_retain, self.seed, self.n_update = roles, n_retain, seed, n_update
        self.hard_targets, self.difficulty = int(hard_targets), difficulty
        self.by_lang = {l: [c for c in cases if c.can_edit_in(l)] for l in roles.edit}
        empty = [l for l, cs in self.by_lang.items() if not cs]
        if empty:
            raise UserError(f"no edit cases in language(s) {', '.join(empty)}; choose other languages")
        self.pool = {l: pool.get(l, []) for l in roles.retain}
        if not any(self.pool.values()):
            raise UserError("the dataset has no locality inputs in the retain languages")

    def draw(self, step: int, micro: int = 0) -> Sample:
        rng = random.Random(f"{self.seed}:{step}:{micro}")
        lang_e = rng.choice(self.roles.edit)
        case = rng.choice(self.by_lang[lang_e])
        if case.alternatives and self.hard_targets > 1 and self.difficulty is not None:
            picks = rng.sample(range(len(case.alternatives) + 1), min(self.hard_targets, len(case.alternatives) + 1))
            options = [case.with_targets(case.alternatives[p - 1]) if p else case for p in picks]
            case = max(options, key=self.difficulty)  # the first of equally hard ones
        elif case.alternatives:
            pick = rng.randrange(len(case.alternatives) + 1)
            if pick:
                case = case.with_targets(case.alternatives[pick - 1])
        update_langs = [l for l in self.roles.update if l in case.inputs] or [lang_e]
        if self.n_update == 1:
            chosen = [rng.choice(update_langs)]  # the paper's draw (and the same random stream as before)
        elif 0 < self.n_update < len(update_langs):
            chosen = rng.sample(update_langs, self.n_update)
        else:
            chosen = list(update_langs)
        retain = [draw_unrelated(rng, self.pool, self.roles.retain, case.id) for _ in range(self.n_retain)]
        return Sample(case, case.inputs[lang_e], [case.inputs[l] for l in chosen], retain)


def draw_unrelated(rng: random.Random, pool: dict[str, list[Example]], langs, exclude_id,
                   attempts: int = 100) -> Example:
    """A locality input in a random language of ``langs`` that is not parallel to ``exclude_id`` (an
    item id, or a set of them), drawn by rejection in at most ``attempts`` tries."""
    excluded = {exclude_id} if isinstance(exclude_id, str) else set(exclude_id)
    langs = [l for l in langs if pool.get(l)]
    for _ in range(attempts):
        ex = rng.choice(pool[rng.choice(langs)])
        if ex.id not in excluded:
            return ex
    raise UserError("could not find a locality input unrelated to the edit; the locality pool is too small")
