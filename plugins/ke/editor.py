"""KnowledgeEditor (KE, De Cao et al. 2021), method-notes §5.

A conditioner reads the edit input: its tokens are embedded (an embedding initialised from the
base model's input embeddings, trained further), a BiLSTM runs over them, and its final states of
both directions go through Linear(2·hidden, emb) + tanh to a condition vector c. Per edited weight
W (out x in) a weight-normed MLP maps c to 2(out + in) + 1 values, split into
(col_a [out], row_a [in], col_b [out], row_b [in], η), and

    a = col_a ⊗ softmax(row_a),   b = col_b ⊗ softmax(row_b)   ([out, in], rank one each)
    ΔW = σ(η) · (∇W ⊙ a + b),     ∇W = Σ_t δ_t x_tᵀ from the factors the core captured.

Sign: the core forms W' = W − step_size·ΔW; this editor returns ΔW exactly as above and a step
size of ``max_scale`` (option; 1 by default, as KE's own ``max_scale``), so
W' = W − σ(η)(∇W ⊙ a + b). Where a > 0 this is a gradient-descent step on the edit loss (KE adds
its Δ to the weights instead; a, b and η are learned, so either convention reaches the same
updates, the minus sign only makes a > 0 mean "descend").

With masks (the LiME variant of KE): the core applies the edit language's masks to x and δ before
:meth:`delta_weight`, so ∇W is rebuilt from masked factors, which scales its rows (δ side) and
columns (x side) by the language's masks; the conditioner itself is not masked.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm
from torch.nn.utils.rnn import pack_padded_sequence

from lime_toolkit.config_schema import Int, Positive
from lime_toolkit.editor_api import EditContext, EditorSetup, FactorEditor
from lime_toolkit.errors import UserError
from lime_toolkit.toolbox.names import safe_key


class Conditioner(nn.Module):
    """Edit input ids -> condition vector c ([emb]): embedding, BiLSTM, Linear + tanh."""

    def __init__(self, embeddings: torch.Tensor, hidden: int, padding_idx: int | None = None):
        super().__init__()
        vocab, dim = embeddings.shape
        self.embedding = nn.Embedding(vocab, dim, padding_idx=padding_idx)
        with torch.no_grad():
            self.embedding.weight.copy_(embeddings)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)
        self.project = nn.Linear(2 * hidden, dim)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``input_ids`` [batch, tokens] -> c [emb], averaged over the batch's examples (one edit
        may hold several inputs; the edit is one update)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        lengths = attention_mask.sum(dim=1).clamp(min=1).cpu()
        packed = pack_padded_sequence(self.embedding(input_ids), lengths, batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)  # h_n: [2 directions, batch, hidden], final states
        final = torch.cat([h_n[0], h_n[1]], dim=-1)
        return torch.tanh(self.project(final)).mean(dim=0)


class WeightHead(nn.Module):
    """The weight-normed MLP of one edited weight: c -> hidden -> tanh -> 2(out + in) + 1."""

    def __init__(self, condition_dim: int, hidden: int, out_features: int, in_features: int):
        super().__init__()
        self.out_features, self.in_features = out_features, in_features
        self.hidden = weight_norm(nn.Linear(condition_dim, hidden))
        self.output = weight_norm(nn.Linear(hidden, 2 * (out_features + in_features) + 1))

    def forward(self, c: torch.Tensor):
        """(a [out, in], b [out, in], η []) for condition ``c``."""
        o, i = self.out_features, self.in_features
        values = self.output(torch.tanh(self.hidden(c)))
        col_a, row_a, col_b, row_b, eta = torch.split(values, [o, i, o, i, 1])
        a = col_a[:, None] * F.softmax(row_a, dim=0)[None, :]
        b = col_b[:, None] * F.softmax(row_b, dim=0)[None, :]
        return a, b, eta[0]


class KnowledgeEditor(FactorEditor):
    """KnowledgeEditor.

    Options (defaults follow the paper for mBERT and shrink with small models):
    ``hidden`` (BiLSTM hidden size per direction, min(512, embedding dim)), ``mlp_hidden``
    (hidden width of each weight's MLP, min(512, embedding dim)), ``max_scale`` (1.0: a constant
    factor on ΔW, KE's own ``max_scale``; the returned step size). The embedding dimension and
    vocabulary come from the base model's input embeddings. All parameters train at the editor
    lr (the config's ``train.lr`` or :attr:`default_lr` = 5e-5, the reference code's).

    The condition c is computed once per edit (per :class:`EditContext`) and reused for every
    edited weight.
    """

    default_lr = 5e-5
    #: Checked when the run is built (lime_toolkit.config.check_options).
    option_specs = {"hidden": Int(1), "mlp_hidden": Int(1), "max_scale": Positive(), "lr": Positive()}

    def __init__(self, setup: EditorSetup):
        super().__init__(setup)
        get_embeddings = getattr(setup.model, "get_input_embeddings", None)
        embeddings = get_embeddings() if callable(get_embeddings) else None
        if embeddings is None or not hasattr(embeddings, "weight"):
            raise UserError("ke: the base model exposes no input embeddings (get_input_embeddings); "
                            "KnowledgeEditor needs them to initialise its conditioner")
        table = embeddings.weight.detach()
        dim = int(table.shape[1])
        self.hidden = int(setup.option("hidden", min(512, dim)))
        self.mlp_hidden = int(setup.option("mlp_hidden", min(512, dim)))
        self.max_scale = float(setup.option("max_scale", 1.0))
        if self.hidden < 1 or self.mlp_hidden < 1:
            raise UserError(f"ke: hidden and mlp_hidden must be positive (got {self.hidden}, {self.mlp_hidden})")
        self.shapes = {name: (int(o), int(i)) for name, (o, i) in setup.shapes.items()}
        self._keys = {name: safe_key(name) for name in self.shapes}
        if len(set(self._keys.values())) != len(self._keys):
            raise UserError(f"ke: edited weight names collide once '.' is replaced: {sorted(self.shapes)}")
        self.conditioner = Conditioner(table, self.hidden, getattr(embeddings, "padding_idx", None))
        self.heads = nn.ModuleDict({self._keys[n]: WeightHead(dim, self.mlp_hidden, o, i)
                                    for n, (o, i) in self.shapes.items()})
        self._cached: tuple[EditContext, torch.Tensor] | None = None

    def condition(self, ctx: EditContext) -> torch.Tensor:
        """The condition vector c of the edit ``ctx`` (computed once per context)."""
        if self._cached is not None and self._cached[0] is ctx:
            return self._cached[1]
        inputs = ctx.batch.inputs
        c = self.conditioner(inputs["input_ids"], inputs.get("attention_mask"))
        self._cached = (ctx, c)
        return c

    def head(self, name: str) -> WeightHead:
        try:
            return self.heads[self._keys[name]]
        except KeyError:
            raise KeyError(f"ke has no parameters for weight '{name}'; it was built for: "
                           f"{', '.join(self.shapes)}") from None

    def transform(self, name, x, delta, ctx):  # not used: delta_weight is overridden
        raise NotImplementedError("KnowledgeEditor builds ΔW in delta_weight, not from transformed factors")

    def delta_weight(self, name: str, x: torch.Tensor, delta: torch.Tensor, ctx: EditContext) -> torch.Tensor:
        """ΔW = σ(η)·(∇W ⊙ a + b) with ∇W = δᵀx from the (masked) factors."""
        head = self.head(name)
        grad = delta.transpose(0, 1) @ x
        a, b, eta = head(self.condition(ctx))
        return torch.sigmoid(eta) * (grad * a + b)

    def step_size(self, name: str) -> float:
        """``max_scale`` (1 by default): the learned gates carry the scale (see the module
        docstring for the sign)."""
        return self.max_scale
