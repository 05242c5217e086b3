"""`benchmarks/domain_auc_analysis.py` on synthetic cached states (`screening_data`: a pure mean shift between the
domains): what each section computes, and the script end to end on its functions."""

from __future__ import annotations

import json

import pytest

BENCHMARK_SCRIPT = "domain_auc_analysis"


@pytest.fixture(scope="module")
def analysis(benchmark_script):
    return benchmark_script


def test_per_domain_statistics_remove_the_mean_shift_that_joint_statistics_leave(analysis, screening_data):
    found = analysis.frozen_state_auc(screening_data)
    assert set(found) == {f"{p}/{s}" for p in ("mean_layers", "last_layer") for s in ("joint_statistics", "per_domain_statistics")}
    # Joint statistics centre the source rows on the mixture, the target rows on themselves: the shift stays.
    assert found["mean_layers/joint_statistics"] > 0.95
    # Each domain on its own statistics removes the shift; what remains is the test sets' own make-up (which
    # classes, and on real data which speakers, they hold), so the AUC drops without reaching 0.5.
    assert found["mean_layers/per_domain_statistics"] < found["mean_layers/joint_statistics"]


def test_projection_emotion_subspace_and_rank_sweep_report_every_setting(analysis, screening_data):
    projection = analysis.projection_auc(screening_data, [2, 8], [0, 1])
    assert list(projection) == ["2", "8"] and all(0.0 <= mean <= 1.0 and sd >= 0.0 for mean, sd in projection.values())
    emotion = analysis.emotion_subspace_auc(screening_data)
    assert emotion["dimensions"] == 2 and 0.0 <= emotion["auc"] <= 1.0  # C − 1 discriminants for 3 classes
    rows = analysis.rank_sweep(screening_data, [4], [0])
    assert [(row["factor_rank"], row["normalization"]) for row in rows] == [(4, "joint"), (4, "domain_specific")]
    assert all(0.0 <= row[key][0] <= 1.0 for row in rows for key in ("z_emo_domain_auc", "logits_domain_auc"))


def test_screening_correlation_reads_jsonl_rows_and_refuses_too_few(analysis, tmp_path):
    path = tmp_path / "screen.jsonl"
    rows = [{"diagnostics": {"domain_auc_z_emo": auc}, "cross_corpus": {"macro_f1": f1},
             "source_validation": {"macro_f1": f1}} for auc, f1 in ((0.9, 0.5), (0.95, 0.4), (1.0, 0.3))]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    found = analysis.screening_correlation([str(path)])
    assert found["rows"] == 3 and found["rho_auc_cross_f1"] == -1.0 and found["rows_below_0.95"] == 1
    path.write_text("\n".join(json.dumps(row) for row in rows[:2]) + "\n")
    with pytest.raises(ValueError, match="at least 3 screening rows"):
        analysis.screening_correlation([str(path)])


def test_lora_runs_lists_the_runs_without_the_diagnostic(analysis, tmp_path):
    paths = []
    for preset, auc, cross in (("full", 1.0, 0.5), ("paper", 0.9, 0.4), ("ser_only", 0.7, 0.3), ("old", None, 0.2)):
        path = tmp_path / preset / "seed-0" / "evaluation" / "results.json"
        path.parent.mkdir(parents=True)
        diagnostics = {} if auc is None else {"z_emo_domain_auc": auc}
        path.write_text(json.dumps({"diagnostics": diagnostics, "in_domain": {"macro_f1": 0.8},
                                    "cross_corpus": {"macro_f1": cross}}))
        paths.append(str(path))
    found = analysis.lora_runs(paths)
    assert [row["run"] for row in found["rows"]] == ["full/seed-0", "paper/seed-0", "ser_only/seed-0"]
    assert found["without_diagnostic"] == ["old/seed-0"] and found["rho_auc_cross_f1"] == 1.0


def test_report_has_every_section(analysis, screening_data, tmp_path):
    results = {"pair": "a → b", "frozen": analysis.frozen_state_auc(screening_data),
               "projection": analysis.projection_auc(screening_data, [2], [0]),
               "emotion_subspace": analysis.emotion_subspace_auc(screening_data),
               "rank_sweep": analysis.rank_sweep(screening_data, [4], [0]),
               "lora_runs": {"rows": [{"run": "full/seed-0", "z_emo_domain_auc": 1.0, "logits_domain_auc": None,
                                       "in_domain_f1": 0.8, "cross_corpus_f1": 0.5}],
                             "without_diagnostic": ["old/seed-0"]}}
    analysis.write_report(results, tmp_path / "report.md")
    text = (tmp_path / "report.md").read_text()
    for heading in ("Frozen encoder states", "Random projections", "Emotion discriminant space", "Router rank",
                    "LoRA runs", "No `z_emo_domain_auc`"):
        assert heading in text
