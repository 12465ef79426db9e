#!/usr/bin/env python3
"""Writes bench/RESULTS.md: ours vs prometheus-cpp vs the baselines, every ratio from one run.

Called by tools/bench-report.sh, which documents the options. Reads Google Benchmark JSON (from
running the binary, or --from-json FILE), takes the median of the repetitions of each benchmark,
and writes one comparison table plus memory, store and callgrind sections. Times are CPU time
per operation (less disturbed than wall time by other tenants of a shared machine). An HTTP ingest
section that tools/ingest-bench.sh --out put in the file (between <!-- ingest:begin --> and
<!-- ingest:end -->) comes from another run and is kept verbatim at the end."""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--binary", default="build/bench/metrics_bench")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--min-time", default="0.2")
    p.add_argument("--filter", default="")
    p.add_argument("--from-json", help="use this benchmark JSON instead of running the binary")
    p.add_argument("--callgrind", help="text output of tools/callgrind-budget.sh to include")
    p.add_argument("--out", default="bench/RESULTS.md")
    return p.parse_args()


def run_benchmarks(args):
    if args.from_json:
        with open(args.from_json) as f:
            return json.load(f)
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"bench-report: no benchmark binary at {args.binary} (build the bench targets)")
    fd, out = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    cmd = [args.binary, f"--benchmark_repetitions={args.reps}",
           f"--benchmark_min_time={args.min_time}", f"--benchmark_out={out}",
           "--benchmark_out_format=json"]
    if args.filter:
        cmd.append(f"--benchmark_filter={args.filter}")
    print("bench-report: " + " ".join(cmd), file=sys.stderr)
    rc = subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode
    try:
        with open(out) as f:
            data = json.load(f)
    finally:
        os.unlink(out)
    if rc != 0:
        sys.exit(f"bench-report: {args.binary} exited with {rc}")
    return data


class Medians:
    """Median CPU ns/op and median counters of each benchmark's repetitions."""

    def __init__(self, data):
        self.ns, self.counters, self.reps = {}, {}, {}
        runs, counters = {}, {}
        for b in data.get("benchmarks", []):
            if b.get("run_type") == "aggregate" or b.get("error_occurred"):
                continue
            name = b.get("run_name", b["name"])
            unit = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
            runs.setdefault(name, []).append(b["cpu_time"] * unit)
            for k, v in b.items():
                if isinstance(v, (int, float)) and k not in (
                        "real_time", "cpu_time", "iterations", "threads", "repetitions",
                        "repetition_index", "family_index", "per_family_instance_index"):
                    counters.setdefault(name, {}).setdefault(k, []).append(v)
        for name, v in runs.items():
            self.ns[name] = statistics.median(v)
            self.reps[name] = len(v)
        for name, ks in counters.items():
            # Memory benchmarks measure growth: only the first repetition starts from a process
            # that has not committed those pages yet, so take the largest, not the median.
            pick = max if name.startswith("BM_Memory_") else statistics.median
            self.counters[name] = {k: pick(v) for k, v in ks.items()}

    def find(self, prefix, threads=None, has=""):
        """The benchmark whose name starts with prefix (and has `has`, and ends with threads:N)."""
        for name in sorted(self.ns):
            if name.split("/")[0] != prefix.split("/")[0] or not name.startswith(prefix):
                continue
            if has and has not in name:
                continue
            if threads is not None and not name.endswith(f"threads:{threads}"):
                continue
            return name
        return None

    def get(self, prefix, threads=None, has=""):
        name = self.find(prefix, threads, has)
        return self.ns.get(name) if name else None

    def counter(self, prefix, key, has=""):
        name = self.find(prefix, None, has)
        return self.counters.get(name, {}).get(key) if name else None


def fmt_ns(v):
    if v is None:
        return "—"
    if v >= 1e6:
        return f"{v / 1e6:.2f} ms"
    if v >= 1e3:
        return f"{v / 1e3:.2f} µs"
    return f"{v:.2f} ns"


def fmt_ratio(num, den, target=None, higher_is_better=True):
    if num is None or den is None or den == 0:
        return "—"
    r = num / den
    s = f"**{r:.1f}×**" if r >= 10 else f"**{r:.2f}×**"
    if target is not None:
        ok = r >= target if higher_is_better else r <= target
        s += f" ({'≥' if higher_is_better else '≤'} {target}: {'ok' if ok else 'SHORT'})"
    return s


