#!/usr/bin/python3
"""Draws the charts of bench/RESULTS.md with Debian's python3-matplotlib (SVG files next to it).

Called by tools/bench-report.py with the figures of the run it reports (a JSON file):
  {"hot_path": [{"op", "threads", "ours", "prometheus_cpp", "thread_local_add", "shared_fetch_add"}],
   "memory": [{"metric", "ours", "ours_per_thread", "prometheus_cpp"}],   # bytes
   "ingest": [{"scenario", "events_per_second"}]}
Writes <prefix>-hot-path.svg, <prefix>-memory.svg and, when there are ingest rows,
<prefix>-ingest.svg; prints the names it wrote, one per line.
Usage: bench-charts.py DATA.json PREFIX"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"ours": "#2f6fdb", "prometheus-cpp": "#d9822b", "thread_local add": "#8a94a6",
          "shared fetch_add": "#c9ced8", "bare handler": "#8a94a6", "metrics off": "#9dbbef"}


def save(fig, path):
    # No date and fixed ids: regenerating unchanged figures gives unchanged files.
    plt.rcParams["svg.hashsalt"] = "bench-report"
    fig.savefig(path, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    print(path)


def hot_path(rows, path):
    series = [("ours", "ours"), ("prometheus-cpp", "prometheus_cpp"),
              ("thread_local add", "thread_local_add"), ("shared fetch_add", "shared_fetch_add")]
    labels = [f"{r['op']}\n{r['threads']} thread{'s' if r['threads'] > 1 else ''}" for r in rows]
    fig, ax = plt.subplots(figsize=(9, 0.62 * len(rows) + 1.4))
    height = 0.8 / len(series)
    for k, (name, key) in enumerate(series):
        ys = [i + (k - (len(series) - 1) / 2) * height for i in range(len(rows))]
        vals = [r.get(key) or 0 for r in rows]
        ax.barh(ys, vals, height=height, color=COLORS[name], label=name)
        for y, v in zip(ys, vals):
            if v:
                ax.text(v * 1.05, y, f"{v:.3g} ns", va="center", fontsize=7)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("CPU time per operation (ns, log scale; shorter is better)")
    ax.set_title("Hot path: ours vs prometheus-cpp vs the baselines (one run)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.grid(axis="x", which="both", alpha=0.3)
    save(fig, path)


def memory(rows, path):
    fig, ax = plt.subplots(figsize=(7, 2.6))
    ys = range(len(rows))
    ours = [r["ours"] or 0 for r in rows]
    per_thread = [r.get("ours_per_thread") or 0 for r in rows]
    peer = [r["prometheus_cpp"] or 0 for r in rows]
    ax.barh([y - 0.2 for y in ys], ours, height=0.4, color=COLORS["ours"], label="ours (heap)")
    ax.barh([y - 0.2 for y in ys], per_thread, left=ours, height=0.4, color="#9dbbef",
            label="ours, per writing thread (shard)")
    ax.barh([y + 0.2 for y in ys], peer, height=0.4, color=COLORS["prometheus-cpp"],
            label="prometheus-cpp (heap)")
    for y, a, b, c in zip(ys, ours, per_thread, peer):
        ax.text(a + b, y - 0.2, f" {a + b:,.0f} B", va="center", fontsize=7)
        ax.text(c, y + 0.2, f" {c:,.0f} B", va="center", fontsize=7)
    ax.set_yticks(list(ys))
    ax.set_yticklabels([r["metric"] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("bytes per series (one writing thread)")
    ax.set_title("Memory per series", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    save(fig, path)


def ingest(rows, path):
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    names = [r["scenario"] for r in rows]
    vals = [r["events_per_second"] for r in rows]
    colors = [COLORS["bare handler"] if "bare" in n else
              COLORS["metrics off"] if "no-metrics" in n else COLORS["ours"] for n in names]
    ax.barh(range(len(rows)), vals, color=colors)
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v:,.0f}", va="center", fontsize=7)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("acknowledged events per second (wrk, keep-alive; longer is better)")
    ax.set_title("HTTP ingest vs the bare cpp-httplib handler (the ceiling)", fontsize=10)
    save(fig, path)


def main():
    with open(sys.argv[1]) as f:
        data = json.load(f)
    prefix = sys.argv[2]
    if data.get("hot_path"):
        hot_path(data["hot_path"], prefix + "-hot-path.svg")
    if data.get("memory"):
        memory(data["memory"], prefix + "-memory.svg")
    if data.get("ingest"):
        ingest(data["ingest"], prefix + "-ingest.svg")


if __name__ == "__main__":
    main()
