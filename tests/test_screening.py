"""The screening loop on synthetic cached states (`screening_data`, conftest): every registered recipe trains and
reports its criteria."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.screening import RECIPES, cross_corpus_recipe, sensitivity_grid, train_screening_run


@pytest.mark.parametrize("name", ["paper", "coral_only", "full", "full+im0.3", "full+confusion_adversary",
                                  "full+rank256-dsbn+uncertainty", "full+rank256-dsbn+ema"])
def test_recipes_train_and_report_label_free_criteria(screening_data, name):
    result = train_screening_run(screening_data, RECIPES[name], seed=0)
    for section in ("source_validation", "in_domain", "cross_corpus"):
        assert 0.0 <= result[section]["macro_f1"] <= 1.0
    assert np.isfinite(result["label_free"]["dev_risk"])
    assert abs(sum(result["label_free"]["target_prediction_histogram"]) - 1.0) < 1e-3
    assert 0.0 <= result["diagnostics"]["domain_auc_z_emo"] <= 1.0
    assert (result["diagnostics"]["mean_gates"] is None) == (not RECIPES[name].router)


def test_same_seed_same_numbers_and_the_sensitivity_grid(screening_data):
    first, second = (train_screening_run(screening_data, cross_corpus_recipe(), seed=1) for _ in range(2))
    assert first["cross_corpus"] == second["cross_corpus"] and first["label_free"] == second["label_free"]
    grid = sensitivity_grid()
    assert len(grid) == 9 and len({recipe.name for recipe in grid}) == 9
    assert {recipe.weights["coral"] for recipe in grid} == {0.1, 1.0, 10.0}


def test_weight_averaging_and_uncertainty_weighting_change_the_trained_head(screening_data):
    from dataclasses import replace

    base = replace(cross_corpus_recipe(), factor_rank=8)
    plain = train_screening_run(screening_data, base, seed=0)
    for variant in (replace(base, ema_decay=0.9), replace(base, uncertainty_weighting=True)):
        assert train_screening_run(screening_data, variant, seed=0)["label_free"] != plain["label_free"]


def test_the_default_full_preset_is_the_screening_row_it_was_chosen_from():
    from modeling_ctrilora.presets import CROSS_CORPUS_RECIPE
    from trainer.screening import DEFAULT_FULL_RECIPE

    recipe = RECIPES[DEFAULT_FULL_RECIPE]
    as_config = {
        "factor_rank": recipe.factor_rank, "layer_pooling": recipe.layer_pooling,
        "domain_specific_normalization": recipe.normalization == "domain_specific", "coral_input": recipe.coral_input,
        "coral_covariance": recipe.coral_covariance, "coral_weight": recipe.weights["coral"],
        "adversary_objective": {"grl": "reversal", "confusion": "confusion"}[recipe.adversary],
        "adversary_weight": recipe.weights["adversary"], "grl_gamma": recipe.grl_gamma,
        "grl_max_coefficient": recipe.grl_max,
    }
    assert as_config == {name: CROSS_CORPUS_RECIPE[name] for name in as_config}
