"""The gateway's speed targets, read by bench/run.py (scenario tables) and bench/report.py
(BENCHMARKS.md tables). Each is an upper bound; "rate" keys name the open-loop rate they apply to.
"""

# Latency the gateway adds over a direct libcurl call (gateway minus direct), in ms.
ADDED_P50_MS = {500: 0.15}
ADDED_P99_MS = {500: 1.0, 2000: 1.5}
# The gateway's own CPU (user + system) per 1,000 calls at 500 calls/s, in CPU-seconds.
CPU_S_PER_1K = {500: 0.12}
# Context switches of all the gateway's threads per call at 500 calls/s.
CTX_PER_CALL = {500: 5.0}
# Saturated (closed loop): the gateway's own CPU per call, in microseconds.
SATURATED_CPU_US_PER_CALL = 45.0


def verdict(value, limit):
    """'met' / '**missed**' for a value against an upper bound; '' when either is unknown."""
    if value is None or limit is None:
        return ""
    return "met" if value <= limit else "**missed**"
