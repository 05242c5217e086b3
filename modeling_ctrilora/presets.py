"""Ablation presets: the rows of the paper's Table I, each one named switch.

`full` is C-TriLoRA with the cross-corpus recipe and its ablations (`no_*`) remove one part of it; `paper` is the
published recipe; the baselines (`shared_head`, `ser_only`, `coral_only`, `asr_only`) keep the paper's knobs, as
they were measured. A preset fixes the *architecture* (Tri-LoRA router or one shared projection, FiLM-conditioned decoder or not,
gradient-reversal adversary or not) and which loss terms are switched on. The loss *weights* of the terms that stay
on are the config's (`asr_weight`, `ser_weight`, …); a preset only zeroes the terms it removes. Every function below
is documented with exactly what it keeps; `resolve_preset(name)` returns its `PresetSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The loss terms, the task (SER) first: `CTriLoRAOutput.<term>_loss`, `CTriLoRAConfig.<term>_weight`.
LOSS_TERMS = ("ser", "asr", "speaker", "adversary", "counterfactual", "coral", "orthogonality", "im", "mcc")
# The terms of the paper (Eq. 9); "im" and "mcc" are target-side objectives added by the cross-corpus recipe.
PAPER_LOSS_TERMS = LOSS_TERMS[:7]

# The method knobs of `CTriLoRAConfig` a preset sets when the config leaves them at `None` (see `PresetSpec.recipe`).
# The paper's recipe: last-layer pooling, one set of batch statistics for source and target rows, CORAL on the gated
# z_emo with each step's covariances at weight 0.1, the GRL adversary at weight 0.5 with DANN's schedule.
PAPER_RECIPE: dict[str, object] = {
    "factor_rank": 16,
    "layer_pooling": "last",
    "domain_specific_normalization": False,
    "coral_input": "gated_z_emo",
    "coral_covariance": "batch",
    "coral_weight": 0.1,
    "adversary_objective": "reversal",
    "adversary_weight": 0.5,
    "grl_gamma": 10.0,
    "grl_max_coefficient": 1.0,
    "target_encoder_gradients": True,
}
# The cross-corpus recipe of the default `full` preset, chosen on frozen-encoder screening by a rule that reads no
# target label (BENCHMARKS.md, "Method study": best mean source-validation macro-F1 over both corpus pairs among
# recipes that keep every C-TriLoRA component, ties within 0.01 broken by the lower DEV risk; the screening row is
# `trainer.screening.DEFAULT_FULL_RECIPE`). Against the paper: full-rank router streams (r_f = 256 = d_z; the rank-16
# bottleneck cost the emotion stream 0.06–0.15 source-validation F1), all encoder layers pooled (SUPERB-style uniform
# layer average), a tamed adversary (weight 0.1, GRL capped at 0.3 with a slower ramp) and target clips encoded
# without gradients into the backbone (half the target cost). The paper's CORAL (gated z_emo, each step's
# covariances, weight 0.1) and one set of statistics for the joint batch are kept: the scale-free running CORAL and
# DSBN did not beat them on source validation once the router was full rank.
CROSS_CORPUS_RECIPE: dict[str, object] = {
    "factor_rank": 256,
    "layer_pooling": "mean",
    "domain_specific_normalization": False,
    "coral_input": "gated_z_emo",
    "coral_covariance": "batch",
    "coral_weight": 0.1,
    "adversary_objective": "reversal",
    "adversary_weight": 0.1,
    "grl_gamma": 5.0,
    "grl_max_coefficient": 0.3,
    "target_encoder_gradients": False,
}
# The key each weighted term is logged under (`trainer_state.json`, the training-curve plot), in the same order.
LOGGED_LOSS_TERMS = tuple(f"loss_{term}" for term in LOSS_TERMS)


@dataclass(frozen=True)
class PresetSpec:
    """What an ablation variant keeps.

    Attributes:
        name: preset name (`CTriLoRAConfig.preset`).
        router: `True` for the Tri-LoRA router (three gated low-rank streams), `False` for one shared projection
            h̄ → d_z feeding the emotion and speaker heads.
        film: condition the decoder's cross-attention input on z_lex (FiLM). Needs the router.
        gradient_reversal: build the GRL speaker adversary on z_emo.
        losses: the loss terms that are on (a subset of `LOSS_TERMS`).
        description: one line for reports.
        recipe: values of the method knobs (`PAPER_RECIPE`'s keys) this preset gives a config that leaves them at
            `None`; an explicit config value always wins.
    """

    name: str
    router: bool
    film: bool
    gradient_reversal: bool
    losses: frozenset[str]
    description: str = field(default="")
    recipe: dict[str, object] = field(default_factory=lambda: dict(PAPER_RECIPE))


_PRESETS: dict[str, PresetSpec] = {}


def _preset(function):
    spec = function()
    unknown = set(spec.losses) - set(LOSS_TERMS)
    if unknown:
        raise ValueError(f"preset {spec.name!r} names unknown loss terms {sorted(unknown)}")
    _PRESETS[spec.name] = spec
    return function


@_preset
def full() -> PresetSpec:
    """C-TriLoRA with the cross-corpus recipe (`CROSS_CORPUS_RECIPE`): router + FiLM decoder + GRL adversary, the
    paper's seven terms (ASR, SER, speaker, adversary, counterfactual, CORAL, orthogonality) plus the target-side
    terms when their weights are set (`im_weight`, `mcc_weight`, 0 by default)."""
    return PresetSpec("full", True, True, True, frozenset(LOSS_TERMS), "C-TriLoRA (all components, cross-corpus recipe)",
                      dict(CROSS_CORPUS_RECIPE))


@_preset
def paper() -> PresetSpec:
    """C-TriLoRA exactly as published (and as `full` was before the cross-corpus recipe): router + FiLM decoder + GRL
    adversary, all seven terms of the paper, `PAPER_RECIPE`. Checkpoints saved before the recipe knobs existed load
    as this preset."""
    return PresetSpec("paper", True, True, True, frozenset(PAPER_LOSS_TERMS), "C-TriLoRA as published")


@_preset
def shared_head() -> PresetSpec:
    """Table I row 1: same backbone and LoRA, one shared projection h̄ → d_z feeding the emotion and speaker heads,
    decoder unconditioned; losses ASR + SER + speaker. No router, CORAL, GRL, counterfactual or orthogonality."""
    return PresetSpec("shared_head", False, False, False, frozenset({"asr", "ser", "speaker"}), "Shared-Head baseline")


@_preset
def ser_only() -> PresetSpec:
    """Router architecture (no FiLM use, no adversary) trained with the SER loss alone."""
    return PresetSpec("ser_only", True, False, False, frozenset({"ser"}), "Router, SER loss only")


@_preset
def no_orthogonality() -> PresetSpec:
    """Full minus the orthogonality loss; modules as in `full`."""
    return PresetSpec(
        "no_orthogonality", True, True, True, frozenset(LOSS_TERMS) - {"orthogonality"}, "Full − orthogonality",
        dict(CROSS_CORPUS_RECIPE),
    )


@_preset
def no_coral() -> PresetSpec:
    """Full minus the CORAL loss (no target batches needed); modules as in `full`."""
    return PresetSpec("no_coral", True, True, True, frozenset(LOSS_TERMS) - {"coral"}, "Full − CORAL", dict(CROSS_CORPUS_RECIPE))


@_preset
def no_grl() -> PresetSpec:
    """Full minus the gradient-reversal adversary (module and its loss); router, FiLM and the other terms kept."""
    return PresetSpec("no_grl", True, True, False, frozenset(LOSS_TERMS) - {"adversary"}, "Full − GRL", dict(CROSS_CORPUS_RECIPE))


@_preset
def no_counterfactual() -> PresetSpec:
    """Full minus the counterfactual margin loss; modules as in `full`."""
    return PresetSpec(
        "no_counterfactual", True, True, True, frozenset(LOSS_TERMS) - {"counterfactual"}, "Full − counterfactual",
        dict(CROSS_CORPUS_RECIPE),
    )


@_preset
def coral_only() -> PresetSpec:
    """Deep CORAL baseline: shared projection (as `shared_head`), SER + CORAL losses only."""
    return PresetSpec("coral_only", False, False, False, frozenset({"ser", "coral"}), "Shared head + CORAL (Deep CORAL)")


@_preset
def asr_only() -> PresetSpec:
    """Router + FiLM decoder trained with the ASR loss alone; the emotion head stays untrained (near chance)."""
    return PresetSpec("asr_only", True, True, False, frozenset({"asr"}), "ASR loss only")


ABLATION_PRESETS: tuple[str, ...] = tuple(_PRESETS)


def resolve_preset(name: str) -> PresetSpec:
    """The `PresetSpec` of `name`; `ValueError` listing the valid names otherwise."""
    try:
        return _PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; expected one of {', '.join(ABLATION_PRESETS)}") from None


__all__ = [
    "ABLATION_PRESETS",
    "CROSS_CORPUS_RECIPE",
    "LOGGED_LOSS_TERMS",
    "LOSS_TERMS",
    "PAPER_LOSS_TERMS",
    "PAPER_RECIPE",
    "PresetSpec",
    "resolve_preset",
]
