#!/usr/bin/python3
"""Prints the Markdown result tables of BENCHMARKS.md from scenario JSON files.

    bench/report.py bench/results/published/*.json
"""

import json
import sys

import targets  # bench/targets.py: the speed targets
from targets import verdict


def f(x, digits=3):
    return "-" if x is None else f"{x:.{digits}f}"


def ctx_per_call(doc, row):
    """The median context switches per call of a row's runs (older files: from the runs)."""
    if row.get("gateway_ctx_per_call") is not None:
        return row["gateway_ctx_per_call"]
    switches = []
    for run in doc["data"]["runs"]:
        if run["label"].startswith(f"overhead {row['op']} {row['rate']:g}/s"):
            for res in run["results"]:
                gw = res["processes"].get("gateway")
                if res["target"] == "gateway" and gw:
                    switches.append(gw.get("context_switches_per_call"))
    switches = sorted(s for s in switches if s is not None)
    return switches[len(switches) // 2] if switches else None


def overhead(doc):
    out = ["| op | calls/s | direct p50 | gateway p50 | added p50 | direct p99 | gateway p99 "
           "| added p99 | gateway CPU-s / 1k calls | gateway context switches / call |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in doc["data"]["rows"] + doc["data"].get("floor", []):
        rate = int(r["rate"])
        sw = ctx_per_call(doc, r)
        out.append(
            f"| {r['op']} | {r['rate']:g} | {f(r.get('direct_p50'))} | {f(r['gateway_p50'])} | "
            f"{f(r.get('added_p50'))} {verdict(r.get('added_p50'), targets.ADDED_P50_MS.get(rate))} | "
            f"{f(r.get('direct_p99'))} | {f(r['gateway_p99'])} | {f(r.get('added_p99'))} "
            f"{verdict(r.get('added_p99'), targets.ADDED_P99_MS.get(rate))} | "
            f"{f(r['gateway_cpu_s_per_1k'], 3)} "
            f"{verdict(r['gateway_cpu_s_per_1k'], targets.CPU_S_PER_1K.get(rate))} | {f(sw, 1)} "
            f"{verdict(sw, targets.CTX_PER_CALL.get(rate))} |")
    breakdown = []
    for r in doc["data"]["rows"] + doc["data"].get("floor", []):
        parts = []
        for key, ctx in r.items():
            if key.startswith("thread ") and key.endswith(" ctx_per_call") and (ctx or 0) >= 0.05:
                name = key[len("thread "):-len(" ctx_per_call")]
                cpu = r.get(f"thread {name} cpu_s_per_1k")
                parts.append((ctx, f"`{name}` {f(ctx, 2)} ({f(cpu, 3)} CPU-s / 1k)"))
        if parts:
            breakdown.append(f"- {r['op']} at {r['rate']:g} calls/s: " +
                             ", ".join(p for _, p in sorted(parts, reverse=True)))
    if breakdown:
        out += ["", "Context switches per call by gateway thread (median of the repeats):", ""]
        out += breakdown
    return "\n".join(out)


def throughput(doc):
    out = ["| calls outstanding | direct calls/s | gateway calls/s | gateway / direct | direct p50 ms "
           "| gateway p50 ms | gateway CPU µs / call | calls per gateway CPU-second |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in doc["data"]["rows"]:
        cpu = r.get("gateway_cpu_s_per_1k")
        us = None if cpu is None else cpu * 1000
        out.append(f"| {r['concurrency']} | {f(r['direct_per_s'], 0)} | {f(r['gateway_per_s'], 0)} "
                   f"| {f(r['ratio'], 2)} | {f(r['direct_p50'])} | {f(r['gateway_p50'])} "
                   f"| {f(us, 1)} {verdict(us, targets.SATURATED_CPU_US_PER_CALL)} "
                   f"| {f(None if not cpu else 1000 / cpu, 0)} |")
    return "\n".join(out)


def footprint(doc):
    d = doc["data"]
    return "\n".join([
        "| measure | value |", "|---|---:|",
        f"| start-up to SERVING (median of {len(d['startup_ms'])}) | {f(d['startup_ms_median'], 1)} ms |",
        f"| start-up runs | {', '.join(f(s, 1) for s in d['startup_ms'])} ms |",
        f"| resident memory idle | {f(d['rss_idle_mb'], 1)} MB |",
        f"| resident memory at {d['load_rate']:g} calls/s (peak) | {f(d['rss_under_load_peak_mb'], 1)} MB |",
        f"| resident memory after the load | {f(d['rss_after_load_mb'], 1)} MB |",
        f"| calls/s achieved during the load | {f(d['load_ok_per_s'], 0)} |",
    ])


def overload(doc):
    ops = [doc["data"]] if "budget" in doc["data"] else list(doc["data"].values())
    head = "| measure | " + " | ".join(d.get("op", "identify") for d in ops) + " |"
    rows = [head, "|---|" + "---:|" * len(ops)]

    def row(name, fn):
        rows.append(f"| {name} | " + " | ".join(fn(d) for d in ops) + " |")

    row("budget (gateway and emulator)", lambda d: f"{d['budget']} (+{d['margin']} margin)")
    row("offered (open loop)", lambda d: f"{f(d['offered_per_s'], 0)} calls/s, deadline {d['deadline']}")
    row("upstream accepted, steady rate", lambda d: f"{f(d['upstream_steady_rate_per_s'], 1)} calls/s")
    row("budget utilisation: of COUNT/WINDOW", lambda d: f"{f(100 * d['budget_utilisation'], 1)} %"
        if d["budget_utilisation"] else "-")
    row("... of COUNT/(WINDOW + margin)", lambda d: f"{f(100 * d['margin_adjusted_utilisation'], 1)} %"
        if d.get("margin_adjusted_utilisation") else "-")
    row("most upstream requests in any window", lambda d: str(d["max_accepted_in_any_window"]))
    row("upstream 429s", lambda d: str(d["upstream_429"]))
    row("caller status codes", lambda d: ", ".join(f"{k} {v}" for k, v in d["caller_codes"].items()))
    row("caller OK calls/s", lambda d: f(d["caller_ok_per_s"], 1))
    row("caller latency, all: p50 / p99 / max ms", lambda d: " / ".join(
        f(d["caller_latency_ms"][k], 1) for k in ("p50", "p99", "max")))
    row("caller latency, OK: p50 / p99 / max ms", lambda d: " / ".join(
        f(d["caller_ok_latency_ms"][k], 1) for k in ("p50", "p99", "max")))
    row("gateway peak RSS", lambda d: f"{f(d.get('gateway_rss_peak_mb'), 1)} MB")
    return "\n".join(rows)


def jobs(doc):
    d = doc["data"]
    out = ["| measure | value |", "|---|---:|",
           f"| driven through | {d.get('mode', 'jobs_bench_test (in-process gateway)')} |"]
    w = d.get("watch")
    if w:
        out += [
            f"| watchers / jobs | {w['subscribers']} / {w['jobs']} |",
            f"| upstream job reads per poll interval | {f(w['upstream_reads_per_interval'], 1)} |",
            f"| gateway memory growth with the watches open | {f(w['rss_growth_mb'], 1)} MB "
            f"({f(w['kb_per_watch'], 1)} KB per watch) |",
            f"| change at the emulator -> every watcher: {'min / ' if 'change_delay_ms_min' in w else ''}"
            f"p50 / p99 / max | "
            + (f"{f(w['change_delay_ms_min'], 0)} / " if "change_delay_ms_min" in w else "")
            + f"{f(w['change_delay_ms_p50'], 0)} / {f(w['change_delay_ms_p99'], 0)} / "
            f"{f(w['change_delay_ms_max'], 0)} ms |"]
    i = d.get("import")
    if i:
        out += [f"| import of {f(i['megabytes'], 1)} MB NDJSON: throughput | {f(i['mb_per_s'], 1)} MB/s |",
                f"| import: peak gateway memory growth (target < 16 MB) | {f(i['peak_rss_growth_mb'], 1)} MB |"]
    return "\n".join(out)


def enqueue(doc):
    d = doc["data"]
    lines = ["| RPC | callers | RPCs/s | calls/s | p50 ms | p99 ms | append p50 / p99 ms (gateway) "
             "| mean fsync ms | appends per fsync | client CPU ms per RPC | cores busy: gateway / emulator "
             "/ client | load 1m |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for lv in d["levels"]:
        s = lv["server"]
        lines.append(f"| {lv['method']} | {lv['concurrency']} | {lv['rpcs_per_s']:,.0f} | "
                     f"{lv['calls_per_s']:,.0f} | {f(lv['p50_ms'], 2)} | {f(lv['p99_ms'], 2)} | "
                     f"{f(s['append_p50_ms'], 2)} / {f(s['append_p99_ms'], 2)} | "
                     f"{f(s['fsync_mean_ms'], 2)} | {f(s['appends_per_fsync'], 1)} | "
                     f"{f(lv['client_cpu_ms_per_rpc'], 3)} | "
                     + " / ".join(f(lv.get("cpu_cores", {}).get(p), 2)
                                  for p in ("gateway", "emulator", "client"))
                     + f" | {lv['loadavg_1m']:.2f} |")
    lines.append(f"\nQueue folder on {d['queue_dir_fstype']}; delivered meanwhile "
                 f"{d['delivered_by_end']:,.0f}, backlog at the end {d['backlog_at_end']:,.0f}.")
    return "\n".join(lines)


def burst(doc):
    out = ["| scenario | target | sent | reached upstream | p50 ms | p90 ms | p99 ms | max ms "
           "| answers |",
           "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, by_target in doc["data"].items():
        for target in ("gateway", "direct"):
            r = by_target.get(target)
            if not r:
                continue
            t = r["to_upstream_ms"]
            answers = ", ".join(f"{code} {n}" for code, n in sorted(r["codes"].items()))
            out.append(f"| {name} | {target} | {sum(r['codes'].values())} | {r['accepted']} "
                       f"| {f(t['p50'], 1)} | {f(t['p90'], 1)} | {f(t['p99'], 1)} "
                       f"| {f(t['max'], 1)} | {answers} |")
    return "\n".join(out)


def main():
    for path in sys.argv[1:]:
        with open(path) as fh:
            doc = json.load(fh)
        m = doc["machine"]
        version = doc.get("gateway_version", "")
        flags = " ".join(doc.get("gateway_flags") or [])
        print(f"### {doc['scenario']} ({doc['utc']}, {version}{', ' + flags if flags else ''}, "
              f"tree {doc['git']}, load average "
              f"{m['loadavg'][0]:.2f} before, {doc['loadavg_after'][0]:.2f} after)\n")
        if doc["data"] is None:
            print("failed: " + "; ".join(doc["failures"]) + "\n")
            continue
        render = globals().get(doc["scenario"])
        if render is None:
            print(f"(no table for scenario '{doc['scenario']}'; see its JSON)\n")
            continue
        print(render(doc) + "\n")


if __name__ == "__main__":
    main()
