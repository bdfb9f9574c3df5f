"""The container image: the repository's Dockerfile built with buildah and run (ctest label `image`).

No Docker engine runs on the build machines and no registry is reachable, so:
  - the base image is made here: `mmdebstrap --variant=minbase bookworm` (Debian's packages,
    trimmed like Docker's debian:bookworm-slim) imported into buildah's storage as BASE_IMAGE;
  - the Dockerfile is built with `buildah bud --isolation chroot --storage-driver vfs`, FROM that
    base (build argument DEBIAN_IMAGE);
  - the image runs with `buildah run --isolation chroot --network host`, so the gateway inside
    reaches the emulator on the host's loopback and the test reaches the gateway there. buildah run
    has no read-only mode, so each run happens in a private mount namespace in which the
    container's root is bind-mounted read-only onto itself (Kubernetes' readOnlyRootFilesystem),
    with a tmpfs on /run (buildah's own run files) and the spool directory as the only writable
    volume: what the Kubernetes manifests give the container.

Two ways to get the gateway binary (the Dockerfile's `gateway` stage):
  - UPGW_IMAGE_FROM_SOURCE unset (ctest image.smoke, what CI runs): the binary this build tree
    already compiled (UPGW_GATEWAY_BIN, stripped) and the list of its runtime packages are passed
    as the named build context `gateway`, which replaces the from-source stage. The runtime stage
    is exactly the one users build; ldd inside the image proves that every library is there.
  - UPGW_IMAGE_FROM_SOURCE=1 (ctest image.from_source, label image_source): the Dockerfile's own
    build stage compiles the gateway, as `buildah bud .` or `docker build .` does for users.

Checked: the OCI labels (source, revision, version); the revision baked into the binary
(--version); a non-root user; a write to / (and /tmp) failing on the read-only root; ldd finding
every library; the packages the runtime stage adds to the base; health SERVING and an
IdentifyUser call reaching the emulator; an import spooled to the volume; SIGTERM draining to
exit status 0. Printed, and written to build/tests/image/report.txt (report-from-source.txt): the
time of each step, the image's size and the packages the runtime stage adds.

Needs root (buildah with vfs storage and chroot isolation, mount namespaces) and the tools of
`scripts/install-deps.sh --image` (the ctest fixture image.install_tools runs it).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import grpc
from health_proto import health_pb2, health_pb2_grpc
from userpilot.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from upgw_harness import Emulator, Process

SOURCE = os.environ.get("UPGW_SOURCE", os.path.join(os.path.dirname(__file__), "../.."))
BUILD = os.environ.get("UPGW_BUILD", os.path.join(SOURCE, "build"))
GATEWAY = os.environ.get("UPGW_GATEWAY_BIN", os.path.join(BUILD, "service/userpilot-gateway"))
FROM_SOURCE = os.environ.get("UPGW_IMAGE_FROM_SOURCE", "") not in ("", "0")
# buildah's storage for these tests only: vfs (no overlay mounts needed), under the build tree.
STORE = os.path.join(BUILD, "tests/image/containers")
BASE_IMAGE = "localhost/upgw-debian:bookworm-minbase"
IMAGE = "localhost/userpilot-gateway:" + ("from-source" if FROM_SOURCE else "test")
SPOOL = "/var/spool/userpilot-gateway"  # the image's mount point for the import spool volume
GATEWAY_SERVICE = "userpilot.gateway.v1.UserpilotGateway"
TIMEOUT = 10  # seconds, every gRPC call


def buildah_command(*args):
    return ["buildah", "--root", os.path.join(STORE, "storage"), "--runroot",
            os.path.join(STORE, "run"), "--storage-driver", "vfs", *args]


def buildah(*args, timeout=600):
    """Runs buildah; returns its stdout. Raises with buildah's stderr on failure."""
    done = subprocess.run(buildah_command(*args), capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"buildah {' '.join(args)} failed ({done.returncode}):\n"
                             f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done.stdout


# What the test measured (times, size, packages), also written to REPORT for CI's log.
REPORT = os.path.join(BUILD, "tests/image", "report-from-source.txt" if FROM_SOURCE else "report.txt")


def report(line):
    print(f"image: {line}", flush=True)
    with open(REPORT, "a") as out:
        out.write(f"{line}\n")


def version_of(binary_output):
    """('0.1.0', '988e125a78ea') from `userpilot-gateway 0.1.0 (988e125a78ea)`."""
    match = re.search(r"userpilot-gateway (\S+) \((\S+)\)", binary_output)
    assert match, f"unexpected --version output: {binary_output!r}"
    return match.group(1), match.group(2)


def ensure_base_image():
    """Makes BASE_IMAGE from Debian's packages unless the storage already holds it."""
    if subprocess.run(buildah_command("inspect", "--type", "image", BASE_IMAGE),
                      capture_output=True).returncode == 0:
        report(f"base image {BASE_IMAGE} already in {STORE}")
        return
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=BUILD, prefix="upgw-rootfs-") as scratch:
        rootfs = os.path.join(scratch, "rootfs.tar")
        # minbase, merged /usr without the usrmerge package (and its perl), and dpkg told to skip
        # manuals, documentation and translations, as Docker's debian:bookworm-slim does; the
        # path-exclude settings stay in the image, so the runtime stage's packages skip them too.
        done = subprocess.run(
            ["mmdebstrap", "--variant=minbase", "--quiet",
             "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
             "--dpkgopt=path-exclude=/usr/share/man/*",
             "--dpkgopt=path-exclude=/usr/share/locale/*",
             "--dpkgopt=path-include=/usr/share/locale/locale.alias",
             "--dpkgopt=path-exclude=/usr/share/doc/*",
             "--dpkgopt=path-include=/usr/share/doc/*/copyright",
             "--dpkgopt=path-exclude=/usr/share/info/*",
             "--aptopt=Acquire::Languages \"none\"",
             "bookworm", rootfs], capture_output=True, text=True, timeout=1200)
        if done.returncode != 0:
            raise AssertionError(f"mmdebstrap failed ({done.returncode}):\n{done.stdout[-4000:]}\n"
                                 f"{done.stderr[-4000:]}")
        container = buildah("from", "scratch").strip()
        try:
            buildah("add", container, rootfs, "/")
            buildah("config", "--cmd", "/bin/bash", container)
            buildah("commit", "--rm", container, BASE_IMAGE)
        except BaseException:
            subprocess.run(buildah_command("rm", container), capture_output=True)
            raise
    report(f"base image {BASE_IMAGE} made with mmdebstrap in {time.monotonic() - started:.0f} s")


