"""The mask strategies: ``none`` (identity) and ``l0`` (LiME language anisotropic masks)."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from lime_toolkit.config_schema import BOOL, Choice, Number, Positive
from lime_toolkit.errors import UserError
from lime_toolkit.mask_api import MaskSetup, MaskStrategy
from lime_toolkit.toolbox.names import safe_key

from .hard_concrete import HardConcreteConfig, HardConcreteMask

REDUCTIONS = ("mean", "sum")
ANALYSIS_VECTORS = ("log_alpha", "mask")


def _bool_option(setup: MaskSetup, key: str, default: bool) -> bool:
    value = setup.option(key, default)
    if isinstance(value, str):
        if value.strip().lower() in ("true", "yes", "1", "on"):
            return True
        if value.strip().lower() in ("false", "no", "0", "off"):
            return False
        raise UserError(f"masks: option {key} must be true or false (got '{value}')")
    return bool(value)


def _choice_option(setup: MaskSetup, key: str, default: str, choices: Sequence[str]) -> str:
    value = str(setup.option(key, default))
    if value not in choices:
        raise UserError(f"masks: option {key} must be one of {', '.join(choices)} (got '{value}')")
    return value


class NoMask(MaskStrategy):
    """No masks: the factors pass through unchanged and the penalty is 0. It has no parameters and
    therefore accepts any language."""

    is_identity = True

    def penalty(self, langs: Sequence[str]) -> torch.Tensor:
        """Always a zero scalar."""
        return torch.zeros(())


class L0Masks(MaskStrategy):
    """LiME's language anisotropic masks (method-notes §6).

    Per edit language l and edited weight W (out x in): m_x^l (in) and m_δ^l (out), each
    m = s ⊙ z with a hard-concrete gate z; ``apply`` returns (x + m_x ⊙ x, δ + m_δ ⊙ δ), one gate
    sample per call shared by all tokens (stochastic in training mode, deterministic in eval mode).

    The penalty is the expected L0 of the gates of the given languages (each language once, all
    edited weights, both vectors). ``penalty_reduction="mean"`` (default) averages over those
    gates, so the term lies in [0, 1] whatever the model size and is commensurate with
    λ_rel·CE = 0.1·CE at λ_mask = 1; ``"sum"`` is the raw sum over gates (tens of thousands for
    mBERT, which would swamp the other losses at λ_mask = 1). ``penalty_gradient=False`` computes it
    from detached parameters, reproducing the reference code's defect (same value, no gradient).

    Options: ``penalty_reduction`` ("mean"), ``penalty_gradient`` (true), ``clamp_log_alpha``
    (true: log α clamped to [−ln 100, ln 100] before each optimiser step), ``log_alpha_init_std``
    (0.01), ``beta`` (2/3), ``gamma`` (−0.1), ``zeta`` (1.1), ``eps`` (1e-6),
    ``analysis_vector`` ("log_alpha": what :meth:`language_vectors` returns).
    """

    default_lr = 1e-3
    #: Checked when the run is built (lime_toolkit.config.check_options).
    option_specs = {"penalty_reduction": Choice(*REDUCTIONS), "penalty_gradient": BOOL, "clamp_log_alpha": BOOL,
                    "analysis_vector": Choice(*ANALYSIS_VECTORS), "beta": Positive(),
                    "gamma": Number(high=0, high_open=True), "zeta": Number(low=1, low_open=True),
                    "eps": Number(0, 0.5, low_open=True, high_open=True), "log_alpha_init_std": Number(0)}
    log_alpha_bound = math.log(100.0)

    def __init__(self, setup: MaskSetup):
        super().__init__(setup)
        self.penalty_reduction = _choice_option(setup, "penalty_reduction", "mean", REDUCTIONS)
        self.penalty_gradient = _bool_option(setup, "penalty_gradient", True)
        self.clamp_log_alpha = _bool_option(setup, "clamp_log_alpha", True)
        self.analysis_vector = _choice_option(setup, "analysis_vector", "log_alpha", ANALYSIS_VECTORS)
        config = HardConcreteConfig(
            beta=float(setup.option("beta", 2.0 / 3.0)),
            gamma=float(setup.option("gamma", -0.1)),
            zeta=float(setup.option("zeta", 1.1)),
            eps=float(setup.option("eps", 1e-6)),
        )
        if not (config.gamma < 0 < 1 < config.zeta and config.beta > 0):
            raise UserError("masks: hard-concrete needs beta > 0 and gamma < 0 < 1 < zeta")
        init_std = float(setup.option("log_alpha_init_std", 0.01))

        self.languages = list(setup.languages)
        self.shapes = {name: (int(o), int(i)) for name, (o, i) in setup.shapes.items()}
        self._lang_keys = {lang: safe_key(lang) for lang in self.languages}
        self._weight_keys = {name: safe_key(name) for name in self.shapes}
        for what, keys in (("languages", self._lang_keys), ("weight names", self._weight_keys)):
            if len(set(keys.values())) != len(keys):
                raise UserError(f"masks: {what} collide once '.' is replaced: {sorted(keys)}")

        # gates[lang][weight]["x" | "delta"]
        self.gates = nn.ModuleDict()
        for lang in self.languages:
            per_weight = nn.ModuleDict()
            for name, (out_f, in_f) in self.shapes.items():
                per_weight[self._weight_keys[name]] = nn.ModuleDict({
                    "x": HardConcreteMask(in_f, config, init_std),
                    "delta": HardConcreteMask(out_f, config, init_std),
                })
            self.gates[self._lang_keys[lang]] = per_weight

    def _check_lang(self, lang: str) -> None:
        if lang not in self._lang_keys:
            known = ", ".join(self.languages) or "none"
            raise UserError(f"no LiME masks for edit language '{lang}'; the masks were built for: {known}")

    def _pair(self, name: str, lang: str) -> nn.ModuleDict:
        self._check_lang(lang)
        if name not in self._weight_keys:
            raise UserError(f"no LiME masks for weight '{name}'; the masks were built for: "
                            f"{', '.join(self.shapes)}")
        return self.gates[self._lang_keys[lang]][self._weight_keys[name]]

    def apply(self, name: str, lang: str, x: torch.Tensor, delta: torch.Tensor):
        """Masked ``(x + m_x ⊙ x, δ + m_δ ⊙ δ)`` with edit language ``lang``'s masks."""
        pair = self._pair(name, lang)
        m_x, m_d = pair["x"]().to(x.dtype), pair["delta"]().to(delta.dtype)
        return x + m_x * x, delta + m_d * delta

    def penalty(self, langs: Sequence[str]) -> torch.Tensor:
        """Expected L0 of the gates of ``langs`` (duplicates counted once), reduced by
        ``penalty_reduction``; a zero scalar when ``langs`` is empty."""
        unique = list(dict.fromkeys(langs))
        for lang in unique:
            self._check_lang(lang)
        values = [
            gate.expected_l0(self.penalty_gradient)
            for lang in unique
            for pair in self.gates[self._lang_keys[lang]].values()
            for gate in (pair["x"], pair["delta"])
        ]
        if not values:
            device = next((p.device for p in self.parameters()), torch.device("cpu"))
            return torch.zeros((), device=device)
        flat = torch.cat(values)
        return flat.mean() if self.penalty_reduction == "mean" else flat.sum()

    def before_optimizer_step(self) -> None:
        """Clamp every log α to [−ln 100, ln 100] (unless ``clamp_log_alpha`` is false)."""
        if not self.clamp_log_alpha:
            return
        for module in self.modules():
            if isinstance(module, HardConcreteMask):
                module.clamp_(self.log_alpha_bound)

    @torch.no_grad()
    def language_vectors(self, lang: str) -> dict[str, torch.Tensor]:
        """Per edited weight, [v_x, v_δ] concatenated (in + out values): log α of the gates
        (``analysis_vector="log_alpha"``, default; centred at 0, so cosine similarities between
        languages are informative from the start) or the deterministic mask s ⊙ z_eval
        (``"mask"``). Detached copies."""
        self._check_lang(lang)
        out = {}
        for name in self.shapes:
            pair = self._pair(name, lang)
            if self.analysis_vector == "log_alpha":
                parts = [pair["x"].log_alpha, pair["delta"].log_alpha]
            else:
                parts = [self._eval_mask(pair["x"]), self._eval_mask(pair["delta"])]
            out[name] = torch.cat(parts).detach().clone()
        return out

    @staticmethod
    def _eval_mask(gate: HardConcreteMask) -> torch.Tensor:
        was_training = gate.training
        gate.eval()
        try:
            return gate()
        finally:
            gate.train(was_training)
