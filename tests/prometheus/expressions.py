"""The PromQL expressions of the Grafana dashboard, and the metric names PromQL expressions read,
for tests/prometheus (the rules' expressions come from Prometheus itself, which loads them).

Grafana template variables are replaced by values Prometheus accepts: `$job` and `$instance`
(regex matchers, "All" = `.*`) by `.*`, `$__rate_interval` by a window that holds several
scrapes of the test's 1 s scrape interval.
"""

import json
import re


RATE_INTERVAL = "15s"

_SUBSTITUTIONS = [
    (re.compile(r"\$__rate_interval|\$\{__rate_interval\}"), RATE_INTERVAL),
    (re.compile(r"\$__interval|\$\{__interval\}"), RATE_INTERVAL),
    (re.compile(r"\$__range|\$\{__range\}"), "1m"),
    (re.compile(r"\$\{?(job|instance)\}?"), ".*"),
]


def substitute(expr):
    for pattern, value in _SUBSTITUTIONS:
        expr = pattern.sub(value, expr)
    return expr


def dashboard_expressions(path):
    """[(where, expr)] for every panel target and every query variable of the dashboard.

    A query variable `label_values(selector, label)` becomes the query Grafana runs for it:
    the series of `selector`.
    """
    with open(path) as f:
        dashboard = json.load(f)
    found = []

    def walk(panels):
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    found.append((f'panel "{panel["title"]}" {target["refId"]}',
                                  substitute(target["expr"])))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query.strip())
        assert match, f"variable {variable['name']}: unsupported query {query!r}"
        found.append((f'variable "{variable["name"]}"', substitute(match.group(1))))
    return found


def rule_expressions(rules_api_answer):
    """[(where, expr)] for every rule in an /api/v1/rules answer, and the recorded names."""
    found, recorded = [], set()
    for group in rules_api_answer["data"]["groups"]:
        for rule in group["rules"]:
            found.append((f'rule {rule["name"]}', rule["query"]))
            if rule["type"] == "recording":
                recorded.add(rule["name"])
    return found, recorded


# PromQL words that are not metric names.
_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
    "offset", "inf", "nan", "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk",
    "bottomk", "quantile", "count_values", "group", "atan2",
}
_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}


def metric_names(expr):
    """The metric names a PromQL expression selects (functions, keywords and labels removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # strings
    text = re.sub(r"\{[^{}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\[\]]*\]", " ", text)  # range and subquery windows
    names = set()
    # Identifiers, parentheses, numbers and durations ("5m", "1e3", "0.99"), anything else.
    tokens = re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*|\(|\)|[0-9.]+(?:[eE][+-]?[0-9]+)?[A-Za-z0-9_]*"
                         r"|[^\sA-Za-z0-9_:().]+", text)
    tokens = [t.group(0) for t in tokens]
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in _GROUPING and i + 1 < len(tokens) and tokens[i + 1] == "(":
            depth, i = 0, i + 1  # skip the label list
            while i < len(tokens):
                depth += {"(": 1, ")": -1}.get(tokens[i], 0)
                if depth == 0:
                    break
                i += 1
        elif re.fullmatch(r"[A-Za-z_:][A-Za-z0-9_:]*", token):
            is_call = i + 1 < len(tokens) and tokens[i + 1] == "("
            if token.lower() not in _KEYWORDS and not is_call:
                names.add(token)
        i += 1
    return names


def sample_names(exposition):
    """Names with at least one sample in a text exposition."""
    names = set()
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            names.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0))
    return names


def declared_names(exposition):
    """Every sample name the families declared by `# TYPE` lines can have."""
    names = set()
    for line in exposition.splitlines():
        match = re.match(r"# TYPE (\S+) (\S+)", line)
        if not match:
            continue
        name, kind = match.groups()
        names.add(name)
        if kind == "histogram":
            names.update({name + "_bucket", name + "_sum", name + "_count"})
        if kind == "summary":
            names.update({name + "_sum", name + "_count"})
    return names
