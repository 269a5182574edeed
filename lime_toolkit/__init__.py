"""lime-toolkit: cross-lingual model editing and language anisotropic editing (LiME).

The core knows the task, the training formula, the cross-lingual sampler, the gradient-factor
machinery and the metrics; editors, datasets and mask strategies arrive as plugins.
"""
from lime_toolkit.hookspecs import hookimpl

__all__ = ["hookimpl", "__version__"]
__version__ = "0.1.0"
