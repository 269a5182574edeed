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

from lime_toolkit.config import load_config
from lime_toolkit.errors import UserError


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
    if not file.exists():
        raise UserError(f"grid file '{file}' does not exist; pass --grid with a YAML grid file")
    from lime_toolkit.config import read_yaml_mapping

    spec = read_yaml_mapping(file, "grid file", "fix it (keys: editors, train_langs, masks, seeds, eval, base)")
    return check_grid(spec, f"grid file '{file}'")


GRID_KEYS = ("editors", "train_langs", "masks", "seeds", "eval", "base")


def check_grid(spec: dict, where: str) -> dict:
    """A grid's shape: ``editors``, ``train_langs`` and ``masks`` lists of names, ``seeds`` a list of
    integers >= 0, ``eval`` and ``base`` mappings of config keys. One line per problem."""
    from lime_toolkit.config import merge, suggest, validate
    from lime_toolkit.config_schema import SCHEMA, show

    unknown = [k for k in spec if k not in GRID_KEYS]
    if unknown:
        hint = suggest(str(unknown[0]), list(GRID_KEYS)) or f"; valid keys: {', '.join(GRID_KEYS)}"
        raise UserError(f"{where}: unknown key '{unknown[0]}'{hint}")
    out = dict(spec)
    for key in ("editors", "train_langs", "masks"):
        if key not in spec:
            raise UserError(f"{where}: '{key}' is missing; expected a list such as {_EXAMPLE[key]}")
        value = spec[key]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
            raise UserError(f"{where}: {key}: {show(spec[key])} is not allowed; expected a list of names such as "
                            f"{_EXAMPLE[key]}")
        out[key] = value
    if "seeds" in spec:
        seeds = spec["seeds"]
        if (not isinstance(seeds, list) or not seeds
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in seeds)):
            raise UserError(f"{where}: seeds: {show(seeds)} is not allowed; expected a list of integers >= 0")
    if "eval" in spec:
        if not isinstance(spec["eval"], dict):
            raise UserError(f"{where}: eval: {show(spec['eval'])} is not allowed; expected a mapping of eval keys")
        try:
            merged = merge(defaults_eval(), spec["eval"], "eval.")
            validate(merged, SCHEMA["eval"], "eval.")
        except UserError as exc:
            raise UserError(f"{where}: {exc}") from None
    if "base" in spec and not isinstance(spec["base"], dict):
        raise UserError(f"{where}: base: {show(spec['base'])} is not allowed; expected a mapping of config keys")
    return out


_EXAMPLE = {"editors": "[mend, ft]", "train_langs": "[en, all]", "masks": "[none, l0]"}


def defaults_eval() -> dict:
    from lime_toolkit.config import defaults

    return defaults()["eval"]


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
    from lime_toolkit.config import merge, validate

    config = load_config(config_path, overrides)
    if spec.get("base"):
        try:
            config = validate(merge(config, spec["base"]))
        except UserError as exc:
            raise UserError(f"grid base: {exc}") from None
    return config


def check_runs(runs: list[GridRun]) -> None:
    """Validate every run's configuration before the first one starts."""
    from lime_toolkit.config import validate

    for r in runs:
        try:
            validate(r.config)
        except UserError as exc:
            raise UserError(f"grid run {r.out.name}: {exc}") from None
