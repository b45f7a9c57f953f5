"""Where the store may live: planted links, FIFOs and devices, two names for one file, network
file systems, read-only and unwritable volumes. Each refusal is a `ConfigurationError` (exit 78 on
the console script) naming the file and what it is, and nothing is written through what was
planted. Mount namespaces (bind mounts, read-only volumes) and other users need root."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from entrypoint import ConfigurationError, ExitCode
from entrypoint.meter import places
from entrypoint.meter.opening import open_store
from entrypoint.meter.places import Mount, check_directory, mount_of, parse_mountinfo

from .meter_support import child_env, rows
from .support import CONSOLE_SCRIPT, Run, run_cli

PRODUCT = "prod-places"
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT or not shutil.which("unshare"), reason="needs root")


def opened(path: Path) -> None:
    open_store(path, product_code=PRODUCT, dimensions=("users",)).close()


def add_one(path: Path) -> None:
    store = open_store(path, product_code=PRODUCT, dimensions=("users",))
    try:
        store.add("users", 1_000_000, 3600)
    finally:
        store.close()


def env(store: Path | str) -> dict[str, str]:
    return child_env(
        MARKETPLACE_PRODUCT_CODE=PRODUCT,
        MARKETPLACE_METER_STORE=str(store),
        MARKETPLACE_METER_DIMENSIONS="users",
    )


def assert_refused(run: Run, diagnosis: str) -> None:
    assert run.returncode == ExitCode.CONFIGURATION, run.stderr
    assert "Traceback" not in run.stderr
    assert diagnosis in run.last_line, run.last_line


# -- planted names ---------------------------------------------------------------------------------


def test_a_link_to_nothing_at_the_store_is_refused_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "victim.db"
    (tmp_path / "elsewhere").mkdir()
    store = tmp_path / "usage.db"
    store.symlink_to(target)
    with pytest.raises(ConfigurationError, match="is a symbolic link to nothing"):
        opened(store)
    assert not target.exists()


@pytest.mark.parametrize("name", ["-wal", "-shm", "-journal", "-lock"])
def test_a_link_planted_beside_the_store_is_refused_and_never_written_through(
    tmp_path: Path, name: str
) -> None:
    store = tmp_path / "usage.db"
    opened(store)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    planted = store.with_name(store.name + name)
    planted.unlink(missing_ok=True)
    planted.symlink_to(victim)
    with pytest.raises(ConfigurationError, match=f"usage.db{name} is a symbolic link, not a reg"):
        opened(store)
    assert victim.read_bytes() == b"precious"


@pytest.mark.parametrize("name", ["", "-wal"])
def test_a_fifo_is_refused_without_blocking(tmp_path: Path, name: str) -> None:
    store = tmp_path / "usage.db"
    if name:
        opened(store)
    os.mkfifo(store.with_name(store.name + name))
    run = run_cli(
        ["meter", "add", "--dimension", "users", "--quantity", "1"], env(store), timeout=20
    )
    assert_refused(run, f"usage.db{name} is a FIFO, not a regular file")


def test_a_directory_or_socket_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "usage.db"
    store.mkdir()
    with pytest.raises(ConfigurationError, match=r"usage\.db is a directory, not a regular file"):
        opened(store)
    store.rmdir()
    opened(store)
    import socket

    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(store.with_name(store.name + "-shm")))
        with pytest.raises(ConfigurationError, match=r"usage\.db-shm is a socket"):
            opened(store)


@pytest.mark.skipif(not ROOT, reason="mknod needs root")
def test_a_device_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "usage.db"
    os.mknod(store, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null
    with pytest.raises(ConfigurationError, match=r"usage\.db is a device, not a regular file"):
        opened(store)


def test_a_name_that_is_no_file_name_is_refused(tmp_path: Path) -> None:
    for name in (f"{tmp_path}/", f"{tmp_path}/.", f"{tmp_path}/.."):
        with pytest.raises(ConfigurationError, match="is not a file name"):
            open_store(name, product_code=PRODUCT)


# -- two names, one store --------------------------------------------------------------------------


def test_a_symbolic_link_to_the_store_reaches_the_same_store(tmp_path: Path) -> None:
    real = tmp_path / "volume" / "usage.db"
    real.parent.mkdir()
    (tmp_path / "by-link").mkdir()
    link = tmp_path / "by-link" / "usage.db"
    add_one(real)
    link.symlink_to(real)
    linked_dir = tmp_path / "dir-link"
    linked_dir.symlink_to(real.parent)
    add_one(link)
    add_one(linked_dir / "usage.db")
    assert rows(real) == [("users", 3600, 3_000_000, "open")]
    assert sorted(p.name for p in (tmp_path / "by-link").iterdir()) == ["usage.db"]  # no -wal


def test_a_hard_link_is_refused_by_both_names(tmp_path: Path) -> None:
    real = tmp_path / "usage.db"
    add_one(real)
    other = tmp_path / "other" / "usage.db"
    other.parent.mkdir()
    os.link(real, other)
    for name in (real, other):
        with pytest.raises(ConfigurationError, match="has 2 names \\(hard links\\)"):
            opened(name)
    other.unlink()
    add_one(real)
    assert rows(real) == [("users", 3600, 2_000_000, "open")]


def in_namespace(script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (sh) in a mount namespace of its own, as root."""
    return subprocess.run(
        ["unshare", "-m", "sh", "-ec", script],  # noqa: S607 - the system tools, by name
        env={**env("unused"), "ME": str(CONSOLE_SCRIPT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@needs_root
def test_a_file_bind_mounted_on_its_own_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "host" / "usage.db"
    real.parent.mkdir()
    add_one(real)
    (tmp_path / "container").mkdir()
    seen = tmp_path / "container" / "usage.db"
    seen.touch()
    run = in_namespace(
        f"mount --bind {real} {seen}\n"
        f'MARKETPLACE_METER_STORE={seen} "$ME" meter add --dimension users --quantity 1'
    )
    assert run.returncode == ExitCode.CONFIGURATION, run.stderr
    assert "usage.db is a single file mounted on its own" in run.stderr
    assert rows(real) == [("users", 3600, 1_000_000, "open")]


@needs_root
def test_a_directory_mounted_at_two_paths_is_one_store(tmp_path: Path) -> None:
    volume, second = tmp_path / "volume", tmp_path / "second"
    volume.mkdir()
    second.mkdir()
    run = in_namespace(
        f"mount --bind {volume} {second}\n"
        f'MARKETPLACE_METER_STORE={volume}/usage.db "$ME" meter add --dimension users '
        "--quantity 1\n"
        f'MARKETPLACE_METER_STORE={second}/usage.db "$ME" meter add --dimension users '
        "--quantity 2\n"
    )
    assert run.returncode == 0, run.stderr
    assert sum(r.micros for r in rows(volume / "usage.db")) == 3_000_000


# -- file systems ----------------------------------------------------------------------------------

MOUNTINFO = r"""22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 22 0:52 / /var/run/meter rw,relatime - nfs4 fs-1.efs:/ rw,vers=4.1
31 22 0:53 / /mnt/with\040space rw - tmpfs tmpfs rw
32 22 0:54 / /mnt/s3 rw - fuse.s3fs s3fs rw
33 30 0:55 / /var/run/meter/local rw - tmpfs tmpfs rw
broken line
"""


def test_mountinfo_is_parsed_with_its_escapes() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    assert [m.mount_point for m in mounts] == [
        "/",
        "/var/run/meter",
        "/mnt/with space",
        "/mnt/s3",
        "/var/run/meter/local",
    ]
    assert mounts[1] == Mount("/var/run/meter", "/", (0, 52), "nfs4")


def test_the_mount_that_holds_a_path_is_the_longest_and_latest() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    assert mount_of("/var/run/meter/usage", mounts).fstype == "nfs4"  # type: ignore[union-attr]
    assert mount_of("/var/run/meter/local/x", mounts).fstype == "tmpfs"  # type: ignore[union-attr]
    assert mount_of("/var/run/meterx", mounts).fstype == "ext4"  # type: ignore[union-attr]
    over = [*mounts, Mount("/", "/", (0, 99), "overlay")]
    assert mount_of("/etc", over).fstype == "overlay"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("directory", "fstype"),
    [
        ("/var/run/meter", "nfs4"),
        ("/mnt/s3", "fuse.s3fs"),
    ],
)
def test_a_network_or_fuse_file_system_is_refused(
    tmp_path: Path, directory: str, fstype: str
) -> None:
    mounts = [
        m._replace(mount_point=str(tmp_path)) if m.mount_point == directory else m
        for m in parse_mountinfo(MOUNTINFO)
    ]
    with pytest.raises(ConfigurationError, match=f"is on a {fstype} file system") as caught:
        check_directory(tmp_path / "usage.db", mounts)
    assert "not EFS, NFS, SMB or FUSE" in caught.value.diagnosis()


@pytest.mark.parametrize("fstype", sorted(places.NETWORK_FILE_SYSTEMS))
def test_every_listed_network_file_system_is_refused(tmp_path: Path, fstype: str) -> None:
    with pytest.raises(ConfigurationError, match="file system"):
        check_directory(tmp_path / "usage.db", [Mount("/", "/", (0, 1), fstype)])


def test_local_file_systems_and_this_machine_s_are_accepted(tmp_path: Path) -> None:
    for fstype in ("ext4", "xfs", "tmpfs", "overlay", "btrfs", "virtiofs"):
        check_directory(tmp_path / "usage.db", [Mount("/", "/", (0, 1), fstype)])
    check_directory(tmp_path / "usage.db")  # the real /proc/self/mountinfo


def test_a_file_system_nobody_can_see_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot see in /proc/self/mountinfo"):
        check_directory(tmp_path / "usage.db", [])


# -- volumes that cannot be written: exit 78 at start ----------------------------------------------


@needs_root
@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
def test_a_read_only_volume_fails_at_start_with_78(tmp_path: Path, existing: bool) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    if existing:
        add_one(volume / "usage.db")
    run = in_namespace(
        f"mount --bind {volume} {volume}\nmount -o remount,bind,ro {volume}\n"
        f"export MARKETPLACE_METER_STORE={volume}/usage.db\n"
        'status=0; "$ME" meter add --dimension users --quantity 1 || status=$?\n'
        'echo "add=$status" >&2\n'
        'status=0; "$ME" meter serve --dimension users || status=$?\n'
        'echo "serve=$status" >&2\n'
        f"{sys.executable} -c '{METER_START}' {volume}/usage.db >&2\n"
    )
    assert "add=78" in run.stderr, run.stderr
    assert "serve=78" in run.stderr, run.stderr
    assert "meter=78 configuration error: the meter store " in run.stderr, run.stderr
    assert run.stderr.count("Read-only file system") == 3, run.stderr
    assert "Traceback" not in run.stderr


METER_START = (  # inside sh's single quotes: double quotes only
    "import sys; from entrypoint import ConfigurationError; from entrypoint.meter import Meter\n"
    "try:\n"
    f'    Meter(product_code="{PRODUCT}", dimensions=["users"], state_file=sys.argv[1],\n'
    "          client=object()).start(preflight=False)\n"
    "except ConfigurationError as error:\n"
    '    print("meter=78", error.diagnosis())'
)


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory every user can reach, owned by root, mode 0755 (others cannot write)."""
    directory = Path(tempfile.mkdtemp(prefix="meter-places-", dir="/tmp"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


@pytest.mark.skipif(not ROOT or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_an_unwritable_directory_fails_at_start_with_78(public_dir: Path) -> None:
    # Isolated from the start (as the image's launcher starts it): the re-exec under -I of a
    # plain console script needs an interpreter nobody can execute itself, and this machine's
    # Python may live under /root (test_hostile_interpreter covers that refusal).
    as_nobody = [
        *("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"),
        *(sys.executable, "-I", str(CONSOLE_SCRIPT)),
    ]
    run = run_cli(
        ["meter", "add", "--dimension", "users", "--quantity", "1"],
        env(public_dir / "usage.db"),
        program=as_nobody,
    )
    assert_refused(run, "cannot have its lock file usage.db-lock: Permission denied")
    add_one(public_dir / "usage.db")  # made by root: mode 0600
    run = run_cli(
        ["meter", "add", "--dimension", "users", "--quantity", "1"],
        env(public_dir / "usage.db"),
        program=as_nobody,
    )
    assert_refused(run, "Permission denied")
