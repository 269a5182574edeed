"""A toolbox for dataset plugins: the pieces every built-in dataset uses to build its base model.

Each module states its contract in its docstring; docs/plugins.md ("A toolbox for dataset
plugins") shows them together with an example.

- :mod:`.settings`: a dataset's settings dataclass from ``DatasetOptions.extra`` (one coercion of
  option values, errors naming the option and the expected type). No torch.
- :mod:`.wordpiece`: a WordPiece tokenizer from sentences, with BERT's special tokens.
- :mod:`.masked_lm`: a small BERT from settings, masked-LM training rows, padding, random
  masking, the learning-rate schedule and one optimiser step.
- :mod:`.scoring`: recall per language of masked-slot facts, accuracy per language of a
  classifier.
- :mod:`.prepared`: where a prepared base model is, whether it is complete, and saving it
  atomically.
- :mod:`.names`: parameter names as ``nn.ModuleDict`` keys (for editors and mask strategies).

Nothing is imported here, so ``import lime_toolkit.toolbox.settings`` stays free of torch; import
the module you need.
"""
