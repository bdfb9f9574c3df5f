"""contract.buf: `buf lint` and `buf breaking` (against every release image in proto/releases/)
pass on the contract, with the repository's buf.yaml; and each catches what it is for: a copy of
the contract with one deliberate mistake is refused, naming the rule.

Environment (set by CMake): UPGW_BUF (the buf CLI from npm), UPGW_SOURCE_DIR.
"""

import glob
import os
import shutil
import subprocess
import tempfile
import unittest

BUF = os.environ["UPGW_BUF"]
SOURCE_DIR = os.environ["UPGW_SOURCE_DIR"]
PROTO = "proto/userpilot/gateway/v1/gateway.proto"
RELEASES = sorted(glob.glob(os.path.join(SOURCE_DIR, "proto/releases/*.json")))


def buf(args, cwd):
    """(exit status, stdout + stderr) of one buf command."""
    done = subprocess.run([BUF, *args], cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=120)
    return done.returncode, done.stdout


class BufTest(unittest.TestCase):
    def test_lint(self):
        status, out = buf(["lint"], SOURCE_DIR)
        self.assertEqual(status, 0, out)

    def test_breaking_against_every_release(self):
        self.assertTrue(RELEASES, "no release image in proto/releases/")
        for release in RELEASES:
            with self.subTest(os.path.basename(release)):
                status, out = buf(["breaking", "--against", release], SOURCE_DIR)
                self.assertEqual(status, 0, out)


class BufCatchesTest(unittest.TestCase):
    """Each case edits a copy of the contract (proto/ and buf.yaml) and expects the check to fail
    with the rule named."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="upgw-contract-")
        shutil.copytree(os.path.join(SOURCE_DIR, "proto"), os.path.join(self.dir, "proto"),
                        ignore=shutil.ignore_patterns("*.py", "__pycache__"))
        shutil.copy(os.path.join(SOURCE_DIR, "buf.yaml"), self.dir)
        with open(os.path.join(self.dir, PROTO)) as f:
            self.proto = f.read()

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def edit(self, old, new):
        self.assertEqual(self.proto.count(old), 1, old)
        with open(os.path.join(self.dir, PROTO), "w") as f:
            f.write(self.proto.replace(old, new))

    def expect(self, args, rule):
        status, out = buf(args, self.dir)
        self.assertNotEqual(status, 0, f"buf {' '.join(args)} passed:\n{out}")
        self.assertIn(rule, out)

    def expect_breaking(self, rule):
        # --error-format=json names the rule in each finding.
        self.expect(["breaking", "--error-format=json", "--against", RELEASES[0]], rule)

    def test_renamed_field(self):
        self.edit("string job_id = 1;\n  // `status`, as an enum.",
                  "string id = 1;\n  // `status`, as an enum.")
        self.expect_breaking("FIELD_SAME_NAME")

    def test_renumbered_field(self):
        self.edit("string raw_status = 3;", "string raw_status = 30;")
        self.expect_breaking("FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED")

    def test_changed_field_type(self):
        self.edit("optional int64 total_rows = 7;", "optional string total_rows = 7;")
        self.expect_breaking("FIELD_WIRE_JSON_COMPATIBLE_TYPE")

    def test_renamed_enum_value(self):
        self.edit("JOB_STATUS_QUEUED = 1;", "JOB_STATUS_WAITING = 1;")
        self.expect_breaking("ENUM_VALUE_SAME_NAME")

    def test_response_type_changed(self):
        self.edit("rpc GetJob(GetJobRequest) returns (Job) {",
                  "rpc GetJob(GetJobRequest) returns (ListJobsResponse) {")
        self.expect_breaking("RPC_SAME_RESPONSE_TYPE")

    def test_deleted_rpc(self):
        self.edit("rpc TrackEvent(TrackEventRequest) returns (TrackEventResponse);", "")
        self.expect_breaking("RPC_NO_DELETE")

    def test_stream_made_unary(self):
        self.edit("returns (stream Job) {\n    option idempotency_level = NO_SIDE_EFFECTS;\n  }\n\n"
                  "  // Streams every change",
                  "returns (Job) {\n    option idempotency_level = NO_SIDE_EFFECTS;\n  }\n\n"
                  "  // Streams every change")
        self.expect_breaking("RPC_SAME_SERVER_STREAMING")

    def test_uncommented_field(self):
        self.edit("  // `links`: Userpilot's link(s) for the job, as sent.\n", "")
        self.expect(["lint"], "should have a non-empty comment")

    def test_new_rpc_answering_the_resource(self):
        # A new RPC must use <Rpc>Response: the lint exception is per element, not per file.
        self.edit("  rpc ImportData(stream ImportDataRequest) returns (Job);",
                  "  rpc ImportData(stream ImportDataRequest) returns (Job);\n\n"
                  "  // Reads a job again.\n"
                  "  rpc GetJobAgain(GetJobAgainRequest) returns (Job);")
        with open(os.path.join(self.dir, PROTO), "a") as f:
            f.write("\n// The request of GetJobAgain.\nmessage GetJobAgainRequest {\n"
                    "  // The job.\n  string job_id = 1;\n}\n")
        self.expect(["lint", "--error-format=json"], "RPC_RESPONSE_STANDARD_NAME")


if __name__ == "__main__":
    unittest.main()
