"""MEND (Mitchell et al. 2022) as modified by LiME (method-notes §5)."""
from __future__ import annotations

import torch
from torch import nn

from lime_toolkit.config_schema import BOOL, Choice, Int, Number, Positive
from lime_toolkit.editor_api import EditContext, EditorSetup, FactorEditor
from lime_toolkit.errors import UserError
from lime_toolkit.toolbox.names import safe_key

from .network import SharedEditorNetwork, normalise

OUTPUT_SPACES = ("input", "normalised")


def _flag(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def shape_key(shape: tuple[int, int]) -> str:
    """The key of the network shared by weights of ``shape`` (out, in), e.g. ``"3072x768"``."""
    return f"{shape[0]}x{shape[1]}"


class MendEditor(FactorEditor):
    """A gradient-factor editor network.

    * One :class:`SharedEditorNetwork` per distinct weight shape (out, in), shared by the edited
      weights of that shape (``networks[shape_key]``).
    * Per edited weight: a scale and a shift vector per network layer (dimension in + out, init 1
      and 0) and a learned step size α (init ``step_size_init``).
    * Per token the network sees h0 = [LayerNorm(x), LayerNorm(δ)] and adds the residual R(h0) of
      its low-rank layers.

    Identity start: with ``output_space="input"`` (default) the residual is mapped back to each
    factor's units by the inverse of the per-token normalisation, x̃ = x + σ_x ⊙ R_x and
    δ̃ = δ + σ_δ ⊙ R_δ (σ = per-token std + eps). R is exactly 0 at init (U = 0), so the editor
    returns the original (x, δ) bit for bit, ΔW = Σ δ xᵀ is the raw gradient and the first edit
    W' = W − α·ΔW is a gradient-descent step of size α. (The core subtracts α·ΔW; the reference code
    adds, which with this identity start would step up the loss.) ``output_space="normalised"``
    returns the network output in normalised units, as the reference code does: at init the edit
    is then α·Σ LN(δ) LN(x)ᵀ, not the gradient.

    Options: ``rank`` (1920, capped at in + out), ``n_layers`` (2), ``step_size_init`` (1e-4),
    ``step_size_lr`` (1e-4, α's own parameter group as in MEND), ``norm_eps`` (1e-8),
    ``output_space`` ("input"), ``linear_last`` (true: the network's last layer has no clamp, as
    in MEND's code; false reproduces a network whose every residual is non-negative).
    """

    default_lr = 1e-6
    #: Each token's factors are normalised and transformed on their own (batched evaluation).
    tokenwise = True
    #: Checked when the run is built (lime_toolkit.config.check_options).
    option_specs = {"rank": Int(1), "n_layers": Int(1), "step_size_init": Number(), "step_size_lr": Number(0),
                    "norm_eps": Positive(), "output_space": Choice(*OUTPUT_SPACES), "linear_last": BOOL,
                    "lr": Positive()}

    def __init__(self, setup: EditorSetup):
        super().__init__(setup)
        rank = int(setup.option("rank", 1920))
        n_layers = int(setup.option("n_layers", 2))
        if rank < 1 or n_layers < 1:
            raise UserError(f"mend: rank and n_layers must be positive (got rank={rank}, n_layers={n_layers})")
        self.norm_eps = float(setup.option("norm_eps", 1e-8))
        self.step_size_lr = float(setup.option("step_size_lr", 1e-4))
        self.output_space = str(setup.option("output_space", "input"))
        if self.output_space not in OUTPUT_SPACES:
            raise UserError(f"mend: output_space must be one of {', '.join(OUTPUT_SPACES)} "
                            f"(got '{self.output_space}')")
        step_size_init = float(setup.option("step_size_init", 1e-4))
        linear_last = _flag(setup.option("linear_last", True))

        self.shapes = {name: (int(o), int(i)) for name, (o, i) in setup.shapes.items()}
        self._keys = {name: safe_key(name) for name in self.shapes}
        if len(set(self._keys.values())) != len(self._keys):
            raise UserError(f"mend: edited weight names collide once '.' is replaced: {sorted(self.shapes)}")

        # Networks are created in sorted shape order so that V's random init does not depend on
        # the order in which the weights were listed.
        self.networks = nn.ModuleDict()
        for shape in sorted(set(self.shapes.values())):
            dim = shape[0] + shape[1]
            self.networks[shape_key(shape)] = SharedEditorNetwork(dim, min(rank, dim), n_layers, linear_last)

        self.scales = nn.ParameterDict()
        self.shifts = nn.ParameterDict()
        self.step_sizes = nn.ParameterDict()
        for name, (out_f, in_f) in self.shapes.items():
            key = self._keys[name]
            self.scales[key] = nn.Parameter(torch.ones(n_layers, out_f + in_f))
            self.shifts[key] = nn.Parameter(torch.zeros(n_layers, out_f + in_f))
            self.step_sizes[key] = nn.Parameter(torch.tensor(step_size_init))

    def network_for(self, name: str) -> SharedEditorNetwork:
        """The (shared) network that transforms the factors of weight ``name``."""
        return self.networks[shape_key(self._shape(name))]

    def _shape(self, name: str) -> tuple[int, int]:
        try:
            return self.shapes[name]
        except KeyError:
            raise KeyError(f"mend has no parameters for weight '{name}'; it was built for: "
                           f"{', '.join(self.shapes)}") from None

    def transform(self, name: str, x: torch.Tensor, delta: torch.Tensor, ctx: EditContext | None = None):
        """Return (x̃, δ̃) for weight ``name``; ``x`` [tokens, in], ``delta`` [tokens, out]."""
        out_f, in_f = self._shape(name)
        if x.shape[-1] != in_f or delta.shape[-1] != out_f:
            raise ValueError(f"mend: factors of '{name}' have widths {x.shape[-1]}, {delta.shape[-1]}; "
                             f"expected {in_f}, {out_f}")
        key = self._keys[name]
        x_n, x_scale = normalise(x, self.norm_eps)
        d_n, d_scale = normalise(delta, self.norm_eps)
        h0 = torch.cat([x_n, d_n], dim=-1)
        r = self.network_for(name).residual(h0, self.scales[key], self.shifts[key])
        r_x, r_d = r[:, :in_f], r[:, in_f:]
        if self.output_space == "normalised":
            return x_n + r_x, d_n + r_d
        return x + x_scale * r_x, delta + d_scale * r_d

    def step_size(self, name: str) -> torch.Tensor:
        """The learned α of weight ``name`` (init ``step_size_init``)."""
        self._shape(name)
        return self.step_sizes[self._keys[name]]

    def param_groups(self) -> list[dict]:
        """The networks, scales and shifts train at the editor's lr (the config's or
        :attr:`default_lr`); the step sizes α in their own group at ``step_size_lr``."""
        alphas = {id(p) for p in self.step_sizes.parameters()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in alphas]
        groups = [{"params": rest, "name": "editor"}]
        step_sizes = [p for p in self.step_sizes.parameters() if p.requires_grad]
        if step_sizes:
            groups.append({"params": step_sizes, "name": "step_size", "lr": self.step_size_lr})
        return groups
