"""Loading base models the standard way, and reading their predictions under edited parameters."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call

from lime_toolkit.architectures import mlm_head
from lime_toolkit.data import CLASSIFICATION, MASKED_LM
from lime_toolkit.encoding import Batch
from lime_toolkit.errors import UserError
from lime_toolkit.hub import hub_offline, hub_reachable

Params = dict[str, torch.Tensor]


def _looks_like_path(name: str) -> bool:
    # hub ids are "name" or "owner/name"; anything else is meant as a directory
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or Path(name).exists()


def load_model(name: str, task: str, num_labels: int | None = None, attn_implementation: str | None = None):
    """Load ``(model, tokenizer)`` from a local directory or a hub id, in evaluation mode.

    Fails fast with one clear sentence when the directory does not exist or a hub id is neither
    cached nor downloadable.
    """
    from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars would land between the toolkit's own lines

    auto = {MASKED_LM: AutoModelForMaskedLM, CLASSIFICATION: AutoModelForSequenceClassification}.get(task)
    if auto is None:
        raise UserError(f"unknown task {task!r}")
    kwargs = {}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if task == CLASSIFICATION and num_labels:
        kwargs["num_labels"] = num_labels

    path = Path(name).expanduser()
    if path.is_dir() or _looks_like_path(name):
        if path.exists() and not path.is_dir():
            raise UserError(f"model '{name}' is a file; pass --model with a directory made by save_pretrained "
                            f"or a Hugging Face model id")
        if not path.is_dir():
            raise UserError(f"model directory '{name}' does not exist; pass --model with a directory made by "
                            f"save_pretrained or a Hugging Face model id")
        if not (path / "config.json").is_file():
            raise UserError(f"model directory '{name}' holds no loadable model (no config.json); pass --model with "
                            f"a directory made by save_pretrained")
        try:
            return _load(auto, AutoTokenizer, str(path), kwargs, local_only=True, label=name)
        except (OSError, UnicodeDecodeError) as exc:
            why = " ".join(str(exc).split())[:160]
            raise UserError(f"model directory '{name}' holds no loadable model ({why}); pass --model with a "
                            f"directory made by save_pretrained") from None
    try:
        return _load(auto, AutoTokenizer, name, kwargs, local_only=True, label=name)
    except OSError:
        pass
    if hub_offline() or not hub_reachable():
        why = "HF_HUB_OFFLINE is set" if hub_offline() else "the Hugging Face hub cannot be reached"
        raise UserError(f"model '{name}' is not in the local Hugging Face cache and {why}: download it where "
                        f"there is internet (`hf download {name}`) or pass --model with a local directory")
    try:
        return _load(auto, AutoTokenizer, name, kwargs, local_only=False, label=name)
    except OSError as exc:
        raise UserError(f"could not download model '{name}' from the Hugging Face hub ({exc}); check the id "
                        f"or pass --model with a local directory") from None


def _load(auto, auto_tokenizer, name, kwargs, local_only: bool, label: str):
    try:
        model = auto.from_pretrained(name, local_files_only=local_only, **kwargs)
        tokenizer = auto_tokenizer.from_pretrained(name, local_files_only=local_only)
    except ValueError as exc:  # e.g. a masked-LM checkpoint asked for as a classifier
        raise UserError(f"model '{label}' cannot be loaded for this task: {exc}") from None
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, tokenizer


def position_logits(model: nn.Module, batch: Batch, params: Params | None = None) -> torch.Tensor:
    """Logits at the batch's prediction positions under ``params`` (edited name -> tensor; None:
    the model's own). Masked LMs project only the answer positions through the output head."""
    params = params or {}
    if batch.task == MASKED_LM:
        head = mlm_head(model)
        prefix = model.base_model_prefix + "."
        if head is not None and all(n.startswith(prefix) for n in params):
            base = {n[len(prefix):]: t for n, t in params.items()}
            hidden = functional_call(model.base_model, base, args=(), kwargs=batch.inputs).last_hidden_state
            return head(hidden[batch.rows, batch.cols])
        logits = functional_call(model, params, args=(), kwargs=batch.inputs).logits
        return logits[batch.rows, batch.cols]
    if batch.task == CLASSIFICATION:
        return functional_call(model, params, args=(), kwargs=batch.inputs).logits[batch.rows]
    raise UserError(f"unknown task {batch.task!r}")


def decode_predictions(tokenizer, batch: Batch, predicted: torch.Tensor) -> list:
    """One prediction per example: the predicted word pieces joined (masked LM) or the class index."""
    if batch.task == CLASSIFICATION:
        return predicted.tolist()
    out = []
    for i in range(len(batch.examples)):
        ids = predicted[batch.rows == i].tolist()
        out.append(tokenizer.decode(ids).strip())
    return out
