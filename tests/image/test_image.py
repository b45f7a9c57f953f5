"""The images, built for real and run the way a container runtime runs them.

Each run starts the image's own ENTRYPOINT + CMD (read from the image) as PID 1 of a new PID
namespace, chrooted into the image, as the image's USER, on a read-only root unless a test says
otherwise, against the Metering emulator on loopback. Assertions read the kernel's records
(``/proc/<pid>/status``: NSpid, Uid, Gid) and the exit status the runtime would see.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import stat
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from entrypoint.emulator import (
    EMULATOR_ACCESS_KEY_ID,
    EMULATOR_SECRET_ACCESS_KEY,
    Emulator,
    Principal,
)
from tests.support import REPO

from .aws_stubs import (
    CONTAINER_TOKEN,
    ECS_ACCESS_KEY,
    ECS_SECRET,
    ECS_SESSION_TOKEN,
    IRSA_ACCESS_KEY,
    IRSA_SECRET,
    IRSA_SESSION_TOKEN,
    CredentialSources,
)
from .buildah import Buildah, BuildError
from .conftest import ARCHES, PRODUCT, build_secrets
from .emulation import host_arch
from .run import Container, Finished, children, cmdline, in_root, namespace_pid, status

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(1800)]

ENTRYPOINT = [
    "tini",
    "--",
    "marketplace-entrypoint",
    "--keys-dir",
    "/etc/marketplace-entrypoint/keys",
    "--",
]
# docker/example/*/Dockerfile's CMD: a web server standing in for the seller's product.
PRODUCT_CMD = ["python3", "-m", "http.server", "8080", "--directory", "/srv"]
PRODUCT_PORT = 8080
NONROOT = "65532:65532"
# OpenShift's restricted policy runs images as an arbitrary UID in group 0.
ARBITRARY_USER = "1000770000:0"

# A workload that reports its PID and IDs, then waits for SIGTERM and exits 42 on it.
SIGNAL_SCRIPT = """
import os, signal, sys, time
def stop(signum, frame):
    print(f"PID {os.getpid()} got signal {signum}", flush=True)
    sys.exit(42)
signal.signal(signal.SIGTERM, stop)
print(f"ready PID {os.getpid()} UID {os.getuid()} GID {os.getgid()}", flush=True)
while True:
    time.sleep(1)
