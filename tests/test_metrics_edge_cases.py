"""acc / con / succ where the simple cases do not reach: edit languages with no checks of one kind,
edits without update or retain checks inside a bootstrap resample, and the bootstrap interval's
width against the normal approximation."""
from __future__ import annotations

import math

import pytest

from lime_toolkit.metrics import EditRecord, bootstrap_intervals, summarise


def test_languages_without_edits_or_without_checks_of_a_kind_are_left_out_wherever_they_stand():
    records = [
        EditRecord("de", [("de", True)], []),  # de: update checks but no retain check
        EditRecord("fr", [], [("fr", True)]),  # fr: retain checks but no update check
        EditRecord("en", [("en", True), ("de", False)], [("en", True)]),
    ]
    m = summarise(records, ["zh", "de", "fr", "en"], ["en", "de", "fr"], intervals=False)
    assert list(m["per_language"]) == ["en"]  # languages before it that are left out do not stop it
    assert m["languages_without_edits"] == ["zh", "de", "fr"]
    assert (m["acc"], m["con"]) == (0.5, 1.0)
    assert m["edits"] == 3 and m["succ_per_edit"] == pytest.approx(2 * 0.5 / 1.5)  # only complete edits


def test_no_complete_language_gives_zeros_not_an_error():
    m = summarise([EditRecord("en", [], [("en", True)]), EditRecord("de", [("en", True)], [])], ["en", "de"], ["en"],
                  intervals=False)
    assert (m["acc"], m["con"], m["succ"], m["succ_per_edit"]) == (0.0, 0.0, 0.0, 0.0)
    assert m["per_language"] == {} and m["languages_without_edits"] == ["en", "de"]


def test_per_edit_succ_of_an_edit_that_missed_every_update_is_0():
    m = summarise([EditRecord("en", [("en", False), ("de", False)], [("en", True)]),
                   EditRecord("en", [("en", True)], [("de", False)])], ["en"], ["en", "de"], intervals=False)
    assert m["succ_per_edit"] == 0.0
    assert (m["acc"], m["con"]) == (1 / 3, 1 / 2) and m["succ"] == pytest.approx(0.4)


def test_resamples_of_edits_without_update_or_retain_checks_do_not_fail():
    # en: one edit with update checks only, one with retain checks only: some resamples hold no
    # check of one kind at all
    records = [EditRecord("en", [("en", True)], []), EditRecord("en", [], [("en", True)])]
    macro, per_lang = bootstrap_intervals(records, ["en"], samples=200)
    assert per_lang["en"]["acc"][1] == 1.0 and per_lang["en"]["con"][1] == 1.0
    # a resample without checks of a kind counts as rate 0 for it (pessimistic: it never narrows an
    # interval towards 1); a quarter of the resamples are such, so the lower bounds are 0
    assert per_lang["en"]["acc"][0] == 0.0 and per_lang["en"]["con"][0] == 0.0
    assert macro["acc"] == per_lang["en"]["acc"]


def test_intervals_are_seeded_with_seed_0_by_default():
    records = [EditRecord("en", [("en", i % 2 == 0)], [("en", i % 3 != 0)]) for i in range(40)]
    default = bootstrap_intervals(records, ["en"])
    assert default == bootstrap_intervals(records, ["en"], seed=0)
    assert default != bootstrap_intervals(records, ["en"], seed=1)


@pytest.mark.parametrize("level, z", [(0.95, 1.96), (0.8, 1.2816), (0.5, 0.6745)])
def test_interval_width_matches_the_normal_approximation(level, z):
    """400 edits with one update check each, half of them right: acc = 0.5 with standard error
    0.025; each side of the percentile interval is z·0.025 within the bootstrap's own noise."""
    records = [EditRecord("en", [("en", i % 2 == 0)], [("en", True)]) for i in range(400)]
    macro, _ = bootstrap_intervals(records, ["en"], level=level)
    half = z * math.sqrt(0.25 / 400)
    lo, hi = macro["acc"]
    assert 0.8 * half <= 0.5 - lo <= 1.2 * half, (lo, half)
    assert 0.8 * half <= hi - 0.5 <= 1.2 * half, (hi, half)