def revision_and_version():
    if FROM_SOURCE:
        git = subprocess.run(["git", "-C", SOURCE, "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True)
        revision = git.stdout.strip() if git.returncode == 0 else "unknown"
        with open(os.path.join(SOURCE, "CMakeLists.txt")) as f:
            version = re.search(r"project\(\w+ VERSION (\S+)", f.read()).group(1)
        return version, revision
    # The prebuilt binary carries the revision it was configured at: label the image with it, so
    # that the labels always describe the binary inside.
    out = subprocess.run([GATEWAY, "--version"], capture_output=True, text=True)
    return version_of(out.stdout + out.stderr)


def build_image(version, revision, scratch):
    args = ["bud", "--isolation", "chroot", "--network", "host", "--pull=never",
            "--build-arg", f"DEBIAN_IMAGE={BASE_IMAGE}",
            "--build-arg", f"VERSION={version}", "--build-arg", f"REVISION={revision}",
            "-t", IMAGE, "-f", os.path.join(SOURCE, "Dockerfile")]
    if not FROM_SOURCE:
        context = os.path.join(scratch, "gateway")
        os.makedirs(context)
        subprocess.run(["strip", "-o", os.path.join(context, "userpilot-gateway"), GATEWAY],
                       check=True)
        with open(os.path.join(context, "runtime-packages"), "w") as out:
            subprocess.run([os.path.join(SOURCE, "deploy/image/runtime-packages.sh"), GATEWAY],
                           stdout=out, check=True)
        args += ["--build-context", f"gateway={context}"]
    started = time.monotonic()
    buildah(*args, SOURCE, timeout=3600)
    seconds = time.monotonic() - started
    # The image this tag named before is now untagged: drop it (vfs keeps full copies).
    buildah("rmi", "--prune")
    report(f"built {IMAGE} ({'from source' if FROM_SOURCE else 'prebuilt binary'}) "
           f"in {seconds:.0f} s")
    return seconds


def layers_size(image):
    """Bytes of the image's layers as stored (buildah keeps them uncompressed)."""
    manifest = json.loads(json.loads(buildah("inspect", "--type", "image", image))["Manifest"])
    return sum(layer["size"] for layer in manifest["layers"])


def image_sizes():
    """(uncompressed bytes, gzip-compressed bytes) of the image's layers."""
    uncompressed = layers_size(IMAGE)
    with tempfile.TemporaryDirectory(dir=BUILD, prefix="upgw-oci-") as scratch:
        archive = os.path.join(scratch, "image.tar")
        buildah("push", "--compression-format", "gzip", IMAGE, f"oci-archive:{archive}")
        compressed = os.path.getsize(archive)
    return uncompressed, compressed


class ImageContainer:
    """One container of the image, run under a read-only root with a writable spool volume."""

    def __init__(self, image, spool_dir=None):
        self.spool_dir = spool_dir
        self.name = buildah("from", "--pull=never", image).strip()
        root = buildah("mount", self.name).strip()
        # Mount points that buildah run binds files onto: made now, before the root turns
        # read-only (a container runtime does the same before it remounts the root).
        if not os.path.exists(os.path.join(root, "etc/hosts")):
            open(os.path.join(root, "etc/hosts"), "w").close()
        self.root = root

    def command(self, argv, env=None, user=None):
        """The host command that runs argv in the container, as the image's user by default."""
        run = ["run", "--isolation", "chroot", "--network", "host"]
        if self.spool_dir:
            run += ["-v", f"{self.spool_dir}:{SPOOL}"]
        for key, value in (env or {}).items():
            run += ["--env", f"{key}={value}"]
        if user:
            run += ["--user", user]
        script = ('set -e; root=$1; shift; mount --bind "$root" "$root"; '
                  'mount -o remount,bind,ro "$root"; '
                  'mount -t tmpfs -o size=1m,mode=0755 tmpfs "$root/run"; exec "$@"')
        return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh",
                self.root, *buildah_command(*run, self.name, "--", *argv)]

    def run(self, argv, **kwargs):
        return subprocess.run(self.command(argv, **{k: kwargs.pop(k) for k in ("env", "user")
                                                    if k in kwargs}),
                               capture_output=True, text=True, timeout=120, **kwargs)

    def remove(self):
        subprocess.run(buildah_command("rm", self.name), capture_output=True)


def descendants(pid):
    """Every process below pid (from /proc), depth first."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(parent, []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


class ImageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Not a skip: this test only runs when asked for (ctest -L image), and a skip would pass.
        if os.geteuid() != 0:
            raise AssertionError("needs root: buildah (vfs, chroot isolation) and mount namespaces")
        for tool in ("buildah", "mmdebstrap", "unshare"):
            if not shutil.which(tool):
                raise AssertionError(f"{tool} not found: run scripts/install-deps.sh --image")
        os.makedirs(STORE, exist_ok=True)
        open(REPORT, "w").close()
        cls.scratch = tempfile.mkdtemp(dir=BUILD, prefix="upgw-image-")
        ensure_base_image()
        cls.version, cls.revision = revision_and_version()
        build_image(cls.version, cls.revision, cls.scratch)
        cls.config = json.loads(buildah("inspect", "--type", "image", IMAGE))["OCIv1"]["config"]
        cls.base_packages = cls.packages_of(BASE_IMAGE)

        spool = os.path.join(cls.scratch, "spool")
        os.makedirs(spool)
        os.chown(spool, 10001, 10001)  # Kubernetes: fsGroup 10001 on the emptyDir
        cls.container = ImageContainer(IMAGE, spool)
        cls.start_servers()

    @classmethod
    def packages_of(cls, image):
        container = ImageContainer(image)
        try:
            out = container.run(["dpkg-query", "-W", "-f", "${Package}\n"], user="0:0")
            assert out.returncode == 0, out.stderr
            return set(out.stdout.split())
        finally:
            container.remove()

    @classmethod
    def start_servers(cls):
        cls.emulator = Emulator(["--job_step=100ms"])
        # The gateway in the image shares the host's network: it binds ports of the kernel's
        # choosing on loopback and says which, as on the host.
        entrypoint = cls.config["Entrypoint"]
        cls.gateway = Process("image-gateway", cls.container.command(
            [*entrypoint, "--listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:0",
             f"--upstream_url={cls.emulator.url}", f"--import_spool_dir={SPOOL}",
             "--shutdown_grace=5s"],
            env={"USERPILOT_API_KEY": cls.emulator.api_key}),
            log_path=os.path.join(cls.scratch, "gateway.log"))
        port = int(cls.gateway.wait_for_log(r"serving gRPC on port (\d+)", timeout=60).group(1))
        cls.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(cls.channel).result(timeout=10)
        cls.stub = gateway_pb2_grpc.UserpilotGatewayStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "channel", None):
            cls.channel.close()
        for name in ("gateway", "emulator"):
            process = getattr(cls, name, None)
            if process:
                process.kill()
        if getattr(cls, "container", None):
            cls.container.remove()
        if getattr(cls, "scratch", None):
            shutil.rmtree(cls.scratch, ignore_errors=True)

    def test_oci_labels(self):
        labels = self.config.get("Labels", {})
        self.assertEqual(labels.get("org.opencontainers.image.revision"), self.revision)
        self.assertEqual(labels.get("org.opencontainers.image.version"), self.version)
        self.assertRegex(labels.get("org.opencontainers.image.source", ""), r"^https://")

    def test_revision_baked_into_the_binary(self):
        out = self.container.run([*self.config["Entrypoint"], "--version"])
        self.assertEqual(version_of(out.stdout + out.stderr), (self.version, self.revision))
        if FROM_SOURCE:
            self.assertNotEqual(self.revision, "unknown", "the source is not a git checkout")

    def test_runs_as_non_root(self):
        self.assertEqual(self.config.get("User"), "10001:10001")
        out = self.container.run(["id", "-u"])
        self.assertEqual(out.stdout.strip(), "10001", out.stderr)

    def test_root_filesystem_is_read_only(self):
        for path in ("/probe", "/tmp/probe", "/usr/local/bin/probe"):
            out = self.container.run(["sh", "-c", f"echo x > {path}"])
            self.assertNotEqual(out.returncode, 0, f"{path} was writable")
            self.assertIn("Read-only file system", out.stderr, path)
        # Read-only, not merely root-owned: root cannot write either.
        out = self.container.run(["sh", "-c", "echo x > /probe"], user="0:0")
        self.assertIn("Read-only file system", out.stderr)
        # The spool volume is the one place the gateway writes.
        out = self.container.run(["sh", "-c", f"echo x > {SPOOL}/probe && rm {SPOOL}/probe"])
        self.assertEqual(out.returncode, 0, out.stderr)

    def test_every_library_resolves(self):
        out = self.container.run(["ldd", self.config["Entrypoint"][0]])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertNotIn("not found", out.stdout)
        image_packages = self.packages_of(IMAGE)
        added = sorted(image_packages - self.base_packages)
        report(f"packages the runtime stage adds to the base ({len(added)}): {' '.join(added)}")
        for unwanted in ("g++", "gcc", "cmake", "make", "libgrpc++-dev", "libc6-dev", "binutils"):
            self.assertNotIn(unwanted, image_packages)
        self.assertIn("ca-certificates", image_packages)

    def test_health_and_identify_against_the_emulator(self):
        health = health_pb2_grpc.HealthStub(self.channel)
        for service in ("", GATEWAY_SERVICE):
            response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
            self.assertEqual(response.status, health_pb2.HealthCheckResponse.SERVING, service)
        self.emulator.reset()
        self.stub.IdentifyUser(gateway_pb2.IdentifyUserRequest(user_id="image-user"),
                               timeout=TIMEOUT, metadata=[("x-caller", "image-test")])
        identifies = self.emulator.requests_to("/v1/identify")
        self.assertEqual(len(identifies), 1)
        self.assertEqual(json.loads(identifies[0]["body"])["user_id"], "image-user")

    def test_import_spools_to_the_volume(self):
        data = "".join(json.dumps({"event_type": "track", "user_id": f"u{i}",
                                   "event_name": "imported"}) + "\n" for i in range(500)).encode()

        def messages():
            yield gateway_pb2.ImportDataRequest(header=gateway_pb2.ImportHeader(
                target=gateway_pb2.IMPORT_TARGET_HISTORICAL_IMPORT,
                format=gateway_pb2.IMPORT_FORMAT_NDJSON, filename="events.ndjson"))
            for start in range(0, len(data), 16 * 1024):
                yield gateway_pb2.ImportDataRequest(chunk=data[start:start + 16 * 1024])

        job = self.stub.ImportData(messages(), timeout=TIMEOUT)
        self.assertEqual(job.file_size, len(data))

    def test_size(self):
        uncompressed, compressed = image_sizes()
        base_size = layers_size(BASE_IMAGE)
        report(f"size {uncompressed / 1e6:.1f} MB uncompressed ({base_size / 1e6:.1f} MB of it the "
               f"base image), {compressed / 1e6:.1f} MB as a gzip-compressed OCI archive")
        # A bound, not a measurement: a build tool or -dev package in the runtime stage would
        # pass it by hundreds of MB.
        self.assertLess(uncompressed - base_size, 150e6)

    def test_zz_sigterm_drains_and_exits_zero(self):
        # buildah run does not forward signals: signal the gateway itself, as the kubelet does.
        def executable(pid):
            try:
                return os.path.basename(os.readlink(f"/proc/{pid}/exe"))
            except OSError:
                return ""

        pids = [p for p in descendants(self.gateway.pid) if executable(p) == "userpilot-gateway"]
        self.assertEqual(len(pids), 1, pids)
        os.kill(pids[0], signal.SIGTERM)
        self.assertEqual(self.gateway.wait(timeout=30), 0, self.gateway.log_tail())
        self.assertIn('"msg":"call"', self.gateway.log())
        self.assertNotIn(self.emulator.api_key, self.gateway.log())


if __name__ == "__main__":
    unittest.main()
