"""Markdown tables for BENCHMARKS.md, made from the benches' JSON in bench/results/ (so the
figures in the document are the ones the benches printed, not retyped).

Usage: python bench/tables.py [--results bench/results]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pm(stat: dict[str, float], scale: float = 1.0, digits: int = 2) -> str:
    return f"{stat['mean'] * scale:.{digits}f} ± {stat['std'] * scale:.{digits}f}"


def precision(data: dict[str, Any]) -> str:
    rows = [
        [
            f"{r['fraction']:g}",
            r["width"],
            f"{r['target_ms']:.4f}",
            f"{r['predicted_ms']:.4f}",
            f"{r['error_pct']:+.3f}%",
            f"{r['measured_ms']:.3f}",
            f"{r['measured_error_pct']:+.1f}%",
        ]
        for r in sorted(data["rows"], key=lambda r: (r["width"], r["fraction"]))
    ]
    header = ["fraction of range", "width", "target ms", "predicted ms", "predicted vs target",
              "measured ms", "measured vs target"]  # fmt: skip
    return table(header, rows)


def ablations(data: dict[str, Any]) -> str:
    rows = []
    for name, v in data["variants"].items():
        rows.append(
            [
                name,
                ", ".join(f"{k}={x}" for k, x in v["settings"].items()) or "(default)",
                len(v["runs"]),
                pm(v["predicted_vs_target_pct"], digits=3) + "%",
                pm(v["measured_vs_target_pct"], digits=1) + "%",
                pm(v["arch_split_acc"], 100, 1) + "%",
                pm(v["final_op_entropy"], digits=3),
                pm(v["top1"], 100) + "%",
                pm(v["search_seconds"], digits=0),
            ]
        )
    header = ["variant", "change", "seeds", "predicted vs target", "measured vs target",
              "supernet acc (arch split)", "op entropy (nats, max 2.079)", "retrained top-1",
              "search s"]  # fmt: skip
    return table(header, rows)


def baselines(data: dict[str, Any]) -> str:
    rows = [
        [name, len(m["runs"]), pm(m["top1"], 100) + "%", pm(m["measured_ms"], digits=3)]
        for name, m in data["methods"].items()
    ]
    return table(["method", "seeds", "test top-1", "measured ms"], rows)


def search_vs_random(data: dict[str, Any]) -> str:
    rows = []
    groups = [("searched", data["searched"]["runs"]), ("random", data["random"]["runs"])]
    if data.get("mobilenetv2_style"):
        groups.append(("mobilenetv2-style", [data["mobilenetv2_style"]]))
    searched = data["searched"]["runs"]
    for group, runs in groups:
        for k, r in enumerate(runs):
            if group == "random" and "supernet_path_top1_of_randoms" in searched[0]:
                scores = [s["supernet_path_top1_of_randoms"][k] for s in searched]
            elif r.get("supernet_path_top1") is not None:
                scores = [r["supernet_path_top1"]]  # a searched network in its own supernet
            else:
                scores = []
            rows.append(
                [
                    group,
                    r["name"],
                    f"{r['top1'] * 100:.2f}%",
                    " / ".join(f"{x * 100:.1f}%" for x in scores),
                    f"{r['predicted_ms']:.4f}",
                    f"{r['measured_ms']:.3f}",
                    r["architecture"].replace("|", "\\|"),
                ]
            )
    header = ["group", "network", "test top-1", "as a supernet path", "predicted ms",
              "measured ms", "architecture"]  # fmt: skip
    return table(header, rows)


def ground_truth(data: dict[str, Any]) -> str:
    rows = [
        [
            a["name"],
            " / ".join(f"{x * 100:.2f}" for x in a["top1"]),
            f"{a['mean'] * 100:.2f}%",
            f"{a['features']['se_blocks']}",
            "-".join(str(a["features"][f"depth_stage{s}"]) for s in range(1, 6)),
            f"{a['features']['mid_width']}",
            f"{a['features']['macs'] / 1e6:.1f}M",
            a["architecture"].replace("|", "\\|"),
        ]
        for a in data["per_arch"]
    ]
    header = ["network", "top-1 per seed (%)", "mean", "SE blocks", "depths", "mid width",
              "MACs", "architecture"]  # fmt: skip
    out = table(header, rows)
    noise = data.get("noise")
    if noise:
        out += (
            f"\n\nseed s.d. {noise['seed_sd'] * 100:.2f} points, between architectures "
            f"{noise['between_architecture_sd'] * 100:.2f}, reliability of a "
            f"{noise['seeds_per_architecture']:g}-seed mean {noise['reliability']:.2f}, "
            f"attainable Kendall tau {noise['attainable_kendall_tau']:.2f} "
            f"({noise['architectures']} architectures with several seeds)"
        )
        if "reliability_95" in noise:
            low, high = noise["reliability_95"]
            out += (
                f"; reliability 95% interval {low:.2f} to {high:.2f} (tau at most "
                f"{noise['attainable_kendall_tau_upper_95']:.2f}); two networks' "
                f"{noise['seeds_per_architecture']:g}-seed means must differ by "
                f"{noise['detectable_difference'] * 100:.2f} points to be told apart "
                "(5% two-sided, 80% power)"
            )
    return out


def overhead_model(data: dict[str, Any]) -> str:
    """Per runtime, check and overhead model: the raw sum's error and the leave-one-out
    error of each calibration."""
    rows = []
    for backend, result in data.items():
        if not isinstance(result, dict) or "checks" not in result:
            continue
        overhead = result["call_overhead"]
        name = f"{backend} (call {overhead['ms'] * 1000:.0f} us; build chose {overhead['model']})"
        for i, check in enumerate(result["checks"], 1):
            for model, c in check.items():
                raw, line = c["raw"], c["calibrated_line_loo"]
                per_block = c["calibrated_per_block_loo"]
                rows.append([
                    name, i, model, f"{raw['median_abs_pct']:.1f}% / {raw['within_10pct']:.0%}",
                    f"{line['median_abs_pct']:.1f}% / {line['within_5pct']:.0%}",
                    f"{per_block['median_abs_pct']:.1f}% / {per_block['within_5pct']:.0%}",
                ])  # fmt: skip
    header = ["runtime", "check", "overhead model", "raw: median abs. error / within 10%",
              "line: LOO median / within 5%", "per-block: LOO median / within 5%"]  # fmt: skip
    return table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="bench/results")
    args = parser.parse_args()
    results = Path(args.results)
    for name, render in (
        ("search_precision", precision),
        ("ablations", ablations),
        ("baselines", baselines),
        ("search_vs_random", search_vs_random),
        ("ground_truth/summary", ground_truth),
        ("overhead_model", overhead_model),
    ):
        path = results / f"{name}.json"
        if path.is_file() and path.stat().st_size:
            data = json.loads(path.read_text())
            print(f"## {name}\n\ncommand: `{data.get('command', '')}`\n\n{render(data)}\n")


if __name__ == "__main__":
    main()
