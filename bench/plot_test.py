#!/usr/bin/python3
"""bench/plot.py on canned result files (bench/testdata/): the PNGs are written and hold a
picture, results without data to draw are skipped, unreadable ones fail, and the upstream rate
it draws is the trailing-window count the budget bounds. No display: Agg backend."""

import contextlib
import copy
import io
import json
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import matplotlib.image  # noqa: E402

import plot  # noqa: E402

TESTDATA = os.path.join(HERE, "testdata")


def load(name):
    with open(os.path.join(TESTDATA, name)) as f:
        return json.load(f)


class PlotTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = os.path.join(self.tmp.name, "plots")

    def tearDown(self):
        self.tmp.cleanup()

    def run_plot(self, *paths):
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            status = plot.main(["--out", self.out, *paths])
        return status, stdout.getvalue().split(), stderr.getvalue()

    def write(self, name, doc):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            json.dump(doc, f)
        return path

    def assert_picture(self, png):
        with open(png, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n", png)
        pixels = matplotlib.image.imread(png)
        self.assertGreater(pixels.shape[0], 200)
        self.assertGreater(pixels.shape[1], 400)
        self.assertGreater(pixels.std(), 0.01, f"{png} is blank")

    def test_draws_overload_and_overhead(self):
        status, written, err = self.run_plot(os.path.join(TESTDATA, "overload-canned.json"),
                                             os.path.join(TESTDATA, "overhead-canned.json"))
        self.assertEqual(status, 0, err)
        self.assertEqual(sorted(os.path.basename(p) for p in written),
                         ["overhead-canned-latency.png", "overload-canned-upstream.png"])
        self.assertEqual(sorted(os.listdir(self.out)),
                         ["overhead-canned-latency.png", "overload-canned-upstream.png"])
        for png in written:
            self.assert_picture(png)

    def test_overhead_without_cdf_uses_summary_percentiles(self):
        doc = load("overhead-canned.json")
        for run in doc["data"]["runs"]:
            for res in run["results"]:
                del res["latency_cdf_ms"]
        status, written, err = self.run_plot(self.write("overhead-old.json", doc))
        self.assertEqual(status, 0, err)
        self.assertEqual(len(written), 1)
        self.assert_picture(written[0])
        self.assertEqual([q for _, q in plot.cdf_points(doc["data"]["runs"][0]["results"][0])],
                         [0.5, 0.9, 0.99, 0.999])

    def test_burst_draws_each_scenario_and_target(self):
        doc = load("burst-canned.json")
        self.assertEqual(
            [(title, len(series["accepted_s"]), len(series["refused_s"]))
             for title, series in plot.burst_panels(doc)],
            [("100 after idle (600/1m): through the gateway", 30, 0),
             ("100 after idle (600/1m): direct to an emulator of its own (the excess answered "
              "429)", 30, 0),
             ("2x budget bursts (10/1s): through the gateway", 40, 0),
             ("2x budget bursts (10/1s): direct to an emulator of its own (the excess answered "
              "429)", 20, 20)])
        status, written, err = self.run_plot(os.path.join(TESTDATA, "burst-canned.json"))
        self.assertEqual(status, 0, err)
        self.assertEqual([os.path.basename(p) for p in written], ["burst-canned-upstream.png"])
        self.assert_picture(written[0])
        # Four stacked panels: taller than the overload picture's one.
        self.assertGreater(matplotlib.image.imread(written[0]).shape[0], 4 * 300)
        # The gateway's bursts of twice the budget reach Userpilot at the budget's rate.
        gateway = doc["data"]["2x budget bursts (10/1s)"]["gateway"]["upstream_series"]
        _, rates = plot.trailing_window_rate(gateway["accepted_s"], 1.0, 0.01, 4.0)
        self.assertEqual(max(rates), 10)

    def test_burst_files_without_upstream_series_have_nothing_to_draw(self):
        doc = copy.deepcopy(load("burst-canned.json"))
        for sub in doc["data"].values():
            for res in sub.values():
                del res["upstream_series"]
        status, written, err = self.run_plot(self.write("burst-percentiles-only.json", doc))
        self.assertEqual((status, written), (0, []))
        self.assertIn("nothing to draw for burst", err)

    def test_run_py_records_the_series_plot_py_draws(self):
        # run.py's upstream_series() on an emulator request log: the receipt times of one path
        # since t0, split by answer; other paths (the gateway's key check) are left out.
        import run  # noqa: E402  (bench/run.py, beside this file)
        t0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
        log = [{"path": "/v1/validate", "response_status": 200,
                "received_at": "2027-01-15T08:00:00.100000Z"},
               {"path": "/v1/identify", "response_status": 429,
                "received_at": "2027-01-15T08:00:00.750000Z"},
               {"path": "/v1/identify", "response_status": 202,
                "received_at": "2027-01-15T08:00:00.500000Z"},
               {"path": "/v1/identify", "response_status": 202,
                "received_at": "2027-01-15T08:00:00.250000Z"}]
        series = run.upstream_series(log, "/v1/identify", t0, 1.0, 10)
        self.assertEqual(series, {"budget_count": 10, "window_s": 1.0,
                                  "accepted_s": [0.25, 0.5], "refused_s": [0.75]})
        doc = load("burst-canned.json")
        doc["data"] = {"2x budget bursts (10/1s)": {"gateway": {"upstream_series": series}}}
        status, written, err = self.run_plot(self.write("burst-from-log.json", doc))
        self.assertEqual(status, 0, err)
        self.assert_picture(written[0])

    def test_nothing_to_draw_and_unreadable(self):
        doc = copy.deepcopy(load("overload-canned.json"))
        del doc["data"]["identify"]["upstream_series"]  # files from before it was recorded
        failed = dict(doc, data=None)
        footprint = dict(doc, scenario="footprint", data={"rss_idle_mb": 20})
        status, written, err = self.run_plot(self.write("old.json", doc),
                                             self.write("failed.json", failed),
                                             self.write("footprint.json", footprint))
        self.assertEqual((status, written), (0, []))
        self.assertEqual(err.count("nothing to draw"), 3, err)
        garbage = os.path.join(self.tmp.name, "garbage.json")
        with open(garbage, "w") as f:
            f.write("{not json")
        status, written, err = self.run_plot(garbage, os.path.join(TESTDATA, "overload-canned.json"))
        self.assertEqual(status, 1)
        self.assertIn("garbage.json: not a scenario result", err)
        self.assertEqual(len(written), 1)  # the readable file is still drawn

    def test_trailing_window_rate(self):
        # 20 at once from 0.3 s, then one every 50 ms from 1.32 s: the 1 s window holds the
        # burst until 1.32 s, then the paced requests replace it one for one.
        times = load("overload-canned.json")["data"]["identify"]["upstream_series"]["accepted_s"]
        ts, rates = plot.trailing_window_rate(times, 1.0, 0.1, 2.5)
        at = {round(t, 1): r for t, r in zip(ts, rates)}
        self.assertEqual(len(ts), 26)
        self.assertEqual(at[0.2], 0)
        self.assertEqual(at[0.4], 20)  # the burst: 20 requests in the window = 20/s
        self.assertEqual(at[1.2], 20)
        self.assertEqual(at[1.4], 2)  # the burst left at 1.3 s; 1.32 and 1.37 remain
        self.assertEqual(at[2.3], 20)  # all 20 paced requests, 1.32 to 2.27
        self.assertEqual(at[2.4], 18)  # 1.42 to 2.27
        xs, per_s = plot.bin_rate(times, 0.5, 2.5)
        self.assertEqual(xs, [0, 0.5, 1.0, 1.5, 2.0, 2.5])
        self.assertEqual(per_s, [40, 0, 8, 20, 12, 0])  # 20 in [0, 0.5) = 40/s, ...

if __name__ == "__main__":
    unittest.main()
