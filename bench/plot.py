#!/usr/bin/python3
"""Draws the benchmark pictures of BENCHMARKS.md from scenario JSON files (bench/run.sh).

    bench/plot.py [--out=bench/results/plots] bench/results/published/*.json

For each file it writes, under --out, PNGs named after the file:
  overload-<time>-upstream.png   upstream requests per second against the budget over time,
                                 one panel per op (needs `upstream_series`, recorded by run.py)
  burst-<time>-upstream.png      the same for the burst scenario: one panel per burst
                                 scenario and target (through the gateway, then direct to an
                                 emulator that answers the excess 429); files written before
                                 run.py recorded `upstream_series` there have nothing to draw
  overhead-<time>-latency.png    caller latency distributions through the gateway beside
                                 direct calls, one panel per op and rate (needs
                                 `latency_cdf_ms`, written by upgw-bench; older files fall back
                                 to their few summary percentiles)
Scenarios with nothing to draw are named on stderr and skipped. Matplotlib comes from Debian
(python3-matplotlib, scripts/install-deps.sh) and draws with the Agg backend: no display needed.
Exit status: 0 when every file was read (even with nothing to draw), 1 on an unreadable file.
"""

import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import matplotlib.ticker  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLOURS = {"direct": "tab:blue", "gateway": "tab:orange"}


# --------------------------------------------------------------------------------------------
# Upstream rate against the budget


def trailing_window_rate(times, window_s, step_s, end_s):
    """Requests in the window (t - window_s, t] divided by window_s, at t = 0, step_s, ...
    up to end_s: the quantity a COUNT/WINDOW budget bounds by COUNT/window_s. `times` sorted.
    Returns (ts, rates)."""
    ts, rates = [], []
    lo = hi = 0
    n = int(end_s / step_s) + 1
    for i in range(n):
        t = i * step_s
        while hi < len(times) and times[hi] <= t:
            hi += 1
        while lo < hi and times[lo] <= t - window_s:
            lo += 1
        ts.append(t)
        rates.append((hi - lo) / window_s)
    return ts, rates


def bin_rate(times, bin_s, end_s):
    """Requests per second in consecutive bins of bin_s seconds from 0: (bin starts, rates)."""
    n = max(1, int(end_s / bin_s) + 1)
    counts = [0] * n
    for t in times:
        if 0 <= t < n * bin_s:
            counts[int(t / bin_s)] += 1
    return [i * bin_s for i in range(n)], [c / bin_s for c in counts]


def draw_upstream(ax, name, series):
    accepted, refused = series["accepted_s"], series.get("refused_s", [])
    window_s, count = series["window_s"], series["budget_count"]
    last = max(accepted + refused + [0])
    # Up to one window past the last request (the window draining), but no more than a fifth
    # of the run's span: a 30 ms burst under a 60 s window is drawn over its own span.
    end_s = last + min(window_s, 0.2 * last + 0.01) if last > 0 else window_s
    budget = count / window_s
    bin_s = min(window_s / 5, end_s / 40)
    xs, ys = bin_rate(accepted, bin_s, end_s)
    ax.step(xs, ys, where="post", color="tab:gray", alpha=0.5, linewidth=0.7,
            label=f"accepted per {bin_s * 1000:.3g} ms bin, as /s" if bin_s < 1 else
            f"accepted per {bin_s:.3g} s bin, as /s")
    ts, rates = trailing_window_rate(accepted, window_s, min(0.01, window_s / 100, end_s / 400),
                                     end_s)
    ax.plot(ts, rates, color="tab:green", linewidth=1.8,
            label=f"accepted in the last {window_s:g} s window, as /s")
    ax.axhline(budget, color="tab:red", linestyle="--", linewidth=1.2,
               label=f"budget {count}/{window_s:g}s = {budget:g}/s")
    if refused:
        ax.plot(refused, [budget] * len(refused), "x", color="black",
                label=f"upstream 429 ({len(refused)})")
    warmup = series.get("warmup_s")
    if warmup:
        ax.axvspan(0, warmup, color="tab:gray", alpha=0.1, label="load generator warm-up")
    ax.set_title(name)
    ax.set_xlim(0, end_s)
    # The offered rate (in the title) stays off the axis: at 5x the budget it would flatten
    # what happens around the budget. A burst sent at once reaches many times the budget's
    # average rate within a bin (a bin holds at most 5x the budget while the window is kept):
    # above 10x the axis turns logarithmic beyond the budget, so the budget stays readable.
    top = max([budget] + ys + rates)
    if top > 10 * budget:
        ax.set_yscale("symlog", linthresh=budget)
        ax.set_ylim(0, top * 2)
    else:
        ax.set_ylim(0, top * 1.25)
    ax.set_ylabel("upstream requests / s")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1))


