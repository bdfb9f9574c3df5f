"""contract.checks: the build's descriptor set and service config pass contract_checks, and each
check catches what it is for (a deliberately broken copy of the real input is refused).

Environment (set by CMake): UPGW_SOURCE_DIR, UPGW_DESCRIPTOR_SET, UPGW_SERVICE_CONFIG,
UPGW_GRPC_SERVICE_CONFIG_SCHEMA (a descriptor set of gRPC's service_config.proto), UPGW_PROTO_FILE.
"""

import copy
import json
import os
import unittest

from google.protobuf import descriptor_pb2

import contract_checks as checks

SOURCE_DIR = os.environ["UPGW_SOURCE_DIR"]
PROTO_FILE = os.environ.get("UPGW_PROTO_FILE", "userpilot/gateway/v1/gateway.proto")
FILES = [PROTO_FILE]
SERVICE = "userpilot.gateway.v1.UserpilotGateway"


def entry(config, method):
    for item in config["methodConfig"]:
        if item["name"] == [{"service": SERVICE, "method": method}]:
            return item
    raise KeyError(method)


def service_proto(descriptor_set):
    for file in descriptor_set.file:
        if file.name == PROTO_FILE:
            return file.service[0]
    raise KeyError(PROTO_FILE)


def set_level(descriptor_set, method_name, level):
    for method in service_proto(descriptor_set).method:
        if method.name == method_name:
            method.options.idempotency_level = level
            return
    raise KeyError(method_name)


class ServiceConfigTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.descriptors = checks.load_descriptor_set(os.environ["UPGW_DESCRIPTOR_SET"])
        with open(os.environ["UPGW_SERVICE_CONFIG"]) as f:
            cls.text = f.read()
        cls.config = json.loads(cls.text)
        cls.schema = checks.load_descriptor_set(os.environ["UPGW_GRPC_SERVICE_CONFIG_SCHEMA"])

    def problems(self, config):
        return checks.check_service_config(config, self.descriptors, FILES)

    def test_matches_grpc_schema(self):
        self.assertEqual(checks.check_service_config_schema(self.text, self.schema), [])

    def test_matches_descriptors(self):
        self.assertEqual(self.problems(self.config), [])

    def test_every_method_of_the_service_once(self):
        named = [(n["service"], n["method"]) for e in self.config["methodConfig"]
                 for n in e["name"]]
        declared = [(SERVICE, m.name) for m in service_proto(self.descriptors).method]
        self.assertEqual(named, declared)
        self.assertGreaterEqual(len(declared), 12)

    def test_retries_and_timeouts_as_documented(self):
        # Spot checks of what the levels in gateway.proto imply.
        self.assertEqual(entry(self.config, "GetJob")["retryPolicy"]["retryableStatusCodes"],
                         ["UNAVAILABLE"])
        self.assertIn("retryPolicy", entry(self.config, "IdentifyUser"))
        for method in ("TrackEvent", "BulkIdentifyUsers", "BulkIdentifyCompanies", "ImportData"):
            self.assertNotIn("retryPolicy", entry(self.config, method), method)
        self.assertNotIn("timeout", entry(self.config, "WatchJobs"))
        # The documented timeouts (docs/contract.md), one method per class.
        for method, timeout in (("GetJob", "10s"), ("BulkIdentifyUsers", "60s"),
                                ("TrackEvent", "10s"), ("ImportData", "600s")):
            self.assertEqual(entry(self.config, method)["timeout"], timeout, method)

    def test_schema_check_catches_mistakes(self):
        for broken in (self.text.replace('"waitForReady"', '"waitForReadyy"'),
                       self.text.replace('"UNAVAILABLE"', '"UNAVAILABLE_"'),
                       self.text.replace('"0.2s"', '"200ms"'),
                       self.text.replace('"waitForReady"', '"wait_for_ready"')):
            self.assertNotEqual(checks.check_service_config_schema(broken, self.schema), [])

    def test_descriptor_check_catches_mistakes(self):
        def broken(change):
            config = copy.deepcopy(self.config)
            change(config)
            return self.problems(config)

        def retry_track(c):
            entry(c, "TrackEvent")["retryPolicy"] = entry(c, "GetJob")["retryPolicy"]

        def retry_exhausted(c):
            entry(c, "GetJob")["retryPolicy"]["retryableStatusCodes"].append("RESOURCE_EXHAUSTED")

        def drop_method(c):
            c["methodConfig"] = [e for e in c["methodConfig"]
                                 if e["name"][0]["method"] != "ListJobs"]

        def unknown_method(c):
            entry(c, "GetJob")["name"].append({"service": SERVICE, "method": "GetJobs"})

        def no_retry_read(c):
            del entry(c, "ListJobs")["retryPolicy"]

        def fail_fast(c):
            entry(c, "DeleteUsers")["waitForReady"] = False

        def no_timeout(c):
            del entry(c, "IdentifyCompany")["timeout"]

        def watch_timeout(c):
            entry(c, "WatchJob")["timeout"] = "30s"

        def no_throttling(c):
            del c["retryThrottling"]

        for change in (retry_track, retry_exhausted, drop_method, unknown_method, no_retry_read,
                       fail_fast, no_timeout, watch_timeout, no_throttling):
            with self.subTest(change.__name__):
                self.assertNotEqual(broken(change), [])

    def test_config_follows_a_changed_level(self):
        # The generator reads levels from the descriptors: a level changed in a copy of the
        # descriptors makes the built config wrong for that copy.
        descriptors = descriptor_pb2.FileDescriptorSet()
        descriptors.CopyFrom(self.descriptors)
        set_level(descriptors, "TrackEvent", checks.IDEMPOTENT)
        problems = checks.check_service_config(self.config, descriptors, FILES)
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("TrackEvent", problems[0])


class ReleaseTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.descriptors = checks.load_descriptor_set(os.environ["UPGW_DESCRIPTOR_SET"])
        cls.releases = checks.release_images(SOURCE_DIR)

    def test_there_is_a_release(self):
        self.assertIn("v0.1.0.json", self.releases)
        released = checks.methods(self.releases["v0.1.0.json"])
        self.assertEqual(released[(SERVICE, "GetJob")].output_type, ".userpilot.gateway.v1.Job")

    def test_lint_ignores_are_the_allowed_exceptions(self):
        self.assertEqual(checks.check_lint_ignores(self.descriptors, FILES, self.releases), [])

    def test_levels_not_lowered(self):
        self.assertEqual(checks.check_levels_not_lowered(self.descriptors, self.releases), [])

    def test_lowered_level_is_caught(self):
        descriptors = descriptor_pb2.FileDescriptorSet()
        descriptors.CopyFrom(self.descriptors)
        set_level(descriptors, "GetJob", checks.UNKNOWN)  # raised since v0.1.0, now lowered
        releases = dict(self.releases)
        raised = descriptor_pb2.FileDescriptorSet()
        raised.CopyFrom(self.descriptors)
        releases["v9.json"] = raised
        problems = checks.check_levels_not_lowered(descriptors, releases)
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("GetJob", problems[0])

    def test_unallowed_ignores_are_caught(self):
        def with_comment(path, text):
            descriptors = descriptor_pb2.FileDescriptorSet()
            descriptors.CopyFrom(self.descriptors)
            for file in descriptors.file:
                if file.name == PROTO_FILE:
                    for location in file.source_code_info.location:
                        if list(location.path) == path:
                            location.leading_comments += text
                            return descriptors
            raise KeyError(path)

        service = service_proto(self.descriptors)
        index = {m.name: i for i, m in enumerate(service.method)}
        cases = {
            # A rule buf.yaml does not excuse.
            "other rule": with_comment([6, 0, 2, index["GetJob"]],
                                       " buf:lint:ignore RPC_REQUEST_STANDARD_NAME\n"),
            # An allowed rule on a message.
            "on a message": with_comment([4, 0], " buf:lint:ignore SERVICE_SUFFIX\n"),
        }
        for name, descriptors in cases.items():
            with self.subTest(name):
                self.assertNotEqual(
                    checks.check_lint_ignores(descriptors, FILES, self.releases), [])
        # An RPC of no release (a release image without it) may not use the exception.
        releases = {}
        for name, image in self.releases.items():
            copy_ = descriptor_pb2.FileDescriptorSet()
            copy_.CopyFrom(image)
            for file in copy_.file:
                for s in file.service:
                    kept = [m for m in s.method if m.name != "ImportData"]
                    del s.method[:]
                    s.method.extend(kept)
            releases[name] = copy_
        problems = checks.check_lint_ignores(self.descriptors, FILES, releases)
        self.assertTrue(problems)
        self.assertTrue(all("ImportData" in p for p in problems), problems)


if __name__ == "__main__":
    unittest.main()
