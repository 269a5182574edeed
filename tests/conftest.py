"""Imports the heavy libraries the tiny test models need when the tests are collected, not inside
the first test that builds one: mutation testing (docs/testing.md) forks every mutant's run from a
process that has collected the tests, so each mutant then starts with them loaded (seconds saved
per mutant)."""
from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast  # noqa: F401
