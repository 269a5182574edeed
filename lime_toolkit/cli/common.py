"""Pieces every command shares: the one-line error handling, the options that build a run, the
configuration from flags, loading a run for a command."""
from __future__ import annotations

import functools
import re
from pathlib import Path

import click
from rich.console import Console

from lime_toolkit.errors import UserError


def one_line(text) -> str:
    return " ".join(str(text).split())


class OneLineError(click.ClickException):
    """Printed as a single ``Error: ...`` line on stderr; exit status 2 (bad input)."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"Error: {one_line(self.format_message())}", file=file, err=file is None)


def _usage_error(exc: click.UsageError) -> OneLineError:
    hint = f" (see '{exc.ctx.command_path} -h')" if exc.ctx is not None else ""
    return OneLineError(one_line(exc.format_message()) + hint)


def _os_error(exc: OSError) -> OneLineError:
    from pathlib import Path

    from lime_toolkit.cache import cache_root

    what = exc.strerror or type(exc).__name__
    try:
        in_cache = Path(str(exc.filename)).resolve().is_relative_to(cache_root().resolve())
    except (OSError, ValueError):
        in_cache = False
    fix = ("set LIME_TOOLKIT_CACHE to a writable directory" if in_cache else
           "check the path and its permissions, or choose another location")
    return OneLineError(f"cannot use '{exc.filename}': {what}; {fix}")


class Group(click.Group):
    """Turns :class:`UserError`, click's usage errors and file-system errors into one clear line and
    exit status 2, never a traceback."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _usage_error(exc) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            raise OneLineError(str(exc)) from None
        except click.UsageError as exc:
            raise _usage_error(exc) from None
        except OSError as exc:
            if exc.filename is None:
                raise
            raise _os_error(exc) from None


def console(quiet: bool = False):
    from rich.console import Console

    return Console(stderr=True, quiet=quiet)


def warn_broken_plugins(out) -> None:
    from lime_toolkit.plugin_manager import get_plugin_manager

    for info in get_plugin_manager().plugins():
        if info.status in ("error", "incompatible"):
            out.print(f"[yellow]warning:[/] plugin '{info.name}' not loaded: {info.error}")


@functools.cache
def _defaults() -> dict:
    from lime_toolkit.config import defaults

    return defaults()


def configured(key: str) -> str:
    """The default of a dotted config key, as ``defaults.yaml`` holds it, for help texts (so that
    they never repeat a default that may change)."""
    value = _defaults()
    for part in key.split("."):
        value = value[part]
    return "null" if value is None else str(value)


def run_options(fn):
    """Options shared by the commands that build a run from a configuration."""
    options = [
        click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML file with any config keys."),
        click.option("--editor", help=f"Editor plugin name (default {configured('editor')})."),
        click.option("--masks", help=f"Mask strategy name (default {configured('masks')}; 'none' for no masks)."),
        click.option("--dataset", help=f"Dataset plugin name (default {configured('dataset')})."),
        click.option("--data-dir", type=click.Path(file_okay=False), help="Directory the dataset reads."),
        click.option("--model", help="Base model: a directory or hub id (default: the dataset's)."),
        click.option("--langs", "languages", help="Comma list: restrict the dataset to these languages."),
        click.option("--limit", type=int, help="At most this many edit cases per split."),
        click.option("--seed", type=int, help=f"Random seed (default {configured('seed')})."),
        click.option("--device", help="auto, cpu, cuda or cuda:N."),
        click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
                     help="Set any config key, e.g. --set train.max_steps=500 (repeatable; YAML values)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def resolve_config(config_path, **flags) -> dict:
    from lime_toolkit.config import load_config

    keys = {"editor": "editor", "masks": "masks", "dataset": "dataset", "data_dir": "data_dir", "model": "model",
            "languages": "languages", "limit": "limit", "seed": "seed", "device": "device", "out": "out",
            "max_steps": "train.max_steps", "train_langs": "train.langs"}
    overrides = {keys[k]: v for k, v in flags.items() if k in keys and v is not None}  # unset flags: no say
    if overrides.get("languages"):
        overrides["languages"] = [l.strip() for l in overrides["languages"].split(",") if l.strip()]
    return load_config(config_path, {**parse_settings(flags.get("settings") or ()), **overrides})


def parse_settings(items) -> dict:
    """``("train.max_steps=500", "edit.layers=[1, 2]")`` -> ``{"train.max_steps": 500, ...}``; values
    are read as YAML (numbers, lists, mappings); ``null`` becomes :data:`lime_toolkit.config_schema.NULL`
    (the key is reset: null where allowed, the component's default inside option sections)."""
    import yaml

    from lime_toolkit.config_schema import NULL

    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set expects KEY=VALUE (got '{item}'), e.g. --set train.max_steps=500")
        if not raw.strip():
            raise UserError(f"--set {key.strip()}= has no value; give one, or null to reset the key")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise UserError(f"--set {key.strip()}: '{raw}' is not a valid value (YAML syntax)") from None
        if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
        out[key.strip()] = NULL if value is None else value
    return out


def run_dir_arg(fn):
    return click.argument("run_dir", required=False, type=click.Path(exists=True, file_okay=False))(fn)


RUN_FLAGS = ("editor", "masks", "dataset", "data_dir", "model", "languages", "limit", "seed")


def percent(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}"


def refuse_run_flags(config_path, flags: dict) -> None:
    """With a RUN_DIR, the flags that would configure a new run are an error."""
    extra = [k for k in RUN_FLAGS if flags.get(k) is not None] + (["--config"] if config_path else [])
    if extra:
        raise UserError(f"a run directory brings its own configuration; drop "
                        f"{', '.join('--' + k.replace('_', '-') for k in extra)} or leave out RUN_DIR")


def load_run(run_dir, config_path, flags: dict, checkpoint: str = "best", seed: int | None = None):
    """A run from its directory (with ``checkpoint`` loaded), or, without one, a run built from the
    flags (an untrained editor such as ft) whose directory is ``--out``."""
    from lime_toolkit.runs.build import build_run

    if run_dir is not None:
        refuse_run_flags(config_path, flags)
        from lime_toolkit.checkpoint import load_checkpoint
        from lime_toolkit.runs.build import open_run

        overrides = {"device": flags["device"]} if flags.get("device") else None
        run = open_run(run_dir, overrides, "init" if checkpoint == "init" else "best")
        if checkpoint == "last" and run.system.editor.trainable:
            last = Path(run_dir) / "checkpoints" / "last"
            if not last.exists():
                raise UserError(f"'{run_dir}' has no last checkpoint")
            load_checkpoint(last, run.system)
        return run
    flags = {**flags, "seed": seed if seed is not None else flags.get("seed")}
    config = resolve_config(config_path, **{k: v for k, v in flags.items() if k in RUN_FLAGS + ("device", "out")})
    run = build_run(config)
    if run.system.editor.trainable:
        Console(stderr=True).print(f"[yellow]note:[/] editor '{config['editor']}' is trainable but no run directory "
                                   f"was given: evaluating it untrained")
    return run