"""
SIGNAL_WORKLOAD = ["python3", "-c", SIGNAL_SCRIPT]


def task_env(emulator: Emulator, **extra: str) -> dict[str, str]:
    """What an ECS task definition would set, pointed at the emulator (tests/support.py:
    base_env, without PATH: the image's own PATH applies)."""
    env = {
        "AWS_REGION": emulator.region,
        "AWS_DEFAULT_REGION": emulator.region,
        "AWS_ENDPOINT_URL_MARKETPLACE_METERING": emulator.url,
        "AWS_ACCESS_KEY_ID": EMULATOR_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": EMULATOR_SECRET_ACCESS_KEY,
        "AWS_EC2_METADATA_DISABLED": "true",
        "MARKETPLACE_RETRY_BASE_DELAY": "0.01",
        "MARKETPLACE_RETRY_MAX_DELAY": "0.05",
    }
    env.update(extra)
    return env


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def free_product_port() -> Iterator[None]:
    """The example CMD listens on 8080 of the host's network namespace, which the run shares."""
    if port_in_use(PRODUCT_PORT):
        pytest.fail(
            f"port {PRODUCT_PORT} on 127.0.0.1 is in use by another process; the product "
            "example's CMD needs it",
            pytrace=False,
        )
    yield
    assert not port_in_use(PRODUCT_PORT), "the product's server outlived its container"


def http_get(port: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
                return int(answer.status)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def wait_for_output(container: Container, text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out, _ = container.output()
        if text in out:
            return out
        assert container.process is not None
        if container.process.poll() is not None:
            break
        time.sleep(0.05)
    out, err = container.output()
    raise AssertionError(f"{text!r} never printed.\nstdout:\n{out}\nstderr:\n{err}")


def ids(pid: int) -> tuple[list[int], list[int], str]:
    fields = status(pid)
    return (
        [int(v) for v in fields["Uid"].split()],
        [int(v) for v in fields["Gid"].split()],
        fields["Groups"],
    )


def first_child_pid(buildah: Buildah, image: str) -> int:
    """The PID tini's first child gets in the container's namespace: 2 natively. Under QEMU
    user-mode emulation it is 3: QEMU starts a helper thread (its RCU thread) in every process
    it emulates, and threads draw their IDs from the same PID space, so tini's own helper thread
    is 2 (`test_entitled_product...` checks it). Nothing else runs in between."""
    arch = buildah.inspect(image)["OCIv1"]["architecture"]
    return 2 if arch == host_arch() else 3


def thread_ids(pid: int) -> list[int]:
    """Namespace IDs of every thread of host process ``pid``."""
    return sorted(namespace_pid(int(task.name)) for task in Path(f"/proc/{pid}/task").iterdir())


def assert_refused(run: Finished, code: int, summary: str) -> None:
    assert run.returncode == code, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert run.last_line.startswith(f"marketplace-entrypoint: error: {summary}: "), run.stderr


@contextlib.contextmanager
def mounted(buildah: Buildah, image: str) -> Iterator[Path]:
    """An image's root file system, mounted read-write in a throwaway working container."""
    container = buildah("from", "--pull=never", "--quiet", image).strip()
    try:
        yield Path(buildah("mount", container).strip())
    finally:
        buildah("rm", container)


# -- what the images are ---------------------------------------------------------------------------


def test_base_image_configuration(buildah: Buildah, entrypoint_image_each: str) -> None:
    config = buildah.config(entrypoint_image_each)
    assert config.entrypoint == ENTRYPOINT
    # The base's inherited CMD (python3) is cleared by ENTRYPOINT: a product must set its own.
    assert config.cmd == []
    assert config.user == NONROOT
    # Nothing is added to the environment the workload inherits.
    assert [e.split("=", 1)[0] for e in config.env] == ["PATH"]


def test_example_images_configuration(
    buildah: Buildah, product_image: str, copy_image: str
) -> None:
    product = buildah.config(product_image)
    assert (product.entrypoint, product.cmd, product.user) == (ENTRYPOINT, PRODUCT_CMD, NONROOT)
    copied = buildah.config(copy_image)
    assert (copied.entrypoint, copied.cmd, copied.user) == (ENTRYPOINT, PRODUCT_CMD, NONROOT)


@pytest.mark.usefixtures("entrypoint_image_arm64")  # skips, or fails in CI, without emulation
def test_one_build_command_makes_both_architectures(
    buildah: Buildah, entrypoint_images: dict[str, str]
) -> None:
    """``buildah bud --platform linux/amd64,linux/arm64 --manifest`` (conftest.py) gave one
    manifest list whose two images differ only in their architecture."""
    assert set(entrypoint_images) == set(ARCHES)
    configs = {}
    for arch, tag in entrypoint_images.items():
        image = buildah.inspect(tag)["OCIv1"]
        assert (image["os"], image["architecture"]) == ("linux", arch)
        configs[arch] = buildah.config(tag)
    assert configs["arm64"] == configs["amd64"]
    repository, _, key = entrypoint_images["amd64"].rpartition(":")
    listing = json.loads(buildah("manifest", "inspect", f"{repository[: -len('-amd64')]}:{key}"))
    platforms = sorted(m["platform"]["architecture"] for m in listing["manifests"])
    assert platforms == sorted(ARCHES)


def elf_machine(path: Path) -> str:
    """The CPU an ELF file is built for, from e_machine (System V ABI: 62 x86-64, 183 AArch64)."""
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", path
    return {62: "amd64", 183: "arm64"}.get(int.from_bytes(header[18:20], "little"), "other")


def test_final_stage_holds_only_what_the_product_needs(
    buildah: Buildah, entrypoint_image_each: str
) -> None:
    entrypoint_image = entrypoint_image_each
    arch = buildah.inspect(entrypoint_image)["OCIv1"]["architecture"]
    with mounted(buildah, entrypoint_image) as root:
        lib = root / "opt/marketplace-entrypoint/lib"
        present = {p.name for p in lib.iterdir()}
        # The build stage's tools and the wheel stay behind.
        for absent in ("pip", "hatchling", "setuptools", "bin"):
            assert absent not in present, absent
        assert not (root / "build").exists()
        assert not (root / "src").exists()
        assert {"entrypoint", "botocore", "cryptography", "boto3"} <= present
        services = {p.name for p in (lib / "botocore/data").iterdir() if p.is_dir()}
        assert services == {"meteringmarketplace", "license-manager", "sts"}
        # Data kept whole but gzipped, as botocore's loader accepts it.
        assert (lib / "botocore/data/endpoints.json.gz").is_file()
        assert not list((lib / "botocore/data").rglob("*.json"))
        assert not list(lib.rglob("*.pyi"))
        assert not (lib / "boto3/data").exists()
        # tini as Debian's package, known to dpkg (and to image scanners).
        assert (root / "var/lib/dpkg/info/tini.list").is_file()
        # Every binary is the image's architecture: tini, and the wheels pip chose from the lock.
        binaries = [root / "usr/bin/tini", *lib.glob("cryptography/hazmat/bindings/_rust*.so")]
        binaries += lib.glob("_cffi_backend*.so")
        assert len(binaries) == 3, binaries
        assert {elf_machine(b) for b in binaries} == {arch}
        assert not list((root / "var/lib/apt/lists").glob("*Packages*"))
        # Public keys and code are world-readable and owned by root: any UID reads them, none
        # can change them.
        key = root / "etc/marketplace-entrypoint/keys" / PRODUCT / "v1.pem"
        info = key.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o644)
        launcher = root / "usr/local/bin/marketplace-entrypoint"
        assert stat.S_IMODE(launcher.stat().st_mode) == 0o755
        assert (root / "opt/marketplace-entrypoint/python-version").read_text() == "3.11\n"
        # Byte code only for what a bootstrap imports, as checked-hash pycs (flags word = 3).
        pycs = list(lib.rglob("*.pyc"))
        assert pycs
        assert all(p.read_bytes()[4:8] == b"\x03\x00\x00\x00" for p in pycs)
        assert list(lib.glob("entrypoint/__pycache__/verify.*.pyc"))
        assert not list(lib.glob("entrypoint/emulator/__pycache__/*.pyc"))


def test_build_refuses_keys_the_entrypoint_would_refuse(
    buildah: Buildah, debian_python: str, entrypoint_context: Path, tmp_path: Path
) -> None:
    """The repository as it ships (keys/ holds only its README) does not build: an image that
    would exit 78 at every start is never made."""
    context = tmp_path / "context"
    shutil.copytree(entrypoint_context, context)
    shutil.rmtree(context / "keys")
    (context / "keys").mkdir()
    shutil.copy2(REPO / "keys" / "README.md", context / "keys" / "README.md")
    with pytest.raises(BuildError) as failure:
        buildah.build(
            "localhost/marketplace-entrypoint-test/refused:latest",
            context,
            dockerfile=context / "docker" / "Dockerfile",
            build_args={"BASE_IMAGE": debian_python},
            secrets=build_secrets(),
        )
    assert (
        "image_build: error: the image would refuse to start: configuration error: keys "
        "directory /etc/marketplace-entrypoint/keys trusts no product; put your product's "
        "public keys in the build context as keys/<PRODUCT_CODE>/v<N>.pem"
    ) in str(failure.value)
    assert not buildah.exists("localhost/marketplace-entrypoint-test/refused:latest")


# -- the product example: FROM the base, CMD only --------------------------------------------------


@pytest.mark.usefixtures("free_product_port")
def test_entitled_product_cmd_runs_as_pid_2_under_tini_and_stops_on_sigterm(
    buildah: Buildah, product_image: str, emulator: Emulator
) -> None:
    with Container(buildah, product_image, env=task_env(emulator)) as container:
        container.start()
        workload = container.wait_for_workload(PRODUCT_CMD)
        init = container.init_pid
        # tini is PID 1 with the image's ENTRYPOINT + CMD; the entrypoint exec'd the CMD in
        # tini's child, PID 2: no other process ever ran in the namespace. (Emulated, tini's
        # process holds QEMU's helper thread as 2, and its child is 3.)
        child = first_child_pid(buildah, product_image)
        assert namespace_pid(init) == 1
        assert cmdline(init) == [*ENTRYPOINT, *PRODUCT_CMD]
        assert thread_ids(init) == list(range(1, child))
        assert namespace_pid(workload) == child
        assert children(init) == [workload]
        assert http_get(PRODUCT_PORT) == 200
        uids, gids, groups = ids(workload)
        assert (uids, gids, groups) == ([65532] * 4, [65532] * 4, "")
        container.signal_init(signal.SIGTERM)  # docker stop, ECS StopTask, pod deletion
        run = container.wait()
    # tini forwarded SIGTERM; the server died of it and tini reports 128 + 15.
    assert run.returncode == 128 + signal.SIGTERM, run.stderr
    assert f"entitlement verified for product {PRODUCT} (key v1" in run.stderr
    calls = emulator.calls("RegisterUsage")
    assert [(c.status, c.product_code, c.region) for c in calls] == [
        (200, PRODUCT, emulator.region)
    ]


def test_sigterm_is_forwarded_to_the_workload_and_its_exit_status_propagates(
    buildah: Buildah, product_image: str, emulator: Emulator
) -> None:
    with Container(
        buildah, product_image, env=task_env(emulator), cmd=SIGNAL_WORKLOAD
    ) as container:
        container.start()
        child = first_child_pid(buildah, product_image)
        wait_for_output(container, f"ready PID {child} UID 65532 GID 65532")
        container.signal_init(signal.SIGTERM)
        run = container.wait()
    assert run.returncode == 42, run.stderr
    assert f"PID {child} got signal {int(signal.SIGTERM)}" in run.stdout


@pytest.mark.usefixtures("free_product_port")
def test_not_entitled_exits_77_and_the_cmd_never_runs(
    buildah: Buildah, product_image: str, emulator: Emulator
) -> None:
    emulator.configure(PRODUCT, outcome="not-entitled")
    with Container(buildah, product_image, env=task_env(emulator)) as container:
        run = container.run()
    assert_refused(run, 77, "not entitled")
    assert "CustomerNotEntitledException" in run.last_line
    assert run.stdout == ""  # the server never printed "Serving HTTP"
    assert "Serving HTTP" not in run.stderr
    assert [c.error for c in emulator.calls("RegisterUsage")] == ["CustomerNotEntitledException"]


@pytest.mark.parametrize(
    ("user", "read_only"),
    [(NONROOT, True), (ARBITRARY_USER, True), (ARBITRARY_USER, False)],
    ids=["image-user-read-only-root", "arbitrary-uid-read-only-root", "arbitrary-uid-rw-root"],
)
def test_any_non_root_user_with_or_without_a_writable_root(
    buildah: Buildah, product_image: str, emulator: Emulator, user: str, read_only: bool
) -> None:
    report = [
        "python3",
        "-c",
        "import os; print(os.getpid(), os.getuid(), os.getgid(), os.access('/', os.W_OK))",
    ]
    with Container(
        buildah,
        product_image,
        env=task_env(emulator),
        cmd=report,
        user=user,
        read_only=read_only,
    ) as container:
        run = container.run()
    assert run.returncode == 0, run.stderr
    uid, gid = user.split(":")
    assert run.stdout.split() == [str(first_child_pid(buildah, product_image)), uid, gid, "False"]


def test_key_readable_only_by_root_is_refused_for_the_image_user(
    buildah: Buildah, product_image: str, emulator: Emulator
) -> None:
    """A key file that lost its read bits (a seller's umask 077) stops the container with the
    file's path and a remedy, before any call to AWS."""

    def make_key_root_only(root: Path) -> None:
        (root / "etc/marketplace-entrypoint/keys" / PRODUCT / "v1.pem").chmod(0o600)

    with Container(
        buildah, product_image, env=task_env(emulator), prepare=make_key_root_only
    ) as container:
        run = container.run()
    assert_refused(run, 78, "untrusted key")
    assert f"/etc/marketplace-entrypoint/keys/{PRODUCT}/v1.pem is not readable by this user" in (
        run.last_line
    )
    assert emulator.calls() == []


def test_workload_exit_status_passes_through(
    buildah: Buildah, product_image: str, emulator: Emulator
) -> None:
    with Container(
        buildah,
        product_image,
        env=task_env(emulator),
        cmd=["python3", "-c", "raise SystemExit(3)"],
    ) as container:
        run = container.run()
    assert run.returncode == 3, run.stderr


def test_base_image_builds_and_runs_on_another_debian_and_python(
    buildah: Buildah, entrypoint_image_trixie: str, emulator: Emulator
) -> None:
    """BASE_IMAGE is a build argument: Debian trixie's Python 3.13 works as bookworm's 3.11."""
    report = ["python3", "-c", "import os, sys; print(os.getpid(), *sys.version_info[:2])"]
    with Container(
        buildah, entrypoint_image_trixie, env=task_env(emulator), cmd=report
    ) as container:
        assert (container.root / "opt/marketplace-entrypoint/python-version").read_text() == (
            "3.13\n"
        )
        run = container.run()
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["2", "3", "13"]
    assert len(emulator.calls("RegisterUsage")) == 1


# -- the copy example: the entrypoint in a different base ------------------------------------------


@pytest.mark.usefixtures("free_product_port")
def test_copy_example_runs_the_cmd_as_pid_2_in_a_different_base(
    buildah: Buildah, copy_image: str, emulator: Emulator
) -> None:
    with mounted(buildah, copy_image) as root:
        # The seller's base: no venv, no pip, no Debian tini; tini is the static binary.
        assert not (root / "usr/lib/python3.11/ensurepip").exists()
        assert not (root / "var/lib/dpkg/info/tini.list").exists()
        assert (root / "usr/local/bin/tini").is_file()
    with Container(buildah, copy_image, env=task_env(emulator)) as container:
        container.start()
        workload = container.wait_for_workload(PRODUCT_CMD)
        assert (namespace_pid(container.init_pid), namespace_pid(workload)) == (1, 2)
        assert cmdline(container.init_pid)[0] == "tini"
        assert http_get(PRODUCT_PORT) == 200
        container.signal_init(signal.SIGTERM)
        run = container.wait()
    assert run.returncode == 128 + signal.SIGTERM, run.stderr
    assert len(emulator.calls("RegisterUsage")) == 1


def test_copy_into_another_python_version_is_refused_with_a_diagnosis(
    buildah: Buildah, entrypoint_image: str, debian_python_trixie: str, emulator: Emulator
) -> None:
    """The libraries hold extensions for one CPython (cffi's backend): copied from a 3.11 build
    into an image whose python3 is 3.13, the launcher says so instead of an ImportError."""
    context = REPO / "docker" / "example" / "copy"
    image, _ = buildah.cached_build(
        "copy-to-trixie",
        context,
        dockerfile=context / "Dockerfile",
        build_args={"ENTRYPOINT_IMAGE": entrypoint_image, "PRODUCT_IMAGE": debian_python_trixie},
    )
    with Container(buildah, image, env=task_env(emulator)) as container:
        run = container.run()
    assert_refused(run, 78, "configuration error")
    assert (
        "/opt/marketplace-entrypoint was built for Python 3.11 but /usr/bin/python3 is Python "
        "3.13; build docker/Dockerfile with --build-arg BASE_IMAGE=<an image with Python 3.13>"
    ) in run.last_line
    assert emulator.calls() == []


def test_copy_example_not_entitled_exits_77(
    buildah: Buildah, copy_image: str, emulator: Emulator
) -> None:
    emulator.configure(PRODUCT, outcome="not-entitled")
    with Container(
        buildah,
        copy_image,
        env=task_env(emulator),
        cmd=["python3", "-c", "print('workload ran')"],
    ) as container:
        run = container.run()
    assert_refused(run, 77, "not entitled")
    assert "workload ran" not in run.stdout


# -- the slimmed SDK still works -------------------------------------------------------------------

SDK_CHECK = """
import json, sys
sys.path.insert(0, "/opt/marketplace-entrypoint/lib")
import botocore.session
session = botocore.session.get_session()
clients = {}
for service in ("meteringmarketplace", "license-manager", "sts"):
    client = session.create_client(service, region_name="eu-west-1")
    clients[service] = [client.meta.service_model.service_id, client.meta.endpoint_url]
chain = session.get_component("credential_provider")
print(json.dumps({
    "clients": clients,
    "providers": [p.METHOD for p in chain.providers],
    "models": session.get_available_services(),
}))
"""


def test_slimmed_botocore_creates_metering_and_sts_clients_in_the_image(
    buildah: Buildah, entrypoint_image_each: str
) -> None:
    with Container(
        buildah,
        entrypoint_image_each,
        env={"AWS_EC2_METADATA_DISABLED": "true"},
        entrypoint=["python3", "-I", "-c", SDK_CHECK],
        cmd=[],
    ) as container:
        run = container.run()
    assert run.returncode == 0, run.stderr
    facts = json.loads(run.stdout)
    assert facts["clients"] == {
        "meteringmarketplace": [
            "Marketplace Metering",
            "https://metering.marketplace.eu-west-1.amazonaws.com",
        ],
        "license-manager": ["License Manager", "https://license-manager.eu-west-1.amazonaws.com"],
        "sts": ["STS", "https://sts.eu-west-1.amazonaws.com"],
    }
    assert sorted(facts["models"]) == ["license-manager", "meteringmarketplace", "sts"]
    # The providers ECS (container-role) and EKS IRSA (assume-role-with-web-identity) use.
    assert {"env", "assume-role-with-web-identity", "container-role"} <= set(facts["providers"])


# -- the credential chain, end to end in the slimmed image -----------------------------------------

TOKEN_FILE = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"
ROLE_ARN = "arn:aws:iam::123456789012:role/marketplace-product"


def test_ecs_task_role_credentials_sign_register_usage(
    buildah: Buildah, product_image: str, emulator: Emulator
) -> None:
    """botocore's container-role provider, as on ECS (and EKS Pod Identity): the RegisterUsage
    call is signed with the credentials the container credentials endpoint served."""
    # The emulator checks SigV4: tell it about the role credentials the stub endpoint hands out.
    emulator.add_principal(Principal(ECS_ACCESS_KEY, ECS_SECRET, ECS_SESSION_TOKEN))
    with CredentialSources() as sources:
        env = task_env(emulator)
        del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
        env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = f"{sources.url}/v2/credentials/task"
        env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = CONTAINER_TOKEN
        with Container(
            buildah, product_image, env=env, cmd=["python3", "-c", "print('workload ran')"]
        ) as container:
            run = container.run()
        served = sources.requests
    assert run.returncode == 0, run.stderr
    assert run.stdout == "workload ran\n"
    assert [(r.method, r.path) for r in served] == [("GET", "/v2/credentials/task")]
    assert [c.access_key_id for c in emulator.calls("RegisterUsage")] == [ECS_ACCESS_KEY]


def test_irsa_web_identity_credentials_sign_register_usage(
    buildah: Buildah, product_image: str, emulator: Emulator
) -> None:
    """botocore's assume-role-with-web-identity provider, as on EKS with IRSA: the pod's token
    file is exchanged at STS (the kept ``sts`` model) and the answer signs RegisterUsage."""

    def mount_service_account_token(root: Path) -> None:
        token = in_root(root, TOKEN_FILE)
        token.parent.mkdir(parents=True)
        token.write_text("eyJ.service-account.token")
        token.chmod(0o644)

    emulator.add_principal(Principal(IRSA_ACCESS_KEY, IRSA_SECRET, IRSA_SESSION_TOKEN))
    with CredentialSources() as sources:
        env = task_env(emulator)
        del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
        # What the EKS pod identity webhook injects for IRSA, plus STS's endpoint on loopback.
        env |= {
            "AWS_ROLE_ARN": ROLE_ARN,
            "AWS_WEB_IDENTITY_TOKEN_FILE": TOKEN_FILE,
            "AWS_STS_REGIONAL_ENDPOINTS": "regional",
            "AWS_ENDPOINT_URL_STS": sources.url,
        }
        with Container(
            buildah,
            product_image,
            env=env,
            cmd=["python3", "-c", "print('workload ran')"],
            prepare=mount_service_account_token,
        ) as container:
            run = container.run()
        served = sources.requests
    assert run.returncode == 0, run.stderr
    assert run.stdout == "workload ran\n"
    assert len(served) == 1
    assert served[0].form["Action"] == "AssumeRoleWithWebIdentity"
    assert served[0].form["RoleArn"] == ROLE_ARN
    assert served[0].form["WebIdentityToken"] == "eyJ.service-account.token"
    assert [c.access_key_id for c in emulator.calls("RegisterUsage")] == [IRSA_ACCESS_KEY]