def plot_upstream(doc, panels, path):
    """panels: [(title, upstream_series)]. One panel per series, stacked."""
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3.6 * len(panels)), squeeze=False)
    for ax, (name, series) in zip(axes[:, 0], panels):
        draw_upstream(ax, name, series)
    axes[-1, 0].set_xlabel("seconds since the load began")
    fig.suptitle(f"{doc['scenario']}: upstream requests per second against the budget "
                 f"({doc['utc']}, tree {doc['git']}, load average "
                 f"{doc['machine']['loadavg'][0]:.1f})", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def series_panels(data, title):
    """Every dict under data (one level deep) that carries upstream_series, with its title."""
    panels = []
    if isinstance(data, dict) and "upstream_series" in data:
        panels.append((title(data, ""), data["upstream_series"]))
    for key, value in (data or {}).items():
        if isinstance(value, dict) and "upstream_series" in value:
            panels.append((title(value, key), value["upstream_series"]))
    return panels


def overload(doc):
    panels = series_panels(doc["data"], lambda d, key: (
        f"{d.get('op', key or 'identify')}: {d['offered_per_s']:g} calls/s offered against "
        f"{d['budget']} (+{d['margin']} margin), deadline {d['deadline']}"))
    return [("upstream", lambda path: plot_upstream(doc, panels, path))] if panels else []


BURST_TARGETS = {"gateway": "through the gateway",
                 "direct": "direct to an emulator of its own (the excess answered 429)"}


def burst_panels(doc):
    """[(title, upstream_series)] of a burst result: bench/run.sh burst records each burst
    scenario under its name, and under it each target's percentiles and upstream_series."""
    panels = []
    for name, sub in (doc["data"] or {}).items():
        for target, res in (sub.items() if isinstance(sub, dict) else []):
            if isinstance(res, dict) and "upstream_series" in res:
                panels.append((f"{name}: {BURST_TARGETS.get(target, target)}",
                               res["upstream_series"]))
    return panels


def burst(doc):
    panels = burst_panels(doc)
    return [("upstream", lambda path: plot_upstream(doc, panels, path))] if panels else []


# --------------------------------------------------------------------------------------------
# Caller latency distributions


def cdf_points(result):
    """[(ms, quantile)] of a load generator result: its latency_cdf_ms grid, else the summary
    percentiles (files written before the grid existed). The quantile 0 and 1 points are kept
    out: the logit axis cannot show them."""
    if "latency_cdf_ms" in result:
        pts = [(ms, q) for q, ms in result["latency_cdf_ms"]]
    else:
        lat = result["total"]["latency_ms"]
        pts = [(lat[k], q) for k, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99),
                                        ("p999", 0.999)) if k in lat]
    return [(ms, q) for ms, q in pts if 0 < q < 1 and ms > 0]


def overhead(doc):
    rows = (doc["data"] or {}).get("rows") or []
    runs = (doc["data"] or {}).get("runs") or []
    if not rows or not runs:
        return []

    def draw(path):
        cols = min(2, len(rows))
        nrows = (len(rows) + cols - 1) // cols
        fig, axes = plt.subplots(nrows, cols, figsize=(6 * cols, 4.2 * nrows), squeeze=False)
        for ax in axes.flat[len(rows):]:
            ax.set_visible(False)
        coarse = False
        for ax, row in zip(axes.flat, rows):
            prefix = f"overhead {row['op']} {row['rate']:g}/s"
            labelled = set()
            for run in runs:
                if not run["label"].startswith(prefix + " ") and run["label"] != prefix:
                    continue
                for res in run["results"]:
                    pts = cdf_points(res)
                    if not pts:
                        continue
                    coarse |= "latency_cdf_ms" not in res
                    target = res["target"]
                    ax.plot([p[0] for p in pts], [p[1] for p in pts],
                            marker="" if "latency_cdf_ms" in res else "o", markersize=3,
                            color=COLOURS.get(target, "tab:gray"), linewidth=1.2, alpha=0.8,
                            label=None if target in labelled else target)
                    labelled.add(target)
            ax.set_xscale("log")
            ax.set_yscale("logit")
            ax.set_ylim(0.01, 0.9999)
            ticks = [0.1, 0.5, 0.9, 0.99, 0.999, 0.9999]
            ax.set_yticks(ticks)
            ax.set_yticklabels(["p10", "p50", "p90", "p99", "p99.9", "p99.99"])
            ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xlabel("caller latency, ms (log)")
            ax.set_title(f"{row['op']} at {row['rate']:g} calls/s "
                         f"(added p50 {row['added_p50']:.3f} ms, p99 {row['added_p99']:.3f} ms)",
                         fontsize="small")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize="small", loc="lower right")
        note = "; few points: summary percentiles only" if coarse else ""
        fig.suptitle(f"overhead: latency distribution, gateway beside direct, one line per repeat "
                     f"({doc['utc']}, tree {doc['git']}, load average "
                     f"{doc['machine']['loadavg'][0]:.1f}{note})", fontsize="small")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)

    return [("latency", draw)]


PLOTTERS = {"overload": overload, "burst": burst, "overhead": overhead}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results", "plots"),
                        help="folder for the PNGs")
    parser.add_argument("results", nargs="+", help="scenario JSON files from bench/run.sh")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    status = 0
    for path in args.results:
        try:
            with open(path) as f:
                doc = json.load(f)
            scenario = doc["scenario"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            print(f"plot: {path}: not a scenario result: {e}", file=sys.stderr)
            status = 1
            continue
        plotter = PLOTTERS.get(scenario)
        figures = plotter(doc) if plotter and doc.get("data") else []
        if not figures:
            print(f"plot: {path}: nothing to draw for {scenario}", file=sys.stderr)
        stem = os.path.splitext(os.path.basename(path))[0]
        for kind, draw in figures:
            png = os.path.join(args.out, f"{stem}-{kind}.png")
            draw(png)
            print(png)
    return status


if __name__ == "__main__":
    sys.exit(main())
