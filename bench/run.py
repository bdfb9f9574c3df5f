#!/usr/bin/python3
"""Benchmark scenarios of userpilot-gateway (see BENCHMARKS.md).

    bench/run.sh overhead     # 1. latency and CPU the gateway adds, against direct libcurl
    bench/run.sh throughput   # 2. closed-loop maximum calls/s, gateway vs direct
    bench/run.sh footprint    # 3. resident memory idle and under load; start-up to SERVING
    bench/run.sh overload     # 4. 5x the budget offered: utilisation, upstream 429s, latency
    bench/run.sh jobs         # 5. job watch fan-out and streamed import (issue 4)
    bench/run.sh burst        # 6. bursts: time to upstream through the gateway vs direct
    bench/run.sh enqueue      # 7. acknowledged Enqueue calls/s and ack latency (fsync included)
    bench/run.sh all          # every scenario above, one after another

Each scenario starts what it needs on loopback (userpilot-emulator, userpilot-gateway), drives
it with upgw-bench, prints a table and writes JSON to bench/results/<scenario>-<time>.json.
--smoke runs it for a second or two with tiny counts and checks only that it ran: valid JSON,
successful calls, no unexpected status codes (make test runs these; never speed assertions).
"""

import argparse
import datetime
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import targets  # bench/targets.py: the speed targets

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMULATOR_KEY = "bench-emulator-key"  # a loopback emulator's key, not a Userpilot secret


class ScenarioError(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Processes


class Proc:
    """A child process with its output in a log file; stopped by stop() or at exit."""

    def __init__(self, name, argv, env=None, workdir=None):
        self.name = name
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                      env=env, start_new_session=True)
        self.pid = self.popen.pid

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_for(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.output())
            if m:
                return m
            if self.popen.poll() is not None:
                raise ScenarioError(f"{self.name} exited with {self.popen.returncode}:\n"
                                    f"{self.output()[-2000:]}")
            time.sleep(0.01)
        raise ScenarioError(f"{self.name} did not print /{pattern}/ within {timeout} s:\n"
                            f"{self.output()[-2000:]}")

    def stop(self, timeout=15):
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self.log.close()


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Env:
    """Binaries, a scratch folder and every process started, for one scenario run."""

    def __init__(self, args):
        self.args = args
        self.bin = {
            "gateway": args.gateway_bin or os.path.join(args.build, "service/userpilot-gateway"),
            "emulator": args.emulator_bin
            or os.path.join(args.build, "tests/emulator/userpilot-emulator"),
            "bench": args.bench_bin or os.path.join(args.build, "bench/upgw-bench"),
            "jobs_bench": args.jobs_bench_bin
            or os.path.join(args.build, "tests/integration/jobs_bench_test"),
        }
        self.workdir = tempfile.mkdtemp(prefix="upgw-bench-")
        self.procs = []
        self._gateway_help = None

    def need(self, *names):
        for name in names:
            if not os.access(self.bin[name], os.X_OK):
                raise ScenarioError(f"{self.bin[name]} not found: build it first (see BENCHMARKS.md)")

    def close(self):
        for p in reversed(self.procs):
            p.stop()
        self.procs = []

    def gateway_version(self):
        try:
            r = subprocess.run([self.bin["gateway"], "--version"], capture_output=True, text=True,
                               timeout=30)
            return (r.stdout + r.stderr).strip().splitlines()[-1]
        except (OSError, subprocess.TimeoutExpired, IndexError):
            return "unknown"

    def gateway_has_flag(self, flag):
        if self._gateway_help is None:
            r = subprocess.run([self.bin["gateway"], "--help"], capture_output=True, text=True,
                               timeout=30)
            self._gateway_help = r.stdout + r.stderr
        return f"--{flag} " in self._gateway_help

    def start_emulator(self, *flags):
        self.need("emulator")
        p = Proc(f"emulator{len(self.procs)}",
                 [self.bin["emulator"], "--listen=127.0.0.1:0", f"--api_key={EMULATOR_KEY}",
                  "--threads=512", *flags], workdir=self.workdir)
        self.procs.append(p)
        url = p.wait_for(r"listening on (http://[0-9.:]+)", 20).group(1)
        return p, url

    def gateway_argv(self, upstream_url, listen, flags):
        argv = [self.bin["gateway"], f"--listen={listen}", "--metrics_listen=127.0.0.1:0",
                f"--upstream_url={upstream_url}", "--shutdown_grace=3s"]
        return argv + list(flags) + list(self.args.gateway_flag or [])

    def gateway_env(self):
        env = dict(os.environ)
        env["USERPILOT_API_KEY"] = EMULATOR_KEY
        for name in list(env):
            if name.startswith("USERPILOT_GATEWAY_"):
                del env[name]  # only this script's flags
        return env

    def start_gateway(self, upstream_url, *flags):
        self.need("gateway")
        p = Proc(f"gateway{len(self.procs)}",
                 self.gateway_argv(upstream_url, "127.0.0.1:0", flags), env=self.gateway_env(),
                 workdir=self.workdir)
        self.procs.append(p)
        port = p.wait_for(r"serving gRPC on port (\d+)", 30).group(1)
        return p, f"127.0.0.1:{port}"

    def stop(self, proc):
        proc.stop()
        self.procs.remove(proc)

    def bench(self, label, **flags):
        """Runs upgw-bench with --key=value flags; returns its JSON document."""
        self.need("bench")
        out = os.path.join(self.workdir, f"bench-{time.monotonic_ns()}.json")
        argv = [self.bin["bench"], f"--out={out}", f"--label={label}",
                f"--api_key={EMULATOR_KEY}"]
        argv += [f"--{k}={v}" for k, v in flags.items()]
        budget = 120 + 3 * (parse_seconds(flags.get("duration", "10s")) +
                            parse_seconds(flags.get("warmup", "1s")))
        r = subprocess.run(argv, capture_output=True, text=True, timeout=budget)
        sys.stderr.write(r.stderr)
        if r.returncode != 0:
            raise ScenarioError(f"upgw-bench failed ({r.returncode}): {r.stderr[-2000:]}")
        with open(out) as f:
            return json.load(f)


def parse_seconds(text):
    m = re.fullmatch(r"([0-9.]+)(ms|s|m)", str(text))
    if not m:
        return 10.0
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[m.group(2)]


