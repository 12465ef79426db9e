#!/usr/bin/env python3
"""Renders the results of tools/ingest-bench.sh as the markdown section "## HTTP ingest (wrk,
keep-alive)", and with --out FILE puts it in FILE between <!-- ingest:begin --> and
<!-- ingest:end --> (replacing what is there, or appending the markers when absent).

Called by tools/ingest-bench.sh, which runs the servers and wrk and makes the correctness checks;
this only formats. The results file has one line per run of space-separated key=value fields
(name, kind, conns, epr, requests, duration_us, non2xx, connect, read, write, timeout, p50_us,
p99_us, stored, acked, metrics_sum, check)."""
import argparse
import datetime
import importlib.util
import os
import platform
import sys
import tempfile

BEGIN = "<!-- ingest:begin -->"
END = "<!-- ingest:end -->"

# name -> label, in table order.
SCENARIOS = [
    ("a", "(a) one event per request"),
    ("a-off", "(a) … `--no-metrics`"),
    ("b", "(b) 20 events per request"),
    ("b-off", "(b) … `--no-metrics`"),
    ("c", "(c) bare cpp-httplib handler, (a)'s load"),
    ("a-pg", "(a) … `--pg-url` (PostgreSQL 15, fsync on)"),
    ("b-pg", "(b) … `--pg-url` (PostgreSQL 15, fsync on)"),
]

# The targets the benchmark is held to (ok/SHORT marks them; a miss is reported, not fatal).
TARGET_A_EVENTS = 10_000
TARGET_A_OF_BARE = 0.60
TARGET_B_EVENTS = 150_000
TARGET_P99_MS = 25.0
TARGET_ON_OF_OFF = 0.97  # metrics on within 3 % of off


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--results", required=True)
    p.add_argument("--date", default=datetime.datetime.now().isoformat(timespec="seconds"))
    p.add_argument("--load", default="", help="load average at the start of the run")
    p.add_argument("--duration", type=int, required=True, help="seconds per wrk run")
    p.add_argument("--server-flags", default="")
    p.add_argument("--fs", default="", help="file system type of the data dirs")
    p.add_argument("--streams", default="", help="streams per wrk thread")
    p.add_argument("--out", help="file to put the section in (default: print it)")
    return p.parse_args()


def read_results(path):
    runs = {}
    with open(path) as f:
        for line in f:
            fields = dict(kv.split("=", 1) for kv in line.split())
            if "name" not in fields:
                continue
            for k, v in fields.items():
                if v.isdigit():
                    fields[k] = int(v)
            sec = fields["duration_us"] / 1e6 if fields.get("duration_us") else 0
            ok_requests = fields["requests"] - fields["non2xx"]
            fields["rps"] = fields["requests"] / sec if sec else 0.0
            fields["eps"] = ok_requests * fields["epr"] / sec if sec else 0.0
            fields["sock_errors"] = sum(fields[k] for k in ("connect", "read", "write", "timeout"))
            runs[fields["name"]] = fields
    return runs


# The machine header is bench-report.py's, so both reports describe a machine the same way.
_spec = importlib.util.spec_from_file_location(
    "bench_report", os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench-report.py"))
_bench_report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bench_report)
cpu_model = _bench_report.cpu_model
git_commit = _bench_report.git_describe


def n(v):
    return f"{v:,.0f}"


def ms(us):
    return f"{us / 1000:.2f} ms"


def mark(ok):
    return "ok" if ok else "SHORT"


def sock_errors(r):
    if not r["sock_errors"]:
        return "0"
    parts = [f"{k} {r[k]}" for k in ("connect", "read", "write", "timeout") if r[k]]
    return f"{r['sock_errors']:,} ({', '.join(parts)})"


def stored_vs_acked(r):
    if r["kind"] == "bare":
        # The bare handler stores nothing; its count is requests answered, against wrk's.
        return f"{n(r['stored'])} answered vs {n(r['requests'])} requests ({r['check']})"
    s = f"{n(r['stored'])} vs {n(r['acked'])}"
    if r.get("metrics_sum") not in (None, "-"):
        s += f"; /metrics {n(r['metrics_sum'])}"
    return s + f" ({r['check']})"


