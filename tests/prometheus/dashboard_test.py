"""Static checks of deploy/grafana/userpilot-gateway.json (no servers; the live test is
prometheus_test.py): importable shape, one Prometheus datasource variable used everywhere,
every query filtered by $job and $instance, and every metric it reads declared by the gateway
(upgw_metrics_catalog)."""

import json
import os
import subprocess
import unittest

import expressions

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("UPGW_BUILD", os.path.join(HERE, "../../build"))
SOURCE = os.environ.get("UPGW_SOURCE", os.path.join(HERE, "../.."))
DASHBOARD = os.path.join(SOURCE, "deploy/grafana/userpilot-gateway.json")
CATALOG = os.path.join(BUILD, "service/metrics/upgw_metrics_catalog")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def panels(dashboard):
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


class DashboardTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(DASHBOARD) as f:
            cls.dashboard = json.load(f)

    def test_importable(self):
        d = self.dashboard
        self.assertIsNone(d["id"])  # Grafana assigns one on import.
        self.assertEqual(d["uid"], "userpilot-gateway")
        self.assertTrue(d["title"])
        self.assertIsInstance(d["schemaVersion"], int)

    def test_datasource_variable_used_by_every_panel_and_query(self):
        variables = {v["name"]: v for v in self.dashboard["templating"]["list"]}
        self.assertEqual(variables["datasource"]["type"], "datasource")
        self.assertEqual(variables["datasource"]["query"], "prometheus")
        for name in ("job", "instance"):
            self.assertEqual(variables[name]["datasource"], DATASOURCE)
        for panel in panels(self.dashboard):
            if panel["type"] == "row":
                continue
            self.assertEqual(panel["datasource"], DATASOURCE, panel["title"])
            self.assertTrue(panel["targets"], panel["title"])
            for target in panel["targets"]:
                self.assertEqual(target["datasource"], DATASOURCE, panel["title"])

    def test_ids_and_layout(self):
        ids = [p["id"] for p in panels(self.dashboard)]
        self.assertEqual(len(ids), len(set(ids)))
        for panel in panels(self.dashboard):
            pos = panel["gridPos"]
            self.assertLessEqual(pos["x"] + pos["w"], 24, panel["title"])
            if panel["type"] != "row":
                self.assertTrue(panel.get("description"), panel["title"])
                refs = [t["refId"] for t in panel["targets"]]
                self.assertEqual(len(refs), len(set(refs)), panel["title"])

    def test_every_query_selects_job_and_instance(self):
        for panel in panels(self.dashboard):
            for target in panel.get("targets", []):
                expr = target["expr"]
                selectors = expr.count("{")
                self.assertEqual(expr.count('job=~"$job",instance=~"$instance"'), selectors,
                                 f'{panel["title"]}: {expr}')

    def test_metrics_are_declared_by_the_gateway(self):
        catalog = subprocess.run([CATALOG], capture_output=True, text=True, check=True,
                                 timeout=30).stdout
        declared = expressions.declared_names(catalog)
        for where, expr in expressions.dashboard_expressions(DASHBOARD):
            names = expressions.metric_names(expr)
            self.assertTrue(names, f"{where}: reads no metric: {expr}")
            self.assertLessEqual(names, declared, f"{where}: {expr}")

    def test_expression_parser(self):
        self.assertEqual(
            expressions.metric_names(
                'sum by (grpc_method, le) (rate(a_bucket{x="b c",le!~"y"}[5m])) / on(job) '
                'group_left(instance) max without (z) (b_total offset 5m) + time() - c:d:e'),
            {"a_bucket", "b_total", "c:d:e"})
        self.assertEqual(expressions.metric_names('histogram_quantile(0.99, sum(x) by (le))'),
                         {"x"})
        self.assertEqual(expressions.metric_names('a > 1e-3 and b offset 1h30m unless 2-c'),
                         {"a", "b", "c"})


if __name__ == "__main__":
    unittest.main()
