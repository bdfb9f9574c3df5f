"""/metrics against idle and slow clients, on the real gateway binary (issue 13 item 7).

The metrics server (civetweb under prometheus-cpp) serves each connection on one of a fixed set
of worker threads until the connection closes. A client that connects and sends nothing, or
sends its request a byte at a time (slow loris), holds a worker; once all are held, Prometheus'
scrape waits. The gateway runs 16 workers, closes a connection whose request has not arrived
whole within 5 s, and keeps no connection alive after its answer (service/metrics/
metrics_server.h). Proven here:
  - with several idle and several slow-loris connections open, a scrape succeeds promptly;
  - the server closes both kinds after the request timeout (for the slow loris, although it
    keeps sending);
  - with more idle connections than workers, a scrape still succeeds within the request timeout.
"""

import socket
import threading
import time
import unittest

import upgw_harness as harness

WORKERS = 16            # MetricsServerOptions::threads
REQUEST_TIMEOUT = 5.0   # MetricsServerOptions::request_timeout, seconds
PROMPT = 2.0            # seconds a scrape may take beside held connections on a loaded machine
SLACK = 5.0             # seconds beyond the request timeout before a held connection must be gone


class SlowLoris:
    """Connections that send a request's first line and then one header byte every `interval`
    seconds, never finishing it, until stopped or closed by the server."""

    def __init__(self, port, count, interval=0.5):
        self.sockets = [socket.create_connection(("127.0.0.1", port), timeout=5)
                        for _ in range(count)]
        for s in self.sockets:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        self.closed_by_server = [False] * count
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, args=(interval,), daemon=True)
        self._thread.start()

    def _trickle(self, interval):
        while not self._stop.wait(interval):
            for i, s in enumerate(self.sockets):
                if self.closed_by_server[i]:
                    continue
                try:
                    s.sendall(b"a")
                except OSError:
                    self.closed_by_server[i] = True

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        for s in self.sockets:
            s.close()


def idle_connections(port, count):
    return [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]


def closed_by_peer(s, timeout):
    """True when the server closes `s` within `timeout` seconds (after an error answer, say:
    reading ends or the connection is reset)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        s.settimeout(left)
        try:
            if s.recv(4096) == b"":
                return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


class MetricsExposureTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emulator = harness.Emulator()
        try:
            cls.gateway = harness.Gateway(cls.emulator.url)
        except BaseException:
            cls.emulator.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.gateway.stop()
        cls.emulator.cleanup()

    def scrape(self, timeout):
        """(seconds the scrape took, its text)."""
        started = time.monotonic()
        text = self.gateway.metrics(timeout=timeout)
        return time.monotonic() - started, text

    def test_control_a_scrape_succeeds(self):
        took, text = self.scrape(PROMPT)
        self.assertIn("userpilot_gateway_build_info", text)

    def test_idle_and_slow_loris_connections_leave_scrapes_prompt(self):
        idle = idle_connections(self.gateway.metrics_port, 6)
        loris = SlowLoris(self.gateway.metrics_port, 6)
        try:
            time.sleep(0.3)  # Every connection is accepted and holds its worker.
            for _ in range(3):
                took, text = self.scrape(PROMPT)
                self.assertIn("userpilot_gateway_build_info", text)
                self.assertLess(took, PROMPT)
        finally:
            loris.stop()
            for s in idle:
                s.close()

    def test_idle_and_slow_loris_connections_are_closed_after_the_request_timeout(self):
        idle = idle_connections(self.gateway.metrics_port, 1)[0]
        loris = SlowLoris(self.gateway.metrics_port, 1)
        started = time.monotonic()
        try:
            self.assertTrue(closed_by_peer(idle, REQUEST_TIMEOUT + SLACK),
                            "an idle connection is still open")
            self.assertTrue(closed_by_peer(loris.sockets[0],
                                           max(0.1, REQUEST_TIMEOUT + SLACK
                                               - (time.monotonic() - started))),
                            "a slow-loris connection is still open although it keeps sending")
        finally:
            loris.stop()
            idle.close()

    def test_more_idle_connections_than_workers_delay_a_scrape_by_at_most_the_timeout(self):
        idle = idle_connections(self.gateway.metrics_port, WORKERS + 8)
        try:
            time.sleep(0.3)
            took, text = self.scrape(REQUEST_TIMEOUT + SLACK)
            self.assertIn("userpilot_gateway_build_info", text)
            print(f"\nscrape behind {WORKERS + 8} idle connections: {took:.1f} s")
        finally:
            for s in idle:
                s.close()


if __name__ == "__main__":
    unittest.main()
