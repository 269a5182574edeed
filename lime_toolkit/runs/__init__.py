"""The jobs a command runs: a run built from its configuration, training, evaluation, single and
sequential edits, grids, diagnosis and the benchmark. Each job here is called by the command of the
same name in :mod:`lime_toolkit.cli`."""