def admin(url, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read().decode()
        return json.loads(text) if text else None


# --------------------------------------------------------------------------------------------
# Reporting


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {"cpu": model, "nproc": os.cpu_count(), "mem_gb": round(mem_kb / 1048576, 1),
            "kernel": platform.release(), "loadavg": os.getloadavg()}


def table(headers, rows):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(str(c).rjust(w) for c, w in zip(cells, widths))
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def result(doc, target):
    for r in doc["results"]:
        if r["target"] == target:
            return r
    raise ScenarioError(f"no {target} result in the load generator's output")


def fmt(x, digits=3):
    return "-" if x is None else f"{x:.{digits}f}"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


class Check:
    """Smoke assertions: the scenario ran and every call ended as expected (never speed)."""

    def __init__(self):
        self.failures = []

    def results(self, doc, allowed_codes, what):
        for r in doc["results"]:
            total = r["total"]
            if total["ok"] <= 0:
                self.failures.append(f"{what}/{r['target']}: no successful call")
            bad = {c: n for c, n in total["codes"].items() if c not in allowed_codes}
            if bad:
                self.failures.append(f"{what}/{r['target']}: unexpected status codes {bad}")
            if r["unfinished"]:
                self.failures.append(f"{what}/{r['target']}: {r['unfinished']} calls unfinished")

    def that(self, condition, message):
        if not condition:
            self.failures.append(message)


OK_CODES = {"OK", "200", "202"}


# --------------------------------------------------------------------------------------------
# Scenarios


def huge_budget_flags():
    # Budgets far above the offered load, so the gateway never waits: this measures its cost.
    return ["--identify_rate=10000000/1s", "--track_rate=10000000/1s",
            "--budget_queues=identify=100000,track=100000", "--retry_max_attempts=1"]


def median_by_key(reps):
    """The median of each measure over the repeats that have it."""
    keys = dict.fromkeys(k for r in reps for k in r)
    return {k: median([r.get(k) for r in reps]) for k in keys}


def thread_breakdown(row):
    """{thread name: (CPU-s per 1k calls, context switches per call)} of an overhead row."""
    out = {}
    for key, value in row.items():
        if key.startswith("thread ") and key.endswith(" ctx_per_call"):
            name = key[len("thread "):-len(" ctx_per_call")]
            out[name] = (row.get(f"thread {name} cpu_s_per_1k"), value)
    return dict(sorted(out.items(), key=lambda kv: -(kv[1][1] or 0)))


def overhead_measures(doc):
    """The per-repeat measures of one overhead run (gateway and, when it ran, direct)."""
    g = result(doc, "gateway")
    gw = g["processes"].get("gateway") or {}
    m = {"gateway_p50": g["total"]["latency_ms"]["p50"],
         "gateway_p99": g["total"]["latency_ms"]["p99"],
         "gateway_cpu_s_per_1k": gw.get("cpu_s_per_1k_calls"),
         "gateway_ctx_per_call": gw.get("context_switches_per_call"),
         "gateway_ok_per_s": g["ok_per_s"]}
    threads = gw.get("threads") or {}
    for name, cost in threads.items():
        m[f"thread {name} cpu_s_per_1k"] = cost["cpu_s_per_1k_calls"]
        m[f"thread {name} ctx_per_call"] = cost["context_switches_per_call"]
    if any(r["target"] == "direct" for r in doc["results"]):
        d = result(doc, "direct")
        m.update(direct_p50=d["total"]["latency_ms"]["p50"],
                 direct_p99=d["total"]["latency_ms"]["p99"])
    return m


def scenario_overhead(env, args, check):
    ops = args.ops.split(",")
    rates = [float(r) for r in args.rates.split(",")]
    emulator, url = env.start_emulator("--rate_limits=false", "--request_log_capacity=0")
    gateway, addr = env.start_gateway(url, *huge_budget_flags())
    rows, runs = [], []
    for op in ops:
        for rate in rates:
            reps = []
            for rep in range(args.repeats):
                # Alternate the order so that neither target always runs on a warmer machine.
                order = "direct,gateway" if rep % 2 == 0 else "gateway,direct"
                doc = env.bench(f"overhead {op} {rate:g}/s #{rep + 1}", targets=order,
                                gateway=addr, direct_url=url, mode="open", rate=rate,
                                duration=args.duration, warmup=args.warmup, mix=f"{op}=1",
                                deadline="5s", gateway_pid=gateway.pid, emulator_pid=emulator.pid)
                check.results(doc, OK_CODES, f"overhead {op} {rate:g}/s")
                reps.append(overhead_measures(doc))
                runs.append(doc)
            m = median_by_key(reps)
            m["added_p50"] = median([r["gateway_p50"] - r["direct_p50"] for r in reps])
            m["added_p99"] = median([r["gateway_p99"] - r["direct_p99"] for r in reps])
            m.update(op=op, rate=rate, repeats=len(reps))
            rows.append(m)
    # The floor: a call the gateway answers from its validation on the gRPC thread (an identify
    # without user_id: INVALID_ARGUMENT, no upstream request, no other thread), i.e. what a gRPC
    # call into this server costs on this machine with no work behind it.
    floor = []
    for rate in rates:
        reps = []
        for rep in range(args.repeats):
            doc = env.bench(f"overhead floor {rate:g}/s #{rep + 1}", targets="gateway",
                            gateway=addr, mode="open", rate=rate, duration=args.duration,
                            warmup=args.warmup, mix="refused=1", deadline="5s",
                            gateway_pid=gateway.pid)
            check.results(doc, {"INVALID_ARGUMENT"}, f"overhead floor {rate:g}/s")
            reps.append(overhead_measures(doc))
            runs.append(doc)
        m = median_by_key(reps)
        m.update(op="refused (floor)", rate=rate, repeats=len(reps))
        floor.append(m)
    table_rows = [[r["op"], f"{r['rate']:g}", fmt(r.get("direct_p50")), fmt(r["gateway_p50"]),
                   fmt(r.get("added_p50")), fmt(r.get("direct_p99")), fmt(r["gateway_p99"]),
                   fmt(r.get("added_p99")), fmt(r["gateway_cpu_s_per_1k"], 4),
                   fmt(r["gateway_ctx_per_call"], 1)] for r in rows + floor]
    text = table(["op", "calls/s", "direct p50", "gw p50", "added p50", "direct p99", "gw p99",
                  "added p99", "gw CPU-s/1k", "gw ctx/call"], table_rows)
    text += (f"\nlatency in ms; targets: added p50 <= {targets.ADDED_P50_MS[500]} ms and p99 <= "
             f"{targets.ADDED_P99_MS[500]} ms at 500 calls/s, p99 <= {targets.ADDED_P99_MS[2000]} "
             f"ms at 2,000; at 500 calls/s gateway CPU <= {targets.CPU_S_PER_1K[500]} s per 1,000 "
             f"calls and <= {targets.CTX_PER_CALL[500]:g} context switches per call. "
             "'refused (floor)': a call answered from validation on the gRPC thread")
    for r in rows + floor:
        parts = [f"{name} {fmt(ctx, 2)} ({fmt(cpu, 3)} CPU-s/1k)"
                 for name, (cpu, ctx) in thread_breakdown(r).items() if (ctx or 0) >= 0.05]
        text += f"\n{r['op']} {r['rate']:g}/s, context switches per call by thread: " + \
            ", ".join(parts)
    return {"rows": rows, "floor": floor, "runs": runs}, text


def cpu_us_per_call(row):
    cpu = row.get("gateway_cpu_s_per_1k")
    return None if cpu is None else cpu * 1000


def calls_per_cpu_s(row):
    cpu = row.get("gateway_cpu_s_per_1k")
    return None if not cpu else 1000 / cpu


def scenario_throughput(env, args, check):
    emulator, url = env.start_emulator("--rate_limits=false", "--request_log_capacity=0")
    gateway, addr = env.start_gateway(url, *huge_budget_flags())
    rows, runs = [], []
    for concurrency in [int(c) for c in args.concurrency.split(",")]:
        reps = []
        for rep in range(args.repeats):
            order = "direct,gateway" if rep % 2 == 0 else "gateway,direct"
            doc = env.bench(f"throughput c={concurrency} #{rep + 1}", targets=order, gateway=addr,
                            direct_url=url, mode="closed", concurrency=concurrency,
                            connections=concurrency, channels=args.channels,
                            duration=args.duration, warmup=args.warmup, mix=args.mix,
                            deadline="10s", gateway_pid=gateway.pid, emulator_pid=emulator.pid)
            check.results(doc, OK_CODES, f"throughput c={concurrency}")
            d, g = result(doc, "direct"), result(doc, "gateway")
            reps.append({"direct_per_s": d["ok_per_s"], "gateway_per_s": g["ok_per_s"],
                         "ratio": g["ok_per_s"] / d["ok_per_s"] if d["ok_per_s"] else None,
                         "direct_p50": d["total"]["latency_ms"]["p50"],
                         "gateway_p50": g["total"]["latency_ms"]["p50"],
                         "gateway_cpu_s_per_1k":
                             (g["processes"].get("gateway") or {}).get("cpu_s_per_1k_calls")})
            runs.append(doc)
        m = {k: median([r[k] for r in reps]) for k in reps[0]}
        m.update(concurrency=concurrency, repeats=len(reps))
        rows.append(m)
    text = table(["concurrency", "direct calls/s", "gateway calls/s", "ratio", "direct p50 ms",
                  "gw p50 ms", "gw CPU us/call", "calls per gw CPU-s"],
                 [[r["concurrency"], fmt(r["direct_per_s"], 0), fmt(r["gateway_per_s"], 0),
                   fmt(r["ratio"], 2), fmt(r["direct_p50"]), fmt(r["gateway_p50"]),
                   fmt(cpu_us_per_call(r), 1), fmt(calls_per_cpu_s(r), 0)] for r in rows])
    text += ("\nclosed loop, successful calls/s; load generator, gateway and emulator share the "
             f"same cores; target: <= {targets.SATURATED_CPU_US_PER_CALL:g} us of gateway CPU per "
             "call")
    return {"rows": rows, "runs": runs}, text


def scenario_footprint(env, args, check):
    emulator, url = env.start_emulator("--rate_limits=false", "--request_log_capacity=0")
    # Start-up: spawn to SERVING on the standard health check, several times.
    env.need("gateway", "bench")
    startups = []
    for _ in range(args.startups):
        listen = f"127.0.0.1:{free_port()}"
        probe_argv = [env.bin["bench"], f"--wait_serving={listen}", "--wait_timeout=30s"]
        t0 = time.monotonic_ns()
        p = Proc(f"gateway-start{len(startups)}",
                 env.gateway_argv(url, listen, huge_budget_flags()), env=env.gateway_env(),
                 workdir=env.workdir)
        env.procs.append(p)
        # Both clocks are CLOCK_MONOTONIC, so the probe's timestamp compares with t0.
        r = subprocess.run(probe_argv, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise ScenarioError(f"gateway never SERVING: {r.stderr}\n{p.output()[-2000:]}")
        startups.append((int(r.stdout.strip()) - t0) / 1e6)
        env.stop(p)
    check.that(len(startups) == args.startups, "start-up not measured")

    gateway, addr = env.start_gateway(url, *huge_budget_flags())
    time.sleep(args.settle)
    idle_mb = rss_mb(gateway.pid)
    doc = env.bench(f"footprint {args.load_rate:g}/s", targets="gateway", gateway=addr,
                    mode="open", rate=args.load_rate, duration=args.duration, warmup=args.warmup,
                    mix="identify=1,track=1", deadline="5s", gateway_pid=gateway.pid,
                    emulator_pid=emulator.pid)
    check.results(doc, OK_CODES, "footprint")
    g = result(doc, "gateway")
    gw = g["processes"]["gateway"]
    time.sleep(args.settle)
    after_mb = rss_mb(gateway.pid)
    data = {"startup_ms": startups, "startup_ms_median": median(startups),
            "rss_idle_mb": idle_mb, "rss_under_load_peak_mb": gw["rss_peak_mb"],
            "rss_under_load_end_mb": gw["rss_end_mb"], "rss_after_load_mb": after_mb,
            "load_rate": args.load_rate, "load_ok_per_s": g["ok_per_s"],
            "load_latency_ms": g["total"]["latency_ms"], "runs": [doc]}
    text = table(["measure", "value"], [
        ["start-up to SERVING, median ms", fmt(data["startup_ms_median"], 1)],
        ["start-up runs ms", " ".join(f"{s:.1f}" for s in startups)],
        ["RSS idle MB", fmt(idle_mb, 1)],
        [f"RSS peak at {args.load_rate:g} calls/s MB", fmt(gw["rss_peak_mb"], 1)],
        ["RSS after the load MB", fmt(after_mb, 1)],
        ["calls/s achieved", fmt(g["ok_per_s"], 0)],
    ])
    return data, text


def scenario_overload(env, args, check):
    count, window = args.budget.split("/")
    count = int(count)
    window_s = parse_seconds(window)
    budget_per_s = count / window_s
    # Userpilot's own limits, scaled down the same way: the emulator enforces COUNT per WINDOW
    # on identify and on track, and the gateway's budgets are the same.
    emulator, url = env.start_emulator("--rate_limits=true", f"--identify_limit={count}",
                                       f"--track_limit={count}", f"--rate_window={window}")
    gateway, addr = env.start_gateway(url, f"--identify_rate={args.budget}",
                                      f"--track_rate={args.budget}",
                                      f"--ratelimit_spacing_margin={args.margin}")
    offered = budget_per_s * args.factor
    margin_s = parse_seconds(args.margin)
    data, texts = {}, []
    for op in args.overload_ops.split(","):
        path = {"identify": "/v1/identify", "track": "/v1/track"}[op]
        admin(url, "POST", "/_emulator/reset")
        # Let the previous op's budget and queue drain before the next starts.
        time.sleep(0 if args.smoke else window_s)
        t_start = time.time()
        doc = env.bench(f"overload {op} {offered:g}/s against {args.budget}", targets="gateway",
                        gateway=addr, mode="open", rate=offered, duration=args.duration,
                        warmup=args.warmup, mix=f"{op}=1", deadline=args.deadline,
                        caller=args.caller, gateway_pid=gateway.pid, emulator_pid=emulator.pid)
        elapsed = time.time() - t_start
        stats = admin(url, "GET", "/_emulator/stats")
        records = admin(url, "GET", "/_emulator/requests")
        # Upstream acceptances in time order; the steady rate leaves out the first window (GCRA
        # may admit up to COUNT at once from an idle start) and the drain.
        times = sorted(datetime.datetime.strptime(r["received_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
                       .replace(tzinfo=datetime.timezone.utc).timestamp()
                       for r in records if r["path"] == path and r["response_status"] == 202)
        steady_rate = None
        max_in_window = 0
        if len(times) >= 2:
            lo = times[0] + window_s
            steady = [t for t in times if t >= lo]
            if len(steady) >= 2 and steady[-1] > lo:
                steady_rate = (len(steady) - 1) / (steady[-1] - lo)
            j = 0
            for i, t in enumerate(times):
                while times[j] <= t - window_s:
                    j += 1
                max_in_window = max(max_in_window, i - j + 1)
        g = result(doc, "gateway")
        check.results(doc, {"OK", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"}, f"overload {op}")
        d = {"op": op, "budget": args.budget, "budget_per_s": budget_per_s, "margin": args.margin,
             "offered_per_s": offered, "deadline": args.deadline,
             "upstream_accepted": len(times), "upstream_429": stats.get("rate_limited", 0),
             "upstream_steady_rate_per_s": steady_rate,
             "budget_utilisation": steady_rate / budget_per_s if steady_rate else None,
             # The most the gateway may send: COUNT per (WINDOW + margin).
             "margin_adjusted_utilisation":
                 steady_rate * (window_s + margin_s) / count if steady_rate else None,
             "max_accepted_in_any_window": max_in_window, "emulator_stats": stats,
             "elapsed_s": elapsed, "caller_codes": g["total"]["codes"],
             "caller_latency_ms": g["total"]["latency_ms"],
             "caller_ok_latency_ms": g["total"]["latency_ok_ms"],
             "caller_ok_per_s": g["ok_per_s"],
             "gateway_rss_peak_mb": (g["processes"].get("gateway") or {}).get("rss_peak_mb"),
             "upstream_series": dict(upstream_series(records, path, t_start, window_s, count),
                                     warmup_s=parse_seconds(args.warmup)),
             "runs": [doc]}
        data[op] = d
        lat, lat_ok = d["caller_latency_ms"], d["caller_ok_latency_ms"]
        texts.append(f"-- {op}\n" + table(["measure", "value"], [
            ["budget (gateway and emulator)", f"{args.budget} (+{args.margin} margin)"],
            ["offered calls/s", fmt(offered, 0)],
            ["upstream accepted, steady calls/s", fmt(steady_rate, 1)],
            ["budget utilisation (of COUNT/WINDOW)", fmt(d["budget_utilisation"], 3)],
            ["... of COUNT/(WINDOW+margin)", fmt(d["margin_adjusted_utilisation"], 3)],
            [f"most accepted in any {window}", max_in_window],
            ["upstream 429s", d["upstream_429"]],
            ["caller status codes", json.dumps(d["caller_codes"])],
            ["caller OK calls/s", fmt(g["ok_per_s"], 1)],
            ["caller latency ms, all: p50/p99/max",
             f"{fmt(lat['p50'])} / {fmt(lat['p99'])} / {fmt(lat['max'])}"],
            ["caller latency ms, OK only: p50/p99/max",
             f"{fmt(lat_ok['p50'])} / {fmt(lat_ok['p99'])} / {fmt(lat_ok['max'])}"],
            ["gateway peak RSS MB", fmt(d["gateway_rss_peak_mb"], 1)],
        ]))
    return data, "\n".join(texts)


def http_json(method, url, body=None, key=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", f"Token {key}")
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read().decode()
        return json.loads(text) if text else None


def upstream_series(records, path, t0, window_s, count):
    """The emulator's receipt times of `path` requests, in seconds since t0 (a time.time()),
    split into accepted (202) and refused (429): what bench/plot.py draws against the budget of
    `count` per `window_s`. Every scenario that plots upstream rates stores this shape."""
    def offsets(status):
        return [round(datetime.datetime.strptime(r["received_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
                      .replace(tzinfo=datetime.timezone.utc).timestamp() - t0, 4)
                for r in records if r["path"] == path and r["response_status"] == status]
    return {"budget_count": count, "window_s": window_s, "accepted_s": sorted(offsets(202)),
            "refused_s": sorted(offsets(429))}


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else None


class PeakRss:
    """Samples a process's resident memory every 5 ms on a thread until stop()."""

    def __init__(self, pid):
        import threading
        self.pid, self.peak, self._stop = pid, rss_mb(pid), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.005):
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except OSError:
                return

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.peak


def scenario_jobs(env, args, check):
    if env.gateway_has_flag("max_watches"):
        return scenario_jobs_binary(env, args, check)
    return scenario_jobs_gtest(env, args, check)


def scenario_jobs_binary(env, args, check):
    """Issue 4's numbers on the real gateway binary (which serves WatchJob and ImportData)."""
    jobs, watchers = (2, 20) if args.smoke else (args.jobs, args.subscribers)
    import_mb = 1 if args.smoke else args.import_mb
    settle, window = (0.2, 1.0) if args.smoke else (2.0, 5.0)
    emulator, url = env.start_emulator("--rate_limits=false", "--request_log_capacity=0",
                                       "--job_step=1h")
    gateway_flags = ["--watch_min_poll_interval=1s", "--watch_max_poll_interval=1s",
                     f"--max_watches={watchers + 10}", f"--max_watched_jobs={jobs + 10}",
                     "--job_read_rate=1000000/1s"]
    gateway, addr = env.start_gateway(url, *gateway_flags)
    # Userpilot runs one bulk job at a time: create each, let it end, then pin them all queued.
    ids = []
    for i in range(jobs):
        job = http_json("POST", url + "/v1/users/bulk_identify", {"users": [{"user_id": f"u{i}"}]},
                        key=EMULATOR_KEY)
        ids.append(job["job_id"])
        admin(url, "POST", f"/_emulator/jobs/{urllib.parse.quote(job['job_id'], safe='')}/status",
              {"status": "completed"})
    for job_id in ids:
        admin(url, "POST", f"/_emulator/jobs/{urllib.parse.quote(job_id, safe='')}/status",
              {"status": "queued"})
    ids_file = os.path.join(env.workdir, "job_ids.txt")
    with open(ids_file, "w") as f:
        f.write("\n".join(ids) + "\n")
    time.sleep(0.5)
    rss_before = rss_mb(gateway.pid)
    client = Proc("watch-client", [env.bin["bench"], f"--gateway={addr}", f"--watch_jobs={ids_file}",
                                   f"--watchers={watchers}", "--channels=16",
                                   "--watch_status=processing", "--watch_timeout=120s"],
                  workdir=env.workdir)
    env.procs.append(client)
    started = int(client.wait_for(r"ready (\d+)", 150).group(1))
    check.that(started == watchers, f"jobs: only {started} of {watchers} watches started")
    time.sleep(settle)
    rss_watching = rss_mb(gateway.pid)
    admin(url, "DELETE", "/_emulator/stats")
    t0 = time.monotonic()
    time.sleep(window)
    stats = admin(url, "GET", "/_emulator/stats")
    reads = stats["by_endpoint"].get("get_job", 0) / ((time.monotonic() - t0) / 1.0)
    changed = []
    for job_id in ids:
        admin(url, "POST", f"/_emulator/jobs/{urllib.parse.quote(job_id, safe='')}/status",
              {"status": "processing"})
        changed.append(time.monotonic_ns())
    client.popen.wait(150)
    result = json.loads(client.output().strip().splitlines()[-1])
    arrivals = result["arrivals_ns"]
    delays = [(a - changed[i % jobs]) / 1e6 for i, a in enumerate(arrivals) if a >= 0]
    check.that(len(delays) == watchers, f"jobs: {watchers - len(delays)} watchers missed the change")
    env.stop(client)

    admin(url, "DELETE", "/_emulator/jobs")  # the pinned jobs would hold the bulk slot
    # A fresh gateway for the import: the watches' freed memory would hide its growth.
    env.stop(gateway)
    gateway, addr = env.start_gateway(url, *gateway_flags)
    time.sleep(settle)
    rss_import_before = rss_mb(gateway.pid)
    sampler = PeakRss(gateway.pid)
    r = subprocess.run([env.bin["bench"], f"--gateway={addr}", f"--import_mb={import_mb}"],
                       capture_output=True, text=True, timeout=600)
    peak = sampler.stop()
    check.that(r.returncode == 0, f"jobs: import failed: {r.stderr[-2000:]}")
    imported = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else {}
    mb = imported.get("bytes", 0) / 1e6
    data = {
        "mode": "gateway binary",
        "watch": {"subscribers": watchers, "jobs": jobs, "started": started,
                  "upstream_reads_per_interval": reads,
                  "rss_before_mb": rss_before, "rss_watching_mb": rss_watching,
                  "rss_growth_mb": rss_watching - rss_before,
                  "kb_per_watch": (rss_watching - rss_before) * 1024 / watchers,
                  "change_delay_ms_min": min(delays) if delays else None,
                  "change_delay_ms_p50": percentile(delays, 0.5),
                  "change_delay_ms_p99": percentile(delays, 0.99),
                  "change_delay_ms_max": max(delays) if delays else None},
        "import": {"megabytes": mb, "seconds": imported.get("seconds"),
                   "mb_per_s": mb / imported["seconds"] if imported.get("seconds") else None,
                   "peak_rss_growth_mb": peak - rss_import_before},
    }
    w, i = data["watch"], data["import"]
    text = table(["measure", "value"], [
        ["watchers / jobs", f"{watchers} / {jobs}"],
        ["upstream job reads per 1 s interval", fmt(reads, 1)],
        ["gateway RSS before / with the watches MB", f"{fmt(rss_before, 1)} / {fmt(rss_watching, 1)}"],
        ["KB per watch", fmt(w["kb_per_watch"], 1)],
        ["change -> watcher ms min / p50 / p99 / max",
         f"{fmt(w['change_delay_ms_min'], 0)} / {fmt(w['change_delay_ms_p50'], 0)} / {fmt(w['change_delay_ms_p99'], 0)} / "
         f"{fmt(w['change_delay_ms_max'], 0)}"],
        [f"import {fmt(mb, 1)} MB: MB/s", fmt(i["mb_per_s"], 1)],
        ["import: peak gateway RSS growth MB (target < 16)", fmt(i["peak_rss_growth_mb"], 1)],
    ])
    return data, text


def scenario_jobs_gtest(env, args, check):
    env.need("jobs_bench")
    extra = {}
    if args.smoke:
        # The watch scenario holds its watches for a fixed 8 s: the smoke run does the import only.
        extra = {"UPGW_BENCH_IMPORT_MB": "1"}
        filters = ["*Import*"]
    else:
        extra = {"UPGW_BENCH_IMPORT_MB": str(args.import_mb), "UPGW_BENCH_JOBS": str(args.jobs),
                 "UPGW_BENCH_SUBSCRIBERS": str(args.subscribers)}
        filters = ["*Watch*", "*Import*"]
    data, texts = {}, []
    for f in filters:
        run_env = dict(os.environ, **extra)
        r = subprocess.run([env.bin["jobs_bench"], "--gtest_also_run_disabled_tests",
                            f"--gtest_filter=JobsBench.DISABLED_{f[1:-1]}*"],
                           capture_output=True, text=True, timeout=600, env=run_env,
                           cwd=env.workdir)
        out = r.stdout
        check.that(r.returncode == 0, f"jobs {f}: exit {r.returncode}\n{out[-3000:]}")
        lines = [l for l in out.splitlines() if l.startswith(("watch:", "import:", "  "))
                 and not l.startswith("  [")]
        texts.extend(lines)
        num = lambda pat: (lambda m: float(m.group(1)) if m else None)(re.search(pat, out))
        if "Watch" in f:
            data["watch"] = {
                "subscribers": args.subscribers, "jobs": args.jobs,
                "upstream_reads_per_interval": num(r"reads per interval: ([0-9.]+)"),
                "rss_growth_mb": num(r"\(\+([0-9.]+) MB"),
                "kb_per_watch": num(r"([0-9.]+) KB per watch"),
                "change_delay_ms_p50": num(r"p50 ([0-9.]+) ms"),
                "change_delay_ms_p99": num(r"p99 ([0-9.]+) ms"),
                "change_delay_ms_max": num(r"max ([0-9.]+) ms"),
                "output": lines}
        else:
            data["import"] = {
                "megabytes": float(extra["UPGW_BENCH_IMPORT_MB"]),
                "mb_per_s": num(r"([0-9.]+) MB/s"),
                "peak_rss_growth_mb": num(r"growth during the import: ([0-9.]+) MB"),
                "output": lines}
            check.that(data["import"]["mb_per_s"] is not None, "jobs: import printed no rate")
    return data, "\n".join(texts)


def burst_to_upstream(send, n, url, tag):
    """Sends n IdentifyUser-like calls at once with send(user_id) -> (code); returns
    (time to upstream in ms of each accepted call, status counts). The emulator's request log
    gives the receipt times, matched by user_id."""
    import concurrent.futures
    sent = {}
    codes = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        futures = []
        for i in range(n):
            user = f"{tag}-{i}"
            sent[user] = time.time()
            futures.append(pool.submit(send, user))
        for f in futures:
            code = f.result()
            codes[code] = codes.get(code, 0) + 1
    received = {}
    for r in admin(url, "GET", "/_emulator/requests"):
        if r["path"] == "/v1/identify" and r["response_status"] == 202:
            user = json.loads(r["body"]).get("user_id", "")
            if user in sent:
                received[user] = datetime.datetime.strptime(
                    r["received_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                        tzinfo=datetime.timezone.utc).timestamp()
    return [1000 * (received[u] - sent[u]) for u in received], codes


def scenario_burst(env, args, check):
    """Bursts against the identify budget: 100 calls at once after idle at Userpilot's 600/1m,
    then bursts of twice a scaled-down budget (args.burst_budget) once per window. Time to
    upstream (send to the emulator's receipt) through the gateway against the same calls sent
    straight to an emulator of its own (which answers the excess 429)."""
    sys.path.insert(0, os.path.join(args.build, "clients/python/package"))
    import grpc
    from userpilot.gateway.v1 import gateway_pb2, gateway_pb2_grpc

    count, window = args.burst_budget.split("/")
    count, window_s = int(count), parse_seconds(window)
    rounds = 1 if args.smoke else args.burst_rounds
    data, rows = {}, []
    for name, limit, win, n, repeat in (("100 after idle (600/1m)", 600, "60s", 100, 1),
                                        (f"2x budget bursts ({args.burst_budget})", count, window,
                                         2 * count, rounds)):
        via_gw, gw_url = env.start_emulator(f"--identify_limit={limit}", f"--rate_window={win}",
                                            "--request_log_capacity=100000")
        direct, direct_url = env.start_emulator(f"--identify_limit={limit}",
                                                f"--rate_window={win}",
                                                "--request_log_capacity=100000")
        gateway, addr = env.start_gateway(gw_url, f"--identify_rate={limit}/{win}")
        channel = grpc.insecure_channel(addr)
        grpc.channel_ready_future(channel).result(timeout=10)
        stub = gateway_pb2_grpc.UserpilotGatewayStub(channel)

        def through_gateway(user):
            try:
                stub.IdentifyUser(gateway_pb2.IdentifyUserRequest(user_id=user),
                                  timeout=2 * parse_seconds(win) + 5)
                return "OK"
            except grpc.RpcError as e:
                return e.code().name

        def straight(user):
            try:
                http_json("POST", f"{direct_url}/v1/identify", {"user_id": user},
                          key=EMULATOR_KEY)
                return "202"
            except urllib.error.HTTPError as e:
                return str(e.code)

        results = {}
        for target, send, url in (("gateway", through_gateway, gw_url),
                                  ("direct", straight, direct_url)):
            times, codes = [], {}
            t_start = time.time()
            for r in range(repeat):
                t, c = burst_to_upstream(send, n, url, f"{target}-{r}")
                times += t
                for k, v in c.items():
                    codes[k] = codes.get(k, 0) + v
                if r + 1 < repeat:
                    time.sleep(parse_seconds(win))
            results[target] = {"to_upstream_ms": {q: percentile(times, p) for q, p in
                                                  (("p50", 0.5), ("p90", 0.9), ("p99", 0.99),
                                                   ("max", 1.0))},
                               "accepted": len(times), "codes": codes}
            # What the emulator received over the whole run, for bench/plot.py: through the
            # gateway it should stay within the budget; direct, the excess is answered 429.
            series = upstream_series(admin(url, "GET", "/_emulator/requests"), "/v1/identify",
                                     t_start, parse_seconds(win), limit)
            results[target]["upstream_series"] = series
            check.that(len(series["accepted_s"]) == len(times),
                       f"burst {name} {target}: the emulator's log holds "
                       f"{len(series['accepted_s'])} accepted requests, {len(times)} calls matched")
            pct = results[target]["to_upstream_ms"]
            rows.append([name, target, n * repeat, len(times), fmt(pct["p50"], 1),
                         fmt(pct["p90"], 1), fmt(pct["p99"], 1), fmt(pct["max"], 1),
                         json.dumps(codes, sort_keys=True)])
            check.that(len(times) > 0, f"burst {name} {target}: nothing reached the emulator")
        stats = admin(gw_url, "GET", "/_emulator/stats")
        results["gateway"]["upstream_429"] = stats.get("rate_limited", 0)
        check.that(stats.get("rate_limited", 0) == 0, f"burst {name}: the gateway drew 429s")
        data[name] = results
        channel.close()
        for p in (gateway, via_gw, direct):
            env.stop(p)
    return data, table(["scenario", "target", "sent", "reached upstream", "p50 ms", "p90 ms",
                        "p99 ms", "max ms", "answers"], rows)


SCENARIOS = {
    "overhead": scenario_overhead,
    "throughput": scenario_throughput,
    "footprint": scenario_footprint,
    "overload": scenario_overload,
    "jobs": scenario_jobs,
    "burst": scenario_burst,
}

SMOKE = {
    "duration": "1s", "warmup": "200ms", "rates": "100", "ops": "identify,track",
    "repeats": 1, "concurrency": "4", "startups": 1, "settle": 0.2, "load_rate": 100,
    "budget": "20/1s", "factor": 3, "burst_budget": "10/1s", "margin": "100ms", "overload_duration": "1s", "deadline": "1s",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"])
    parser.add_argument("--build", default=os.environ.get("BUILD", os.path.join(REPO, "build")),
                        help="build folder holding the binaries (default: $BUILD or build/)")
    parser.add_argument("--gateway_bin")
    parser.add_argument("--emulator_bin")
    parser.add_argument("--bench_bin")
    parser.add_argument("--jobs_bench_bin")
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results"),
                        help="folder for the JSON results")
    parser.add_argument("--smoke", action="store_true",
                        help="a second or two with tiny counts; checks only that it ran")
    parser.add_argument("--gateway_flag", action="append",
                        help="extra gateway flag (repeatable), e.g. --gateway_flag=--access_log=false")
    parser.add_argument("--duration", default="10s", help="measured time per target and step")
    parser.add_argument("--warmup", default="2s")
    parser.add_argument("--repeats", type=int, default=3, help="overhead/throughput repeats (median)")
    parser.add_argument("--ops", default="identify,track", help="overhead: ops, one at a time")
    parser.add_argument("--rates", default="500,2000", help="overhead: calls/s")
    parser.add_argument("--concurrency", default="16,64", help="throughput: calls outstanding")
    parser.add_argument("--channels", type=int, default=1, help="throughput: gRPC channels")
    parser.add_argument("--mix", default="identify=1,track=1", help="throughput: request mix")
    parser.add_argument("--startups", type=int, default=5, help="footprint: start-ups measured")
    parser.add_argument("--settle", type=float, default=2.0, help="footprint: idle seconds")
    parser.add_argument("--load_rate", type=float, default=2000, help="footprint: calls/s")
    parser.add_argument("--budget", default="60/1s", help="overload: identify budget COUNT/WINDOW")
    parser.add_argument("--margin", default="20ms", help="overload: --ratelimit_spacing_margin")
    parser.add_argument("--factor", type=float, default=5, help="overload: offered / budget")
    parser.add_argument("--overload_duration", default="30s", help="overload: measured time")
    parser.add_argument("--deadline", default="2s", help="overload: caller deadline")
    parser.add_argument("--overload_ops", default="identify,track", help="overload: ops, in turn")
    parser.add_argument("--caller", default="bench-overload", help="overload: x-caller")
    parser.add_argument("--burst_budget", default="50/5s",
                        help="burst: the scaled-down identify budget bursts are twice of")
    parser.add_argument("--burst_rounds", type=int, default=3, help="burst: 2x bursts, one a window")
    parser.add_argument("--jobs", type=int, default=100, help="jobs: watched jobs")
    parser.add_argument("--subscribers", type=int, default=10000, help="jobs: watchers")
    parser.add_argument("--import_mb", type=int, default=50, help="jobs: import size")
    for add_arguments in globals().get("EXTRA_ARGUMENTS", []):
        add_arguments(parser)  # a scenario's own options (defined beside it)
    args = parser.parse_args()
    if args.smoke:
        for k, v in SMOKE.items():
            setattr(args, k, v)

    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    os.makedirs(args.out, exist_ok=True)
    failed = False
    for name in names:
        env = Env(args)
        check = Check()
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        started = time.monotonic()
        mach = machine()
        print(f"== {name}{' (smoke)' if args.smoke else ''}: {mach['nproc']} CPUs "
              f"({mach['cpu']}), load average {mach['loadavg'][0]:.2f}", flush=True)
        sub = argparse.Namespace(**vars(args))
        if name == "overload":
            sub.duration = args.overload_duration
        try:
            data, text = SCENARIOS[name](env, sub, check)
        except (ScenarioError, subprocess.TimeoutExpired, OSError) as e:
            check.failures.append(f"{name}: {e}")
            data, text = None, ""
        finally:
            env.close()
        doc = {"scenario": name, "smoke": args.smoke, "utc": stamp, "machine": mach,
               "loadavg_after": os.getloadavg(), "seconds": round(time.monotonic() - started, 1),
               "git": git_revision(), "gateway_version": env.gateway_version(),
               "gateway_flags": args.gateway_flag or [], "data": data,
               "failures": check.failures}
        path = os.path.join(args.out, f"{name}-{stamp}.json")
        with open(path, "w") as f:
            json.dump(doc, f, indent=1)
        print(text)
        print(f"-> {path} ({doc['seconds']} s)", flush=True)
        for failure in check.failures:
            print(f"FAIL: {failure}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def git_revision():
    try:
        r = subprocess.run(["git", "-C", REPO, "rev-parse", "--short=12", "HEAD"],
                           capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return r.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


# --------------------------------------------------------------------------------------------
# coalesce (issue 16): the effective identify throughput of a queued backlog with coalescing
# into bulk jobs on, against the per-call identify budget (coalescing off). Self-contained.
#   bench/run.sh coalesce [--coalesce_backlog=N] [--coalesce_budget=600/1m] [--smoke]
# Needs the Python client stubs of the build (target userpilot_gateway_python).


def _coalesce_metric(text, name, labels=""):
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def _coalesce_run(env, args, budget, threshold, backlog, window_s):
    """Enqueues `backlog` identifies of distinct users, then samples the delivered counter while
    the backlog stays above the threshold (coalescing on) or for `window_s` (off). Returns the
    measured deliveries/s and what reached the emulator."""
    sys.path.insert(0, os.path.join(args.build, "clients/python/package"))
    import grpc  # noqa: E402  (Debian's python3-grpcio, as the e2e tests)
    from userpilot.gateway.v1 import gateway_pb2, gateway_pb2_grpc  # noqa: E402

    emulator, url = env.start_emulator(f"--job_step={args.coalesce_job_step}")
    queue = tempfile.mkdtemp(prefix="queue-", dir=env.workdir)
    gateway, target = env.start_gateway(
        url, f"--queue_dir={queue}", f"--identify_rate={budget}",
        f"--queue_coalesce_threshold={threshold}", "--watch_min_poll_interval=250ms",
        "--job_lane_poll_interval=250ms", "--job_read_rate=1200/1m")
    port = gateway.wait_for(r"/metrics on port (\d+)", 30).group(1)
    metrics_url = f"http://127.0.0.1:{port}/metrics"

    def scrape():
        with urllib.request.urlopen(metrics_url, timeout=5) as r:
            return r.read().decode()

    channel = grpc.insecure_channel(target)
    stub = gateway_pb2_grpc.UserpilotGatewayStub(channel)
    tag = f"co{time.monotonic_ns() % 100000}"
    for i in range(0, backlog, 1000):
        calls = []
        for u in range(i, min(backlog, i + 1000)):
            c = gateway_pb2.EnqueueRequest(
                identify_user=gateway_pb2.IdentifyUserRequest(user_id=f"{tag}-{u}"))
            c.identify_user.metadata.update({"plan": "pro"})
            calls.append(c)
        answer = stub.EnqueueBatch(gateway_pb2.EnqueueBatchRequest(calls=calls), timeout=30)
        if any(o.code != 0 for o in answer.outcomes):
            raise ScenarioError("EnqueueBatch refused calls")
    delivered = "userpilot_gateway_delivery_attempts_total"
    t0, d0 = time.monotonic(), _coalesce_metric(scrape(), delivered, '{outcome="delivered"}')
    t1, d1 = t0, d0
    deadline = t0 + window_s
    while time.monotonic() < deadline:
        time.sleep(0.25)
        text = scrape()
        t1, d1 = time.monotonic(), _coalesce_metric(text, delivered, '{outcome="delivered"}')
        left = _coalesce_metric(text, "userpilot_gateway_delivery_backlog_calls")
        if threshold > 0 and left < threshold:
            break  # Below the threshold the rest goes singly: the deep-backlog phase is over.
    text = scrape()
    stats = admin(url, "GET", "/_emulator/stats")
    channel.close()
    env.stop(gateway)
    env.stop(emulator)
    seconds = max(t1 - t0, 1e-6)
    return {
        "budget": budget, "threshold": threshold, "backlog": backlog,
        "seconds": round(seconds, 2), "delivered": int(d1 - d0),
        "deliveries_per_s": round((d1 - d0) / seconds, 2),
        "rows": int(_coalesce_metric(text, "userpilot_gateway_delivery_coalesced_rows_total",
                                     '{outcome="delivered"}')),
        "jobs": int(_coalesce_metric(text, "userpilot_gateway_delivery_coalesced_jobs_total",
                                     '{outcome="completed"}')),
        "single_identify_requests": stats.get("by_endpoint", {}).get("identify", 0),
    }


def scenario_coalesce(env, args, check):
    count, window = args.coalesce_budget.split("/")
    per_call = float(count) / parse_seconds(window)
    share = per_call * (1 - 0.2)  # --queue_sync_share's default leaves 20 % to sync callers
    smoke = args.smoke
    backlog = 60 if smoke else args.coalesce_backlog
    off = _coalesce_run(env, args, args.coalesce_budget, 0, min(backlog, 400),
                        2 if smoke else args.coalesce_off_seconds)
    on = _coalesce_run(env, args, args.coalesce_budget, 20 if smoke else args.coalesce_threshold,
                       backlog, 20 if smoke else 600)
    check.that(off["delivered"] > 0, "coalesce: nothing delivered with coalescing off")
    check.that(on["delivered"] > 0 and on["rows"] > 0, "coalesce: no bulk rows delivered")
    # Userpilot processes bulk rows at about 1,200 a minute; the emulator's jobs take three
    # --job_step whatever their size, so its figure is an upper bound of the mechanism.
    projected = share + 1200 / 60
    rows = [
        ["off (per-call only)", f"{off['backlog']}", f"{off['seconds']}", f"{off['delivered']}",
         f"{off['deliveries_per_s']}", "-", f"{share:.1f}"],
        ["on (bulk jobs + per-call)", f"{on['backlog']}", f"{on['seconds']}",
         f"{on['delivered']}", f"{on['deliveries_per_s']}", f"{on['jobs']} / {on['rows']}",
         f"{projected:.1f} (at Userpilot's ~1,200 rows/min)"],
    ]
    data = {"per_call_budget": args.coalesce_budget, "per_call_per_s": round(per_call, 2),
            "dispatcher_share_per_s": round(share, 2), "job_step": args.coalesce_job_step,
            "off": off, "on": on, "speedup": round(on["deliveries_per_s"] /
                                                   max(off["deliveries_per_s"], 1e-6), 1),
            "projected_userpilot_per_s": round(projected, 1)}
    text = table(["coalescing", "backlog", "s", "delivered", "deliveries/s", "jobs / rows",
                  "expected/s"], rows)
    text += (f"\neffective identify throughput with coalescing: {on['deliveries_per_s']}/s "
             f"against the per-call budget {args.coalesce_budget} ({per_call:.1f}/s; the "
             f"dispatcher's share {share:.1f}/s): x{data['speedup']} on the emulator")
    return data, text


def _coalesce_arguments(parser):
    parser.add_argument("--coalesce_budget", default="600/1m",
                        help="coalesce: the per-call identify budget COUNT/WINDOW")
    parser.add_argument("--coalesce_backlog", type=int, default=10000,
                        help="coalesce: identifies queued with coalescing on")
    parser.add_argument("--coalesce_threshold", type=int, default=1000,
                        help="coalesce: --queue_coalesce_threshold")
    parser.add_argument("--coalesce_off_seconds", type=float, default=30,
                        help="coalesce: measured time with coalescing off")
    parser.add_argument("--coalesce_job_step", default="1s",
                        help="coalesce: the emulator's --job_step (a job takes three)")


SCENARIOS["coalesce"] = scenario_coalesce
EXTRA_ARGUMENTS = globals().get("EXTRA_ARGUMENTS", []) + [_coalesce_arguments]
# ---- end of coalesce


# --------------------------------------------------------------------------------------------
# enqueue (issue 16): acknowledged Enqueue calls per second and the acknowledgement's latency
# (fsync included) on this machine's disk. Self-contained.
#   bench/run.sh enqueue [--enqueue_concurrency=1,16,64] [--enqueue_batch_concurrency=1,4] [--smoke]
# Needs the Python client stubs of the build (target userpilot_gateway_python).


def _enqueue_metrics(text):
    """The delivery series of a /metrics text: {name or name{labels}: value}."""
    out = {}
    for line in text.splitlines():
        if line.startswith("userpilot_gateway_delivery_"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def _enqueue_cpu_seconds(pid):
    """utime + stime of a process so far, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _enqueue_server_side(before, after):
    """From two /metrics snapshots: appends acknowledged, the append histogram's p50 and p99
    (interpolated within its buckets, so coarse), group commits, their mean fdatasync time, and
    calls per fdatasync."""
    def delta(key):
        return after.get(key, 0.0) - before.get(key, 0.0)

    buckets = sorted((float(k.split('le="')[1].split('"')[0]), delta(k)) for k in after
                     if k.startswith("userpilot_gateway_delivery_append_seconds_bucket"))
    count = delta("userpilot_gateway_delivery_append_seconds_count")

    def quantile(q):
        if count <= 0:
            return None
        rank, prev_le, prev_n = q * count, 0.0, 0.0
        for le, n in buckets:
            if n >= rank:
                if le == float("inf"):
                    return prev_le * 1000
                share = (rank - prev_n) / (n - prev_n) if n > prev_n else 1.0
                return (prev_le + (le - prev_le) * share) * 1000
            prev_le, prev_n = le, n
        return None

    fsyncs = delta("userpilot_gateway_delivery_fsyncs_total")
    fsync_s = delta("userpilot_gateway_delivery_fsync_seconds_total")
    return {"appends": count, "append_p50_ms": quantile(0.5), "append_p99_ms": quantile(0.99),
            "fsyncs": fsyncs, "fsync_mean_ms": fsync_s / fsyncs * 1000 if fsyncs else None,
            "appends_per_fsync": count / fsyncs if fsyncs else None}


def _enqueue_closed_loop(addr, method, make_request, concurrency, duration_s, warmup_s,
                         per_call):
    """`concurrency` callers on one grpc.aio channel to `addr`, each calling `method` again as
    soon as its previous call is answered; measured after `warmup_s`, for `duration_s`. Returns
    the latencies (ms) of the calls answered OK in the window, the status codes of all calls in
    it, and the client's CPU seconds."""
    import asyncio
    import grpc
    from userpilot.gateway.v1 import gateway_pb2_grpc

    async def run():
        loop = asyncio.get_running_loop()
        channel = grpc.aio.insecure_channel(addr)
        await asyncio.wait_for(channel.channel_ready(), 10)
        stub_method = getattr(gateway_pb2_grpc.UserpilotGatewayStub(channel), method)
        start = loop.time()
        measure_from, stop_at = start + warmup_s, start + warmup_s + duration_s
        latencies, codes = [], {}

        async def caller(w):
            n = 0
            while loop.time() < stop_at:
                request = make_request(w, n)
                n += 1
                t0 = loop.time()
                try:
                    answer = await stub_method(request, timeout=10)
                    code = per_call(answer)
                except grpc.aio.AioRpcError as e:
                    code = e.code().name
                t1 = loop.time()
                if t0 >= measure_from and t1 <= stop_at:
                    codes[code] = codes.get(code, 0) + 1
                    if code == "OK":
                        latencies.append((t1 - t0) * 1000)

        cpu0 = time.process_time()
        await asyncio.gather(*(caller(w) for w in range(concurrency)))
        cpu = time.process_time() - cpu0
        await channel.close()
        return latencies, codes, cpu

    return asyncio.run(run())


def scenario_enqueue(env, args, check):
    """Closed-loop callers (args.enqueue_concurrency levels) call Enqueue (one track call each)
    against a gateway whose embedded queue (--queue_dir) is in a folder on this machine's disk:
    acknowledged calls per second and the acknowledgement's latency as the caller sees it (the
    durable append, group commit and fdatasync included) and as the gateway's append histogram
    sees it; then EnqueueBatch of args.enqueue_batch calls. The emulator delivers the backlog in
    the background (limits off, budgets huge). The client is Python's grpc.aio in one process:
    its CPU seconds per call are reported, since at high rates it, not the gateway, may be the
    limit."""
    import shutil
    sys.path.insert(0, os.path.join(args.build, "clients/python/package"))
    from userpilot.gateway.v1 import gateway_pb2

    queue_dir = tempfile.mkdtemp(prefix="upgw-bench-queue-", dir=args.enqueue_dir or None)
    fs = subprocess.run(["df", "--output=fstype", queue_dir], capture_output=True,
                        text=True).stdout.split()[-1:]
    emulator, url = env.start_emulator("--rate_limits=false", "--request_log_capacity=0")
    gateway, addr = env.start_gateway(url, f"--queue_dir={queue_dir}", "--access_log=false",
                                      *huge_budget_flags())
    metrics_port = gateway.wait_for(r"/metrics on port (\d+)", 10).group(1)
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"

    def scrape():
        with urllib.request.urlopen(metrics_url, timeout=10) as r:
            return _enqueue_metrics(r.read().decode())

    def track(w, n):
        return gateway_pb2.EnqueueRequest(track_event=gateway_pb2.TrackEventRequest(
            user_id=f"bench-user-{w}-{n % 50}", event_name=f"bench-event-{n}"))

    def batch(w, n):
        return gateway_pb2.EnqueueBatchRequest(
            calls=[track(w, n * args.enqueue_batch + i) for i in range(args.enqueue_batch)])

    def batch_outcome(answer):
        bad = [o.code for o in answer.outcomes if o.code != 0]
        return "OK" if not bad and len(answer.outcomes) == args.enqueue_batch else \
            f"item code {bad[0] if bad else 'missing'}"

    if args.smoke:
        args.enqueue_concurrency, args.enqueue_batch_concurrency = "1,4", "1"
        args.enqueue_batch = 10
    duration, warmup = parse_seconds(args.duration), parse_seconds(args.warmup)
    levels = [("Enqueue", int(c)) for c in args.enqueue_concurrency.split(",")]
    levels += [("EnqueueBatch", int(c)) for c in args.enqueue_batch_concurrency.split(",")]
    rows, data = [], {"queue_dir_fstype": fs[0] if fs else "unknown", "levels": []}
    try:
        for method, concurrency in levels:
            before = scrape()
            load = os.getloadavg()[0]
            cpu_before = {p: _enqueue_cpu_seconds(proc.pid)
                          for p, proc in (("gateway", gateway), ("emulator", emulator))}
            wall_before = time.monotonic()
            latencies, codes, client_cpu = _enqueue_closed_loop(
                addr, method, track if method == "Enqueue" else batch, concurrency, duration,
                warmup, (lambda a: "OK") if method == "Enqueue" else batch_outcome)
            server = _enqueue_server_side(before, scrape())
            wall = time.monotonic() - wall_before
            # CPU cores each process kept busy over the level (warm-up included).
            cores = {p: (_enqueue_cpu_seconds(proc.pid) - cpu_before[p]) / wall
                     for p, proc in (("gateway", gateway), ("emulator", emulator))}
            cores["client"] = client_cpu / wall
            per = 1 if method == "Enqueue" else args.enqueue_batch
            ok = len(latencies)
            level = {"method": method, "concurrency": concurrency, "per_call": per,
                     "rpcs_per_s": ok / duration, "calls_per_s": ok * per / duration,
                     "p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99),
                     "codes": codes, "client_cpu_ms_per_rpc": client_cpu / max(ok, 1) * 1000,
                     "loadavg_1m": load, "server": server, "cpu_cores": cores}
            data["levels"].append(level)
            check.that(ok > 0, f"enqueue {method} x{concurrency}: no acknowledged call")
            check.that(set(codes) <= {"OK"}, f"enqueue {method} x{concurrency}: codes {codes}")
            rows.append([method, concurrency, f"{level['rpcs_per_s']:,.0f}",
                         f"{level['calls_per_s']:,.0f}", fmt(level["p50_ms"], 2),
                         fmt(level["p99_ms"], 2), fmt(server["append_p50_ms"], 2),
                         fmt(server["append_p99_ms"], 2), fmt(server["fsync_mean_ms"], 2),
                         fmt(server["appends_per_fsync"], 1),
                         fmt(level["client_cpu_ms_per_rpc"], 3),
                         " / ".join(f"{cores[p]:.2f}" for p in ("gateway", "emulator", "client")),
                         f"{load:.2f}"])
        after = scrape()
        data["delivered_by_end"] = after.get(
            'userpilot_gateway_delivery_attempts_total{outcome="delivered"}', 0)
        data["backlog_at_end"] = after.get("userpilot_gateway_delivery_backlog_calls", 0)
    finally:
        shutil.rmtree(queue_dir, ignore_errors=True)
    text = table(["rpc", "callers", "rpcs/s", "calls/s", "p50 ms", "p99 ms", "append p50",
                  "append p99", "fsync ms", "appends/fsync", "client CPU ms/rpc",
                  "cores gw/emu/client", "load 1m"], rows)
    text += (f"\nqueue folder on {data['queue_dir_fstype']}; p50/p99: the caller's "
             "acknowledgement latency; append p50/p99: the gateway's append histogram "
             "(durable, bucket-interpolated); fsync ms: mean group-commit fdatasync (the "
             "dispatcher's lease and outcome records share them); cores: CPU each process kept "
             "busy; load 1m: at the level's start (this scenario's own processes included); "
             f"delivered meanwhile {data['delivered_by_end']:,.0f}, backlog at the end "
             f"{data['backlog_at_end']:,.0f}")
    return data, text


def _enqueue_arguments(parser):
    parser.add_argument("--enqueue_concurrency", default="1,16,64",
                        help="enqueue: closed-loop Enqueue callers, one level at a time")
    parser.add_argument("--enqueue_batch_concurrency", default="1,4",
                        help="enqueue: closed-loop EnqueueBatch callers")
    parser.add_argument("--enqueue_batch", type=int, default=100, help="enqueue: calls a batch")
    parser.add_argument("--enqueue_dir", help="enqueue: where the queue folder goes (default: "
                        "the system's temporary folder)")


SCENARIOS["enqueue"] = scenario_enqueue
EXTRA_ARGUMENTS = globals().get("EXTRA_ARGUMENTS", []) + [_enqueue_arguments]
# ---- end of enqueue


if __name__ == "__main__":
    sys.exit(main())