def section(args, runs):
    lines = []
    w = lines.append
    w("## HTTP ingest (wrk, keep-alive)")
    w("")
    w("Written by `tools/ingest-bench.sh`; do not edit by hand. Debian's `wrk` over keep-alive")
    cmd = " ".join(["eventstore-server --fsync every-batch", args.server_flags]).strip()
    w(f"connections to a fresh `{cmd}` per run, on a fresh data dir")
    w(f"({args.fs or 'unknown'} file system); `wrk -t2 --latency --timeout 10s`, {args.duration} s "
      "per run; `POST /streams/bench-<n>/events`")
    w(f"cycling over {args.streams or 'many'} streams per wrk thread, each event's `data` 100 bytes "
      "of JSON.")
    w("events/s counts acknowledged (2xx) events; \"stored (N) vs acked\" is the server's final")
    w("position after SIGTERM against 2xx responses × events/request (the check allows up to one")
    w("unacknowledged request per connection), and in the metrics-on runs the `/metrics` sum of")
    w("`events_stored_total` read before the SIGTERM, which must equal N; for the bare handler, the")
    w("requests it answered against wrk's count.")
    w("")
    w(f"- Date: {args.date}")
    w(f"- CPU: {cpu_model()} — nproc {os.cpu_count()}, load average at start {args.load or '?'}")
    w(f"- Commit: {git_commit()}; {platform.system()} {platform.release()}")
    w("")
    w("| scenario | connections | events/request | requests/s | events/s | p50 | p99 | non-2xx "
      "| errors | stored (N) vs acked |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for name, label in SCENARIOS:
        r = runs.get(name)
        if r is None:
            continue
        w(f"| {label} | {r['conns']} | {r['epr']} | {n(r['rps'])} | {n(r['eps'])} | "
          f"{ms(r['p50_us'])} | {ms(r['p99_us'])} | {n(r['non2xx'])} | {sock_errors(r)} | "
          f"{stored_vs_acked(r)} |")
    w("")
    w("Ratios and targets, all from this run (`SHORT` marks a miss):")
    w("")
    a, b, c = runs.get("a"), runs.get("b"), runs.get("c")
    a_off, b_off = runs.get("a-off"), runs.get("b-off")
    if a and c and c["rps"]:
        r = a["rps"] / c["rps"]
        w(f"- (a) ours ÷ bare handler, requests/s: **{r:.2f}** "
          f"(≥ {TARGET_A_OF_BARE:.2f}: {mark(r >= TARGET_A_OF_BARE)})")
    if a:
        w(f"- (a) events/s: **{n(a['eps'])}** (≥ {n(TARGET_A_EVENTS)}: "
          f"{mark(a['eps'] >= TARGET_A_EVENTS)})")
    if b:
        w(f"- (b) events/s: **{n(b['eps'])}** (≥ {n(TARGET_B_EVENTS)}: "
          f"{mark(b['eps'] >= TARGET_B_EVENTS)})")
    p99 = [f"{k} {ms(r['p99_us'])} ({mark(r['p99_us'] <= TARGET_P99_MS * 1000)})"
           for k, r in (("(a)", a), ("(b)", b)) if r]
    if p99:
        w(f"- p99 latency (≤ {TARGET_P99_MS:.0f} ms): " + ", ".join(p99))
    onoff = []
    for k, on, off in (("(a)", a, a_off), ("(b)", b, b_off)):
        if on and off and off["eps"]:
            r = on["eps"] / off["eps"]
            onoff.append(f"{k} **{r:.3f}** ({mark(r >= TARGET_ON_OF_OFF)})")
    if onoff:
        w(f"- metrics on ÷ off, events/s (≥ {TARGET_ON_OF_OFF}, i.e. within 3 %): "
          + ", ".join(onoff))
    else:
        w(f"- metrics on ÷ off, events/s (≥ {TARGET_ON_OF_OFF}): — (the `--no-metrics` runs were "
          "skipped)")
    return "\n".join(lines) + "\n"


def splice(path, block):
    """FILE with block between the markers: replaces an existing section, else appends one."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    begin, end = text.find(BEGIN), text.find(END)
    if begin != -1 and end > begin:
        rest = text[end + len(END):]
        if rest.startswith("\n"):  # the end of the old marker's line; block ends with its own
            rest = rest[1:]
        return text[:begin] + block + rest
    if text and not text.endswith("\n"):
        text += "\n"
    return text + ("\n" if text else "") + block


def main():
    args = parse_args()
    runs = read_results(args.results)
    if not runs:
        sys.exit("ingest-report: no runs in " + args.results)
    body = section(args, runs)
    if not args.out:
        sys.stdout.write(body)
        return
    block = f"{BEGIN}\n{body}{END}\n"
    text = splice(args.out, block)
    d = os.path.dirname(os.path.abspath(args.out))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".ingest-report.")
    try:
        mode = os.stat(args.out).st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    os.fchmod(fd, mode)  # mkstemp makes 0600; keep the file's own mode
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, args.out)  # readers never see a half-written file
    print(f"ingest-report: wrote the ingest section of {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
