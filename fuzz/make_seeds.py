#!/usr/bin/python3
"""Writes the fuzz targets' seed corpora (fuzz/corpus/TARGET/) from the unit tests' inputs.

Each seed is an input in the target's format (fuzz/*_fuzzer.cc says what the leading bytes
select), named by the SHA-1 of its contents as libFuzzer names its own. Sources:
  request_fuzzer            the request tables of service/validation/request_validator_test.cc
                            (JSON -> the request's wire bytes, with the tests' small limits)
  upstream_response_fuzzer  the JSON literals of service/upstream/json_mapping_test.cc and
                            error_mapping_test.cc (jobs, job lists, error bodies)
  import_file_fuzzer        the files of service/jobs/import/import_validator_test.cc's table
                            and the lines of json_row_reader_test.cc
  job_id_fuzzer             the job ids and encodings of http_userpilot_stub_test.cc
  caller_tokens_fuzzer      token files composed as caller_tokens_test.cc composes them, and
                            the allow-lists of caller_allow_list_test.cc
Run from anywhere with Debian's python3 (it needs protoc and the protobuf module):
  /usr/bin/python3 fuzz/make_seeds.py
"""
import hashlib
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")

# The RPC order of request_fuzzer.cc's kRpcs.
RPCS = ["IdentifyUserRequest", "IdentifyCompanyRequest", "BulkIdentifyUsersRequest",
        "BulkIdentifyCompaniesRequest", "TrackEventRequest", "ListJobsRequest", "GetJobRequest",
        "DeleteUsersRequest", "DeleteCompaniesRequest"]

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'",
            "a": "\a", "b": "\b", "f": "\f", "v": "\v", "?": "?"}


def _unescape(body):
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        n = body[i + 1]
        if n == "x":
            m = re.match(r"[0-9a-fA-F]+", body[i + 2:])
            out.append(int(m.group(0), 16) & 0xFF)
            i += 2 + len(m.group(0))
        elif n in "01234567":
            m = re.match(r"[0-7]{1,3}", body[i + 1:])
            out.append(int(m.group(0), 8) & 0xFF)
            i += 1 + len(m.group(0))
        else:
            out += _ESCAPES.get(n, n).encode()
            i += 2
    return bytes(out)


_TOKEN = re.compile(r'R"([^(\s]*)\((.*?)\)\1"|"((?:[^"\\\n]|\\.)*)"|//[^\n]*|/\*.*?\*/|\s+|.',
                    re.S)


def literals(text):
    """C++ string literals of `text` with their offsets, adjacent ones concatenated."""
    found = []
    current = None
    for m in _TOKEN.finditer(text):
        if m.group(2) is not None or m.group(3) is not None:
            value = m.group(2).encode() if m.group(2) is not None else _unescape(m.group(3))
            if current is None:
                current = [m.start(), value]
            else:
                current[1] += value
        elif m.group(0).strip() and not m.group(0).startswith(("//", "/*")):
            if current is not None:
                found.append(tuple(current))
                current = None
    if current is not None:
        found.append(tuple(current))
    return found


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


class Corpus:
    def __init__(self, target):
        self.dir = os.path.join(CORPUS, target)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.count = 0

    def add(self, data):
        name = hashlib.sha1(data).hexdigest()
        path = os.path.join(self.dir, name)
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(data)
            self.count += 1


def gateway_pb2():
    out = tempfile.mkdtemp()
    subprocess.run(["protoc", "--proto_path=" + os.path.join(ROOT, "proto"),
                    "--proto_path=/usr/include", "--python_out=" + out,
                    "userpilot/gateway/v1/gateway.proto"], check=True)
    sys.path.insert(0, out)
    return importlib.import_module("userpilot.gateway.v1.gateway_pb2")


