"""``lime-toolkit bench``: the speed of the toolkit as ratios, as a rich table and JSON."""
from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from lime_toolkit.cli.common import console


@click.command()
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the measurements as JSON here.")
@click.option("--quick", is_flag=True, help="Check the command in seconds: the tiny test model instead of the "
              "demo model, no mBERT-size model, no dataset preparation (the numbers mean nothing).")
@click.option("--no-mbert", "no_mbert", is_flag=True, help="Skip the mBERT-size model.")
@click.option("--no-prep", "no_prep", is_flag=True, help="Skip the dataset preparation timing.")
@click.option("--prep-dataset", help="The dataset whose preparation is timed (default: bench.yaml's).")
@click.option("--prep-data-dir", type=click.Path(file_okay=False), help="Its data (default: bench.yaml's); "
              "the part is skipped, saying why, when there is none.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Edits per batch in the batched evaluation (default: "
              "evaluate's).")
@click.option("--device", help="auto, cpu, cuda or cuda:N.")
def bench(json_path, quick, no_mbert, no_prep, prep_dataset, prep_data_dir, batch_size, device):
    """Measure speed as ratios in one process: forward, forward+backward, test-time edit,
    meta-training step, evaluation one edit at a time and batched, peak memory (demo and
    mBERT-size models), and a dataset's preparation (docs/performance.md)."""
    run_bench_command(json_path, quick, not no_mbert, not no_prep, prep_dataset, prep_data_dir, batch_size, device,
                      console())


MODELS = (("demo", "demo"), ("mbert_size", "mBERT-size"))


def _num(value, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "[red]no[/]"
    return f"{value:,.{digits}f}{unit}"


def bench_table(doc: dict) -> Table:
    """Rows: what was measured; columns: the models; ratios next to the times they come from."""
    models = [(key, label) for key, label in MODELS if doc.get(key)]
    table = Table(title=f"lime-toolkit bench on {doc['device']} ({doc['torch_threads']} threads)"
                        + (" [yellow]--quick: the tiny test model, not a measurement[/]" if doc.get("quick") else ""))
    table.add_column("what")
    for key, label in models:
        table.add_column(f"{label}\n({doc[key]['parameters'] / 1e6:,.1f} M parameters)", justify="right")

    def row(what: str, cell):
        table.add_row(what, *(cell(doc[key]) for key, _ in models))

    row("plain forward (edit input)", lambda m: _num(m["fwd_s"], " s", 3))
    row("plain forward + backward (edit input)", lambda m: _num(m["fwd_bwd_s"], " s", 3))
    row("test-time edit (default editor and masks)", lambda m: f"{_num(m['edit_s'], ' s', 3)}")
    row("  edit / forward", lambda m: _num(m["edit_over_fwd"], "x"))
    row("  edit / forward + backward", lambda m: _num(m["edit_over_fwd_bwd"], "x"))
    row("meta-training step (accumulate 4)", lambda m: _num(m["step_s"], " s", 3))
    row("  micro-step / fwd+bwd of its inputs", lambda m: _num(m["step_over_fwd_bwd"], "x")
        + (f" ({_num(m['step_over_fwd_bwd_block'], 'x')} block)" if "step_over_fwd_bwd_block" in m else ""))
    row("  edits in one pass (train.batched)", lambda m: (
        f"{_num(m['step_batched_s'], ' s', 3)}, {_num(m['step_batched_speedup'], 'x')} faster"
        if "step_batched_s" in m else "n/a"))
    table.add_section()
    row("evaluation, one edit at a time", lambda m: _num(m["eval_loop_edits_per_s"], " edits/s", 1))
    row("evaluation, batched", lambda m: _num(m["eval_edits_per_s"], " edits/s", 1)
        + f" (batches of {m['eval_batch_size']})")
    row("  batched / one at a time", lambda m: _num(m["eval_batched_speedup"], "x"))
    row("  same records as one at a time", lambda m: _num(m["eval_identical"]))
    table.add_section()
    row("peak memory", lambda m: _num(m["peak_memory_mb"], " MB", 0))
    return table


def prep_line(doc: dict) -> str:
    """The dataset preparation's line (``<dataset>_prep``)."""
    name = doc.get("prep_dataset", "dataset")
    key = f"{name}_prep"
    prep = doc.get(key)
    if prep is None:
        return f"{name} preparation: skipped ({doc['skipped'].get(key, 'not asked for')})"
    split = prep.get("split", "test")
    return (f"{name} preparation of {prep['languages']} languages ({split} split, {prep[f'{split}_edits']:,} edits): "
            f"{prep['cold_s']:.1f} s cold, {prep['cached_s']:.1f} s cached")


def run_bench_command(json_path, quick: bool, mbert: bool, prep: bool, prep_dataset, prep_data_dir, batch_size,
                      device_spec, err: Console) -> dict:
    """``lime-toolkit bench``: measure, print the table, write ``--json``."""
    from lime_toolkit.runs.rundir import check_output_file

    check_output_file(json_path, "--json")
    from lime_toolkit.devices import resolve_device
    from lime_toolkit.runs.bench import run_bench

    device = resolve_device(device_spec or "auto")
    doc = run_bench(device, quick=quick, mbert=mbert, prep=prep, prep_dataset=prep_dataset,
                    prep_data_dir=Path(prep_data_dir) if prep_data_dir else None, batch_size=batch_size,
                    log=lambda text: err.print(f"[dim]{text}[/]"))
    out = Console()
    out.print(bench_table(doc))
    out.print(prep_line(doc))
    out.print(f"bench took {doc['wall_s']:.0f} s")
    if json_path:
        from lime_toolkit.files import write_json_atomic

        write_json_atomic(Path(json_path), doc)
        out.print(f"written: {json_path}")
    return doc
