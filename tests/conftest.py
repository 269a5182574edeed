"""Test-session set-up.

* Third-party plugins stay out of the suite: the entry points of distributions other than
  lime-toolkit are blocked (added to ``LIME_TOOLKIT_BLOCK_PLUGINS``), so a broken
  or unusual plugin on a user's machine cannot fail our tests. Tests that install a plugin
  register it themselves (``plugin_registered``) or set the variable for their subprocess.
* The heavy libraries the tiny test models need are imported when the tests are collected, not
  inside the first test that builds one: mutation testing (docs/testing.md) forks every mutant's
  run from a process that has collected the tests, so each mutant then starts with them loaded
  (seconds saved per mutant).
"""
import os
import re
from importlib import metadata

from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast  # noqa: F401

from lime_toolkit.plugin_manager import BLOCK_ENV, ENTRY_POINT_GROUP


def third_party_plugins() -> list[str]:
    """Names of the installed plugins that another distribution than lime-toolkit provides."""
    def own(ep) -> bool:
        dist = getattr(ep, "dist", None)
        return dist is not None and re.sub(r"[-_.]+", "-", dist.name).lower() == "lime-toolkit"

    return sorted(ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if not own(ep))


if third_party_plugins():
    given = [p.strip() for p in os.environ.get(BLOCK_ENV, "").split(",") if p.strip()]
    os.environ[BLOCK_ENV] = ",".join(dict.fromkeys(given + third_party_plugins()))
