"""``python -m lime_toolkit``: the same command line as ``lime-toolkit``."""
from lime_toolkit.cli.app import main

main()
