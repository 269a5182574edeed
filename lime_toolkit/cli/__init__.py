"""The ``lime-toolkit`` command line: one module per command (:mod:`lime_toolkit.cli.app` gathers
them), the shared options and checks in :mod:`lime_toolkit.cli.common`."""
