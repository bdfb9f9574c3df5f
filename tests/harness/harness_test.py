"""Tests of upgw_harness: processes are awaited with deadlines, stopped or killed, never leaked;
the emulator's admin helpers and the window counting work."""

import os
import signal
import subprocess
import sys
import time
import unittest

import upgw_harness as harness


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # A zombie is dead for our purposes.
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class ProcessTest(unittest.TestCase):
    def test_waits_for_its_line_then_stops_with_sigterm(self):
        process = harness.Process("shell", ["sh", "-c", "echo ready 42; exec sleep 60"])
        self.assertEqual(process.wait_for_log(r"ready (\d+)", timeout=10).group(1), "42")
        self.assertEqual(process.stop(timeout=5), -signal.SIGTERM)
        self.assertFalse(alive(process.pid))
        process.cleanup()

    def test_sigkill_after_the_grace_when_sigterm_is_ignored(self):
        process = harness.Process("stubborn", ["sh", "-c", "trap '' TERM; echo up; sleep 60"])
        process.wait_for_log("up", timeout=10)
        started = time.monotonic()
        self.assertEqual(process.stop(timeout=0.5), -signal.SIGKILL)
        self.assertLess(time.monotonic() - started, 5)
        process.cleanup()

    def test_a_process_that_never_gets_ready_is_killed_and_reported(self):
        process = harness.Process("silent", ["sleep", "60"])
        with self.assertRaisesRegex(RuntimeError, "did not print"):
            process.wait_for_log("never", timeout=0.3)
        self.assertFalse(alive(process.pid))
        process.cleanup()

    def test_a_process_that_exits_early_is_reported_with_its_log(self):
        process = harness.Process("failing", ["sh", "-c", "echo bad flag >&2; exit 3"])
        with self.assertRaisesRegex(RuntimeError, "(?s)status 3.*bad flag"):
            process.wait_for_log("listening", timeout=10)
        process.cleanup()

    def test_children_die_with_the_test_process(self):
        # A Python child starts a sleeper through the harness and is SIGKILLed, as a ctest
        # timeout would: the sleeper must not outlive it.
        code = ("import upgw_harness as h, sys, time\n"
                "p = h.Process('orphan', ['sleep', '60'])\n"
                "print(p.pid, flush=True)\n"
                "time.sleep(60)\n")
        parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        try:
            pid = int(parent.stdout.readline())
            self.assertTrue(alive(pid))
            # setpriv sets the death signal, then execs sleep: until then the parent's death
            # would go unnoticed, so wait for the exec before killing the parent.
            harness.wait_for(lambda: comm(pid) == "sleep", 5, "setpriv to exec the sleeper")
        finally:
            parent.kill()
            parent.wait()
            parent.stdout.close()
        harness.wait_for(lambda: not alive(pid), 5, "the orphan to die")

    def test_wait_for_is_bounded_and_says_what_it_waited_for(self):
        with self.assertRaisesRegex(AssertionError, "the impossible.*ZeroDivisionError"):
            harness.wait_for(lambda: 1 / 0, 0.2, "the impossible")
        self.assertEqual(harness.wait_for(lambda: 7, 1, "a value"), 7)


class WindowsTest(unittest.TestCase):
    def test_max_in_any_half_open_window(self):
        self.assertEqual(harness.max_in_any_window([], 1), 0)
        self.assertEqual(harness.max_in_any_window([0, 0.5, 1.0, 1.9, 2.0], 1), 2)
        self.assertEqual(harness.max_in_any_window([0, 0.5, 1.0, 1.9, 2.0], 2), 4)

    def test_parse_time(self):
        self.assertEqual(harness.parse_time("1970-01-01T00:00:01.5Z"), 1.5)
        self.assertEqual(harness.parse_time("1970-01-01T00:01:00Z"), 60)


class EmulatorHelperTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emulator = harness.Emulator(["--identify_limit=2", "--rate_window=10s"])

    @classmethod
    def tearDownClass(cls):
        cls.emulator.cleanup()

    def post(self, path, body):
        import urllib.error
        import urllib.request
        request = urllib.request.Request(
            self.emulator.url + path, data=body.encode(), method="POST",
            headers={"Authorization": f"Token {harness.API_KEY}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as e:
            with e:
                return e.code

    def test_script_windows_and_reset(self):
        self.emulator.reset()
        self.emulator.script("status", status=503, path_prefix="/v1/track")
        self.assertEqual(self.post("/v1/track", '{"user_id":"u","event_name":"e"}'), 503)
        statuses = [self.post("/v1/identify", '{"user_id":"u"}') for _ in range(3)]
        self.assertEqual(statuses, [202, 202, 429])
        groups = self.emulator.windows(10)["groups"]
        self.assertEqual(groups["identify"]["max_in_window"], 3)
        self.assertEqual(groups["identify"]["max_accepted_in_window"], 2)
        self.assertEqual(groups["identify"]["rate_limited"], 1)
        self.assertEqual(groups["track"]["requests"], 1)
        self.assertEqual([r["response_status"] for r in self.emulator.requests_to("/v1/identify")],
                         [202, 202, 429])
        self.emulator.reset()
        self.assertEqual(self.emulator.requests(), [])

    def test_admin_errors_raise_with_the_emulators_message(self):
        with self.assertRaisesRegex(AssertionError, "400.*action"):
            self.emulator.script("teleport")


if __name__ == "__main__":
    unittest.main()
