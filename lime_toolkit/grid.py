"""The paper's experiment grids: editors × training languages × masks × seeds, run and collected.

Table 1 of the paper edits in English and checks every language (en -> all) for editors trained on
English only or on all languages; Table 2 edits and checks every language (all -> all) for editors
with and without LiME masks. A grid file can list any other combination.
"""
from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from pathlib import Path

import yaml

from .config import load_config, yaml_error_line
from .errors import UserError



def paper_tables() -> dict[int, dict]:
    """The grids of the paper's Tables 1 and 2 (``lime_toolkit/paper_grids.yaml``)."""
    from importlib import resources

    return yaml.safe_load(resources.files("lime_toolkit").joinpath("paper_grids.yaml").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class GridRun:
    editor: str
    train_langs: str
    masks: str
    seed: int
    config: dict
    out: Path


def grid_spec(table: int | None, path: str | None) -> dict:
    """The grid of ``--table N`` or of a YAML grid file (keys: editors, train_langs, masks, seeds,
    eval, base)."""
    if (table is None) == (path is None):
        raise UserError("give exactly one of --table 1|2 or --grid FILE")
    if table is not None:
        tables = paper_tables()
        if table not in tables:
            raise UserError(f"unknown table {table}; the paper has tables {' and '.join(map(str, tables))}")
        return tables[table]
    file = Path(path)
    if not file.is_file():
        raise UserError(f"grid file '{file}' does not exist")
    try:
        spec = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"grid file '{file}' is not valid YAML: {yaml_error_line(exc)}") from None
    if not isinstance(spec, dict):
        raise UserError(f"grid file '{file}' must hold a mapping (keys editors, train_langs, masks, seeds, eval, base)")
    unknown = set(spec) - {"editors", "train_langs", "masks", "seeds", "eval", "base"}
    if unknown:
        raise UserError(f"unknown grid keys {sorted(unknown)}; use editors, train_langs, masks, seeds, eval, base")
    return spec


def expand(spec: dict, base_config: dict, seeds: list[int], out_dir: Path, full_edit_editors: set[str]) -> list[GridRun]:
    """Every run of the grid in a defined order. Editors with nothing to train (finetuning) run once
    per seed, with no masks and no training languages."""
    runs, seen = [], set()
    seeds = spec.get("seeds", seeds)
    for editor, langs, masks, seed in itertools.product(spec["editors"], spec["train_langs"], spec["masks"], seeds):
        if editor in full_edit_editors:
            langs, masks = "n/a", "none"
        key = (editor, langs, masks, seed)
        if key in seen:
            continue
        seen.add(key)
        config = copy.deepcopy(base_config)
        config.update(editor=editor, masks=masks, seed=int(seed))
        config["train"]["langs"] = "all" if langs == "n/a" else langs
        config["eval"].update(spec.get("eval", {}))
        label = langs.replace(",", "+").replace("/", "")
        out = out_dir / f"{config['dataset']}-{editor}-{masks}-{label}-s{seed}"
        config["out"] = str(out)
        runs.append(GridRun(editor, langs, masks, int(seed), config, out))
    return runs


def base_config(config_path: str | None, spec: dict, overrides: dict) -> dict:
    config = load_config(config_path, overrides)
    if spec.get("base"):
        from .config import merge

        config = merge(config, spec["base"])
    return config
