"""The speed benchmark's verdicts and tables: PASS/MISS of each target, and the Markdown report of a run."""

from __future__ import annotations

from typing import Any

# Targets measured at --target_clip_seconds: issue 6's (padding speed-up, router overhead) and issue 16's (the Full
# step with its target batch against Shared-Head, inference at batch 1 and 16 with fp32 or the int8 option).
TARGET_SPEEDUP = 12.0
TARGET_OVERHEAD_PCT = 10.0
TARGET_TARGET_BATCH_RATIO = 1.35
TARGET_CLIPS_PER_S = 18.0
TARGET_MS_PER_CLIP = 55.0
# The rows of section (b): Shared-Head, Full on the source batch, Full with the default recipe's target batch (no
# gradients into the encoder) and with the paper's (back-propagated through the LoRA encoder).
HEADS_VARIANTS = ("shared_head", "full", "full_with_target", "full_with_target_gradients")


def seconds_key(seconds: float) -> str:
    """Key of a clip length in the results, e.g. `4s`, `0.5s`."""
    return f"{seconds:g}s"


def check_targets(results: dict[str, Any], args: Any) -> list[dict[str, Any]]:
    """PASS/MISS of each issue target that the run measured (at `--target_clip_seconds`, batch `--batch_size`).

    `args` is the run's `BenchmarkArguments`.
    """
    key = seconds_key(args.target_clip_seconds)
    checks: list[tuple[str, float | None, str, float]] = []
    if "train_padding" in results:
        row = results["train_padding"].get(key)
        name = f"(a) train speed-up at {key}, mixed-length batch, vs 30 s padding"
        checks.append((name, row and row["speedup"], ">=", TARGET_SPEEDUP))
    if "heads" in results:
        overhead = results["heads"]["router_heads_aux_overhead_pct"]
        checks.append(("(b) router + heads + aux overhead over Shared-Head (%)", overhead, "<=", TARGET_OVERHEAD_PCT))
        heads = results["heads"]
        ratio = heads["full_with_target"]["median_s"] / heads["shared_head"]["median_s"]
        checks.append(("(b) Full step with its target batch / Shared-Head step", ratio, "<=", TARGET_TARGET_BATCH_RATIO))
    if "inference" in results:
        row = results["inference"].get(key)
        # The int8 rows only where the run timed them (`--int8`).
        for suffix in [suffix for suffix in ("", "_int8") if not suffix or (row and f"batch_1{suffix}" in row)]:
            precision = "int8" if suffix else ("bf16 autocast" if args.bf16 else "fp32")
            batched = row and row[f"batch_{args.batch_size}{suffix}"]["clips_per_s"]
            single = row and row[f"batch_1{suffix}"]["ms_per_clip"]
            name = f"(c) inference clips/s at batch {args.batch_size}, {key}, mixed lengths, {precision}"
            checks.append((name, batched, ">=", TARGET_CLIPS_PER_S))
            checks.append((f"(c) inference ms/clip at batch 1, {key}, {precision}", single, "<=", TARGET_MS_PER_CLIP))
    targets = []
    for name, value, comparison, threshold in checks:
        if value is None:
            status = "n/a"
        else:
            status = "PASS" if (value >= threshold if comparison == ">=" else value <= threshold) else "MISS"
        targets.append({"target": name, "value": value, "comparison": comparison, "threshold": threshold, "status": status})
    return targets


def rss(stats: dict[str, Any]) -> str:
    """'peak (+rise)' in MiB for a table cell."""
    return f"{stats['peak_rss_mib']:.0f} (+{stats['peak_rss_increase_mib']:.0f})"


