"""The grid runner's expansion of the paper's tables."""

import pytest

from lime_toolkit.config import load_config
from lime_toolkit.errors import UserError
from lime_toolkit.runs.grid import expand, grid_spec


def test_table2_expands_to_the_papers_rows_with_finetuning_once_per_seed(tmp_path):
    runs = expand(grid_spec(2, None), load_config(), [0, 1], tmp_path, full_edit_editors={"ft"})
    rows = sorted({(r.editor, r.train_langs, r.masks) for r in runs})
    assert rows == [("et", "all", "l0"), ("et", "all", "none"), ("ft", "n/a", "none"), ("ke", "all", "l0"),
                    ("ke", "all", "none"), ("mend", "all", "l0"), ("mend", "all", "none")]
    assert len(runs) == 14 and len({r.out for r in runs}) == 14
    assert all(r.out.parent == tmp_path for r in runs)
    assert all(r.config["eval"]["edit_langs"] == "all" and r.config["seed"] == r.seed for r in runs)


def test_table1_is_en_to_all_for_en_only_and_all_language_training(tmp_path):
    runs = expand(grid_spec(1, None), load_config(), [0], tmp_path, full_edit_editors={"ft"})
    assert {r.train_langs for r in runs if r.editor == "mend"} == {"en", "all"}
    assert all(r.config["eval"]["edit_langs"] == "en" for r in runs)


def test_grid_needs_exactly_one_source_and_a_known_table(tmp_path):
    with pytest.raises(UserError):
        grid_spec(None, None)
    with pytest.raises(UserError, match="unknown table 3"):
        grid_spec(3, None)
    bad = tmp_path / "g.yaml"
    bad.write_text("editors: [mend]\nlangs: [en]\n")
    with pytest.raises(UserError, match="unknown key .langs.; did you mean .train_langs."):
        grid_spec(None, str(bad))
