"""Checks made before a model is loaded: a run directory that is none, or a language the dataset
does not have, is one line in well under a second, without importing torch or transformers.

Each check reads only the configuration and opens the dataset (as ``data describe`` does); the
command then loads its run as before and meets the same values again."""
from __future__ import annotations

from lime_toolkit.errors import UserError
from lime_toolkit.sampler import LanguageRoles


def command_config(run_dir, config_path, flags: dict) -> dict:
    """The configuration a command will run with: the run directory's (``RUN_DIR/config.yaml``),
    else the defaults, ``--config`` and the flags."""
    if run_dir is not None:
        from lime_toolkit.runs.rundir import read_run_config

        return read_run_config(run_dir)
    from lime_toolkit.cli.common import RUN_FLAGS, resolve_config

    return resolve_config(config_path, **{k: v for k, v in flags.items() if k in RUN_FLAGS + ("device", "out")})


def dataset_languages(config: dict) -> list[str]:
    """The languages of the configuration's dataset (``--langs`` applied)."""
    from lime_toolkit.runs.build import open_dataset

    return list(open_dataset(config).languages)


def check_language_specs(config: dict, specs: dict) -> None:
    """Each of ``specs`` ('en', 'all' or a comma list; None: not given) names only languages of
    the dataset."""
    given = {k: v for k, v in specs.items() if v is not None}
    if not given:
        return
    languages = dataset_languages(config)
    for spec in given.values():
        LanguageRoles.parse(spec, languages)


def check_edit_language(config: dict, lang: str) -> None:
    """``edit --lang``: a language of the dataset."""
    languages = dataset_languages(config)
    if lang not in languages:
        raise UserError(f"unknown language '{lang}'; this dataset has: {', '.join(languages)}")