def markdown_report(report: dict[str, Any]) -> str:
    """The tables printed at the end of a run (also written by `--output_markdown`)."""
    machine, args = report["machine"], report["arguments"]
    lines = [
        "## Machine and load",
        "",
        f"- CPU: {machine['cpu_model']}, {machine['nproc']} cores available, torch threads {machine['torch_threads']}, "
        f"OMP_WAIT_POLICY={machine['omp_wait_policy']}; models and batches on `{machine.get('device', 'cpu')}`"
        + (f" ({machine['cuda_device_name']})" if machine.get("cuda_device_name") else ""),
        f"- torch {machine['torch']}, transformers {machine['transformers']}, peft {machine['peft']}, "
        f"python {machine['python']}; attention `{machine['attn_implementation']}`, mkldnn {machine['mkldnn_enabled']}, "
        f"bf16 autocast {args['bf16']}, int8 rows {args.get('int8', False)}, LoRA merged for inference {args['merge_lora']}",
        f"- load average (1/5/15 min) at start {machine['load_average_start']}, per section "
        f"{machine['load_average_by_section']}, at end {machine['load_average_end']}",
        f"- base model `{args['base_model'] or 'tiny random Whisper'}`, audio "
        f"`{args['audio_dir'] or 'synthetic noise'}`, batch {args['batch_size']}, clip lengths uniform within "
        f"±{100 * args['length_jitter']:g} % of nominal, padded to the longest with a frame mask",
        f"- medians of {args['repeats']} timed steps ({args['repeats_30s']} for the 30 s training step) after "
        f"{args['warmup']} warm-up, variants interleaved; CPU util = process CPU time / wall time "
        f"(≈ threads when the cores are free)",
        "",
        "```",
        report["command"],
        "```",
        "",
    ]
    results = report["results"]
    if "train_padding" in results:
        lines += [
            "## (a) Training step: true length (masked) vs stock 30 s padding",
            "",
            "`short`: random mixed-length batch (the target's measure); `grouped`: a length-grouped batch of the same "
            "length distribution. Frames: mean real / padded batch length.",
            "",
            "| clip | frames short | frames grouped | short s | grouped s | 30 s s | speed-up | speed-up grouped "
            "| peak RSS (+ rise in step) short / 30 s MiB | CPU util short / 30 s |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for key, row in results["train_padding"].items():
            short, grouped = row["shape_short"], row["shape_short_length_grouped"]
            lines.append(
                f"| {key} | {short['mean_real_frames']:.0f} / {short['frames']} | "
                f"{grouped['mean_real_frames']:.0f} / {grouped['frames']} | {row['short']['median_s']:.3f} | "
                f"{row['short_length_grouped']['median_s']:.3f} | {row['pad_to_30s']['median_s']:.3f} | "
                f"{row['speedup']:.2f}× | {row['speedup_length_grouped']:.2f}× | "
                f"{rss(row['short'])} / {rss(row['pad_to_30s'])} | "
                f"{row['short']['cpu_utilisation']:.2f} / {row['pad_to_30s']['cpu_utilisation']:.2f} |"
            )
        lines.append("")
    if "heads" in results:
        heads = results["heads"]
        shape = heads["shape_source"]
        lines += [
            f"## (b) Full vs Shared-Head training step ({heads['clip_seconds']:g} s clips, "
            f"{shape['mean_real_frames']:.0f} / {shape['frames']} frames)",
            "",
            "| variant | step s (median) | min s | peak RSS (+ rise) MiB | CPU util |",
            "|---|---|---|---|---|",
        ]
        # Runs written before the target-gradient variant existed lack its row.
        for name in [name for name in HEADS_VARIANTS if name in heads]:
            row = heads[name]
            lines.append(
                f"| {name} | {row['median_s']:.3f} | {row['min_s']:.3f} | {rss(row)} | {row['cpu_utilisation']:.2f} |"
            )
        lines += [
            "",
            f"Router + heads + aux losses over Shared-Head: {heads['router_heads_aux_overhead_pct']:+.1f} %; "
            f"adding the target batch (CORAL) over Full: {heads['target_batch_overhead_pct']:+.1f} %"
            + (f" (the paper's, with gradients through the encoder: {heads['target_gradients_overhead_pct']:+.1f} %)"
               if "target_gradients_overhead_pct" in heads else "") + ".",
            "",
        ]
    if "inference" in results:
        lines += [
            "## (c) Emotion inference (encoder + router + heads, `inference_mode`, no decoder)",
            "",
            "| clip | batch | frames (mean real / padded) | ms/clip | clips/s | peak RSS (+ rise) MiB | CPU util |",
            "|---|---|---|---|---|---|---|",
        ]
        for key, rows in results["inference"].items():
            for name, row in rows.items():
                shape = row["shape"]
                lines.append(
                    f"| {key} | {name.removeprefix('batch_').replace('_', ' ')} | "
                    f"{shape['mean_real_frames']:.0f} / {shape['frames']} | {row['ms_per_clip']:.1f} | "
                    f"{row['clips_per_s']:.1f} | {rss(row)} | {row['cpu_utilisation']:.2f} |"
                )
        lines.append("")
    if "features" in results:
        lines += [
            "## (d) Whisper log-Mel extraction, one clip per call",
            "",
            "| clip | true length ms/clip | clips/s | stock 30 s padding ms/clip | clips/s |",
            "|---|---|---|---|---|",
        ]
        for key, row in results["features"].items():
            lines.append(
                f"| {key} | {row['true_length']['ms_per_clip']:.2f} | {row['true_length']['clips_per_s']:.0f} | "
                f"{row['pad_to_30s']['ms_per_clip']:.2f} | {row['pad_to_30s']['clips_per_s']:.0f} |"
            )
        lines.append("")
    if report["targets"]:
        lines += ["## Targets", "", "| target | measured | goal | status |", "|---|---|---|---|"]
        for target in report["targets"]:
            value = "—" if target["value"] is None else f"{target['value']:.2f}"
            goal = f"{target['comparison']} {target['threshold']:g}"
            lines.append(f"| {target['target']} | {value} | {goal} | {target['status']} |")
        lines.append("")
    return "\n".join(lines)


__all__ = ["check_targets", "markdown_report", "seconds_key"]