# Shorter operation names for the charts' axis.
CHART_NAMES = {
    "Counter increment (bound handle)": "Counter::Inc",
    "Label lookup + increment (`WithLabelValues` vs `Family::Add`)": "WithLabelValues + Inc",
    "Histogram observe (prometheus-cpp with 10 buckets)": "Observe (10 buckets)",
    "Histogram observe (prometheus-cpp with 40 buckets)": "Observe (40 buckets)",
}


def ingest_rows(section):
    """(scenario, events/s) from the ingest section's table rows."""
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 5 or not cells[0].startswith("("):
            continue
        try:
            rows.append({"scenario": cells[0].replace("`", ""),
                         "events_per_second": float(cells[4].replace(",", ""))})
        except ValueError:
            continue
    return rows


def draw_charts(charts, out):
    """Runs tools/bench-charts.py with Debian's python3 (where python3-matplotlib lives); returns
    the files it wrote, or [] (with a warning) when it cannot."""
    fd, data = tempfile.mkstemp(suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(charts, f)
    prefix = out[:-3] if out.endswith(".md") else out
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench-charts.py")
    try:
        r = subprocess.run(["/usr/bin/python3", script, data, prefix], capture_output=True,
                           text=True)
    except OSError as e:
        print(f"bench-report: warning: no charts ({e})", file=sys.stderr)
        return []
    finally:
        os.unlink(data)
    if r.returncode != 0:
        print(f"bench-report: warning: no charts (bench-charts.py: {r.stderr.strip()[-400:]})",
              file=sys.stderr)
        return []
    return [line for line in r.stdout.splitlines() if line.endswith(".svg")]


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_describe():
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


INGEST_BEGIN = "<!-- ingest:begin -->"
INGEST_END = "<!-- ingest:end -->"


def existing_ingest_section(path):
    """The HTTP ingest section of the file being replaced, markers included, or None.

    tools/ingest-bench.sh --out writes it between the markers; it comes from another run (wrk
    against the server), which this report does not redo, so it is kept verbatim at the end."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    begin = text.find(INGEST_BEGIN)
    end = text.find(INGEST_END, begin + 1) if begin != -1 else -1
    if begin == -1 or end == -1:
        return None
    return text[begin:end + len(INGEST_END)] + "\n"


def main():
    args = parse_args()
    data = run_benchmarks(args)
    m = Medians(data)
    ctx = data.get("context", {})
    reps = max(m.reps.values()) if m.reps else 0
    lines = []
    charts = {"hot_path": [], "memory": [], "ingest": []}
    w = lines.append
    w("# Benchmark results")
    w("")
    w("Written by `tools/bench-report.sh`; do not edit by hand. Every ratio in a row comes from one")
    w("run of `build/bench/metrics_bench` (ours and prometheus-cpp in the same binary, one process),")
    w(f"median of {reps} repetitions, CPU time per operation. Ratios travel between machines far")
    w("better than the absolute times, which are this machine's.")
    w("")
    w(f"- Date: {ctx.get('date', datetime.datetime.now().isoformat(timespec='seconds'))}")
    w(f"- CPU: {cpu_model()} — {ctx.get('num_cpus', os.cpu_count())} CPUs, "
      f"load average at start {', '.join(f'{x:.2f}' for x in ctx.get('load_avg', []))}")
    w(f"- Commit: {git_describe()}; {platform.system()} {platform.release()}")
    w("")
    w("## Hot path: ours vs prometheus-cpp vs the baselines")
    w("")
    w("`thread_local add` is a plain `++` on a thread_local integer (the floor); `shared fetch_add`")
    w("is one atomic shared by all threads (what a naive counter costs under contention).")
    w("")
    w("| operation | threads | ours | prometheus-cpp | thread_local add | shared fetch_add "
      "| prometheus-cpp ÷ ours | ours ÷ thread_local add |")
    w("|---|---|---|---|---|---|---|---|")
    rows = [
        ("Counter increment (bound handle)", "BM_Counter_Inc", "BM_PromCpp_Counter_Increment", "",
         {1: None, 2: 20}, 2),
        ("Label lookup + increment (`WithLabelValues` vs `Family::Add`)",
         "BM_Counter_WithLabelValues_Inc", "BM_PromCpp_Family_Add_Increment", "", {1: 10, 2: None},
         None),
        ("Histogram observe (prometheus-cpp with 10 buckets)", "BM_Histogram_Observe",
         "BM_PromCpp_Histogram_Observe", "/10/", {1: 10, 2: 30}, 4),
        ("Histogram observe (prometheus-cpp with 40 buckets)", "BM_Histogram_Observe",
         "BM_PromCpp_Histogram_Observe", "/40/", {1: None, 2: None}, None),
    ]
    for label, ours_name, peer_name, peer_has, peer_target, base_target in rows:
        for t in (1, 2):
            ours = m.get(ours_name, t)
            peer = m.get(peer_name, t, peer_has)
            tls = m.get("BM_Baseline_ThreadLocalAdd", t)
            shared = m.get("BM_Baseline_SharedFetchAdd", t)
            if ours is None and peer is None:
                continue
            w(f"| {label} | {t} | {fmt_ns(ours)} | {fmt_ns(peer)} | {fmt_ns(tls)} | "
              f"{fmt_ns(shared)} | {fmt_ratio(peer, ours, peer_target.get(t))} | "
              f"{fmt_ratio(ours, tls, base_target, higher_is_better=False)} |")
            charts["hot_path"].append({"op": CHART_NAMES.get(label, label), "threads": t,
                                       "ours": ours, "prometheus_cpp": peer,
                                       "thread_local_add": tls, "shared_fetch_add": shared})
    for n in (1000, 10000):
        ours = m.get("BM_Scrape_Text", None, f"/{n}")
        peer = m.get("BM_PromCpp_Collect_Serialize", None, f"/{n}")
        if ours is None and peer is None:
            continue
        target = 10 if n == 10000 else None
        w(f"| Scrape {n:,} counter series + 100 histograms to text | 1 | {fmt_ns(ours)} | "
          f"{fmt_ns(peer)} | | | {fmt_ratio(peer, ours, target)} | |")
    gz = m.get("BM_Scrape_Text_Gzip", None, "/10000")
    if gz is not None:
        w(f"| … the same, gzipped (ours only) | 1 | {fmt_ns(gz)} | | | | | |")
    w("")
    w("Targets in parentheses are DESIGN.md's budgets; `SHORT` marks a miss in this run.")
    w("")

    # Protobuf exposition: the same 10,000-series shape, beside our text and prometheus-cpp's, and
    # our wire encoder beside libprotobuf's generated classes (exposition/protobuf_format.h).
    pb = m.get("BM_Scrape_Protobuf", None, "/10000")
    if pb is not None:
        text = m.get("BM_Scrape_Text", None, "/10000")
        peer = m.get("BM_PromCpp_Collect_Serialize", None, "/10000")
        lib = m.get("BM_Scrape_Protobuf_Libprotobuf", None, "/10000")
        pb_gz = m.get("BM_Scrape_Protobuf_Gzip", None, "/10000")
        text_gz = m.get("BM_Scrape_Text_Gzip", None, "/10000")

        def nbytes(name, counter):
            v = m.counter(name, counter, "/10000")
            return f"{v / 1024:,.0f} KiB" if v is not None else ""

        w("## Scrape formats: 10,000 counter series + 100 histograms (with native buckets)")
        w("")
        w("| format | time | ÷ our text | bytes | gzipped | gzipped time |")
        w("|---|---|---|---|---|---|")
        w(f"| our text 0.0.4 | {fmt_ns(text)} | 1 | {nbytes('BM_Scrape_Text', 'bytes')} | "
          f"{nbytes('BM_Scrape_Text_Gzip', 'gzip_bytes')} | {fmt_ns(text_gz)} |")
        w(f"| our protobuf (own wire encoder) | {fmt_ns(pb)} | "
          f"{fmt_ratio(pb, text, 1, higher_is_better=False)} | "
          f"{nbytes('BM_Scrape_Protobuf', 'bytes')} | "
          f"{nbytes('BM_Scrape_Protobuf_Gzip', 'gzip_bytes')} | {fmt_ns(pb_gz)} |")
        if lib is not None:
            w(f"| protobuf via libprotobuf messages | {fmt_ns(lib)} | {fmt_ratio(lib, text)} | "
              f"{nbytes('BM_Scrape_Protobuf_Libprotobuf', 'bytes')} | | |")
        if peer is not None:
            w(f"| prometheus-cpp text | {fmt_ns(peer)} | {fmt_ratio(peer, text)} | "
              f"{nbytes('BM_PromCpp_Collect_Serialize', 'bytes')} | | |")
        w("")
        w("Target in parentheses: protobuf no slower than our text (÷ our text ≤ 1).")
        w("")

    w("## Memory per series")
    w("")
    w("| metric | ours | prometheus-cpp |")
    w("|---|---|---|")
    c_ours = m.counter("BM_Memory_CounterSeries", "bytes_per_series")
    c_shard = m.counter("BM_Memory_CounterSeries", "shard_bytes_per_series_per_thread")
    c_peer = m.counter("BM_Memory_PromCpp_CounterSeries", "bytes_per_series")
    h_ours = m.counter("BM_Memory_HistogramSeries", "heap_bytes_per_series")
    h_comm = m.counter("BM_Memory_HistogramSeries", "committed_bytes_per_series_per_thread")
    h_res = m.counter("BM_Memory_HistogramSeries", "reserved_bytes_per_series_per_thread")
    h_peer = m.counter("BM_Memory_PromCpp_HistogramSeries", "heap_bytes_per_series")

    def b(v):
        return "—" if v is None else f"{v:,.0f} B"

    charts["memory"] = [
        {"metric": "counter series", "ours": c_ours, "ours_per_thread": c_shard,
         "prometheus_cpp": c_peer},
        {"metric": "histogram series", "ours": h_ours, "ours_per_thread": h_comm,
         "prometheus_cpp": h_peer}]
    w(f"| counter series (heap) | {b(c_ours)} + {b(c_shard)} per writing thread | {b(c_peer)} |")
    w(f"| histogram series (heap) | {b(h_ours)} + {b(h_comm)} committed ({b(h_res)} reserved) "
      f"per writing thread | {b(h_peer)} |")
    w("")

    w("## Event store")
    w("")
    w("| benchmark | per event |")
    w("|---|---|")
    for name in sorted(n for n in m.ns if n.startswith("BM_Store_Append")):
        c = m.counters.get(name, {})
        if "ns_per_event" in c:
            per = fmt_ns(c["ns_per_event"] * 1e9) + " (CPU)"
        elif "items_per_second" in c:
            per = f"{c['items_per_second']:,.0f} events/s (wall clock)"
        else:
            per = fmt_ns(m.ns[name])
        w(f"| `{name}` | {per} |")
    w("")
    w("`InstrumentationOnly<1>` is the store's metrics work per event for a lone appender,")
    w("`<8>` for batches of eight (group commit); the `_EveryBatch` variants leave out the")
    w("per-batch clock read, which under `FsyncPolicy::kEveryBatch` the writer makes anyway;")
    w("`Durable` is fsynced appends per second. DESIGN.md's budget: ≤ 25 ns per event.")
    w("")

    ingest = existing_ingest_section(args.out)
    charts["ingest"] = ingest_rows(ingest) if ingest else []
    drawn = draw_charts(charts, args.out)
    if drawn:
        w("## Charts")
        w("")
        w("Drawn by `tools/bench-charts.py` (python3-matplotlib) from the figures above; the ingest")
        w("chart from the HTTP ingest section at the end (another run, `tools/ingest-bench.sh`).")
        w("")
        for path in drawn:
            w(f"![{os.path.basename(path)}]({os.path.basename(path)})")
            w("")

    if args.callgrind:
        with open(args.callgrind) as f:
            table = f.read().strip()
        w("## Instructions per operation (callgrind; deterministic, checked in CI)")
        w("")
        w("From `tools/callgrind-budget.sh` against `bench/callgrind_budgets.txt`:")
        w("")
        w("```")
        w(table)
        w("```")
        w("")

    text = "\n".join(lines) + "\n"
    if ingest:
        text = text.rstrip("\n") + "\n\n" + ingest
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print(f"bench-report: wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