def request_seeds():
    from google.protobuf import json_format
    pb = gateway_pb2()
    corpus = Corpus("request_fuzzer")
    text = read("service/validation/request_validator_test.cc")
    # Each table starts at `Case<XRequest>`; its literals run to the next table.
    starts = [(m.start(), m.group(1)) for m in re.finditer(r"Case<(\w+Request)>", text)]
    for i, (start, name) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(text)
        for _, value in literals(text[start:end]):
            if not value.lstrip().startswith(b"{"):
                continue
            message = getattr(pb, name)()
            try:
                json_format.Parse(value.decode("utf-8"), message)
            except Exception:  # A case that needs a mutation JSON cannot express.
                continue
            # The tables run with the small limits: RPC index + 9.
            corpus.add(bytes([RPCS.index(name) + len(RPCS)]) + message.SerializeToString())
    # A few undecodable ones, as request_decoder_test.cc builds them.
    corpus.add(bytes([0]) + b"\x0a\x02\xc3\x28")  # user_id: invalid UTF-8
    corpus.add(bytes([0]) + b"\x0a\x05ab")  # length past the end
    corpus.add(bytes([6]) + b"\x0a\x0ebulk:jobs:NX-1")
    return corpus


def upstream_seeds():
    corpus = Corpus("upstream_response_fuzzer")
    for path in ["service/upstream/json_mapping_test.cc", "service/upstream/error_mapping_test.cc"]:
        for _, value in literals(read(path)):
            v = value.strip()
            if not v.startswith((b"{", b"[")):
                continue
            if v.startswith(b"[") or b'"jobs"' in v or b'"data"' in v:
                corpus.add(b"\x01" + value)
            elif b"error" in v:
                corpus.add(b"\x03" + value)
            else:
                corpus.add(b"\x00" + value)
                corpus.add(b"\x02" + value)
    return corpus


def import_seeds():
    corpus = Corpus("import_file_fuzzer")
    modes = {("kUsers", "kNdjson"): 0, ("kCompanies", "kNdjson"): 1,
             ("kImport", "kNdjson"): 2, ("kImport", "kCsv"): 3}
    text = read("service/jobs/import/import_validator_test.cc")
    found = literals(text)
    for m in re.finditer(r"\{\"\w+\", (kUsers|kCompanies|kImport), (kNdjson|kCsv),", text):
        file = next(value for offset, value in found if offset >= m.end())
        # Chunks of 7 bytes (second byte 6), as the table test also feeds them.
        corpus.add(bytes([modes[(m.group(1), m.group(2))], 6]) + file)
    for _, value in literals(read("service/jobs/import/json_row_reader_test.cc")):
        if value.lstrip().startswith(b"{"):
            corpus.add(b"\x04" + value)
    return corpus


def job_id_seeds():
    corpus = Corpus("job_id_fuzzer")
    text = read("service/upstream/http_userpilot_stub_test.cc")
    start = text.index("// ----- Job ids in the path -----")
    end = text.find("// -----", start + 10)
    for _, value in literals(text[start:end if end > 0 else len(text)]):
        if value and b"\n" not in value and len(value) < 200:
            corpus.add(value)
    return corpus


def token_seeds():
    corpus = Corpus("caller_tokens_fuzzer")

    def hexdigest(token):
        return hashlib.sha256(token.encode()).hexdigest()

    files = [
        "# tokens of the calling services\n\nbilling %s\n  # indented comment\n"
        "gdpr-service\t%s  \r\nbilling    %s\n"
        % (hexdigest("secret-billing"), hexdigest("secret-gdpr").upper(),
           hexdigest("secret-billing-next")),
        "\ufeffbilling %s\n" % hexdigest("secret-billing"),
        "billing not-a-digest\n",
        "billing secret-billing\n",
        "bad name %s\n" % hexdigest("x"),
        "a %s\nb %s\n" % (hexdigest("same"), hexdigest("same")),
        "# only comments\n\n",
    ]
    for f in files:
        corpus.add(b"\x00" + f.encode())
    text = read("service/auth/caller_allow_list_test.cc")
    for _, value in literals(text):
        if b"=" in value:
            corpus.add(b"\x01" + value)
    corpus.add(b"\x01billing=IdentifyUser|TrackEvent,*=GetJob")
    return corpus


def main():
    for make in (request_seeds, upstream_seeds, import_seeds, job_id_seeds, token_seeds):
        corpus = make()
        print("%s: %d seeds" % (os.path.relpath(corpus.dir, ROOT), corpus.count))


if __name__ == "__main__":
    main()
