"""Evaluation of a run: predictions and the report (`evaluate`), metrics, calibration, significance tests, plots,
the ablation table and the baselines."""
