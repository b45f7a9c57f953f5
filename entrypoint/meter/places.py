"""Where the usage store may live: one regular file, reached by one name, on a local file system.

SQLite names a database's companion files after the path it was opened by (``<db>-wal``,
``<db>-shm``, ``<db>-journal``: sqlite.org/tempfiles.html) and coordinates processes through the
``-shm`` file mapped into memory and POSIX locks. So, after "How To Corrupt An SQLite Database
File" (sqlite.org/howtocorrupt.html) and "Write-Ahead Logging" (sqlite.org/wal.html, "WAL does
not work over a network filesystem" because "all processes using a database must be on the same
host computer"):

* **One name per file.** A symbolic link is resolved once, here, so every process opens the real
  file and finds the companions beside it (SQLite resolves links the same way). A hard link
  (``st_nlink > 1``) or a single file bind-mounted into a container would give one database two
  sets of companions, two write-ahead logs and a corrupt file: both are refused. A *directory*
  mounted at different paths in two containers is fine: the companions are in the same directory.
* **Nothing planted.** The database and each companion must be absent or a regular file with one
  link: a symbolic link, FIFO, socket or device at any of those names is refused before SQLite or
  this package opens it (SQLite itself opens the companions with ``O_NOFOLLOW``; the check here
  names the problem instead of "unable to open database file"). A symbolic link to nothing is
  refused too, rather than creating a file wherever it points.
* **A local file system.** The file system's type (``/proc/self/mountinfo``) must not be one of
  the network, cluster or FUSE file systems of `NETWORK_FILE_SYSTEMS`.

These checks cannot stop whoever can write the store's directory from damaging the store; they
stop the store from being turned into a writer of other files. See SECURITY.md.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from entrypoint.errors import ConfigurationError, one_line

__all__ = [
    "COMPANIONS",
    "LOCK_SUFFIX",
    "NETWORK_FILE_SYSTEMS",
    "Mount",
    "check_directory",
    "check_names",
    "locate",
    "mount_of",
    "parse_mountinfo",
    "refuse",
]

COMPANIONS = ("-wal", "-shm", "-journal")  # SQLite's own names beside the database
LOCK_SUFFIX = "-lock"  # ours: the writers' kernel lock, beside the database
# Linux file system type names (as /proc/self/mountinfo spells them; their magic numbers are in
# include/uapi/linux/magic.h) on which SQLite's shared-memory WAL is not safe: the file may be
# shared with another host, or the "file" is served by a user-space daemon.
NETWORK_FILE_SYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ncpfs",
        "afs",
        "coda",
        "ceph",
        "glusterfs",
        "lustre",
        "gfs2",
        "ocfs2",
        "gpfs",
        "beegfs",
        "orangefs",
        "9p",
        "davfs",
        "fuse",
        "fuseblk",
    }
)
_MOUNTINFO = Path("/proc/self/mountinfo")
_MAX_MOUNTINFO = 4 * 1024 * 1024  # thousands of mounts; a bound on what we read


def refuse(path: Path | str, what: str, remedy: str) -> ConfigurationError:
    """The error for a store that cannot be used where it is (exit 78)."""
    return ConfigurationError(f"the meter store {one_line(path, 200)} {what}", remedy=remedy)


def locate(path: Path | str) -> Path:
    """The store's one real path: the directory's links resolved, and a link at the file itself
    resolved once to an existing regular file. `ConfigurationError` for a link to nothing or a
    name that is not a file name."""
    raw = os.fspath(path)
    if raw.rsplit("/", 1)[-1] in {"", ".", ".."}:
        raise refuse(path, "is not a file name", "name a file, such as /var/run/meter/usage.db")
    given = Path(os.path.abspath(raw))  # noqa: PTH100 - lexical only: links are resolved below
    candidate = Path(os.path.realpath(given.parent)) / given.name
    try:
        info = os.lstat(candidate)
    except FileNotFoundError:
        return candidate
    except OSError as exc:
        raise refuse(candidate, f"cannot be examined: {exc.strerror or exc}", _REMEDY) from None
    if not stat.S_ISLNK(info.st_mode):
        return candidate
    target = Path(os.path.realpath(candidate))
    if not target.exists():
        raise refuse(
            candidate,
            f"is a symbolic link to nothing ({one_line(target, 200)})",
            "remove the link, or create the store at the real path",
        )
    return target


_REMEDY = "give the meter a directory of its own on a local volume"


def check_names(database: Path) -> os.stat_result | None:
    """lstat the database and its companions: each absent, or a regular file with one link.
    Returns the database's stat (None: no database yet)."""
    found = None
    for name in ("", *COMPANIONS, LOCK_SUFFIX):
        path = database.with_name(database.name + name)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise refuse(path, f"cannot be examined: {exc.strerror or exc}", _REMEDY) from None
        check_file(path, info)
        if not name:
            found = info
    return found


def check_file(path: Path, info: os.stat_result) -> None:
    """A regular file with exactly one name, or `ConfigurationError` saying what it is."""
    mode = info.st_mode
    if not stat.S_ISREG(mode):
        kind = (
            "a symbolic link"
            if stat.S_ISLNK(mode)
            else "a directory"
            if stat.S_ISDIR(mode)
            else "a FIFO"
            if stat.S_ISFIFO(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "a device"
        )
        raise refuse(
            path,
            f"is {kind}, not a regular file",
            "remove it: nothing but the meter's own files may use these names",
        )
    if info.st_nlink != 1:
        raise refuse(
            path,
            f"has {info.st_nlink} names (hard links)",
            "SQLite keeps its write-ahead log beside each name, so two names corrupt the store: "
            "remove the other links",
        )


class Mount(NamedTuple):
    """One line of /proc/self/mountinfo (proc(5)): where, what, and of which type."""

    mount_point: str
    root: str
    device: tuple[int, int]
    fstype: str


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal: \040 \011 \012 \134.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts of ``text`` in order (later lines mount over earlier ones). Malformed lines
    are skipped; a mount table that yields nothing is refused by `mount_of`."""
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            separator = fields.index("-", 6)
            major, minor = fields[2].split(":")
            mounts.append(
                Mount(
                    mount_point=_unescape(fields[4]),
                    root=_unescape(fields[3]),
                    device=(int(major), int(minor)),
                    fstype=fields[separator + 1],
                )
            )
        except (ValueError, IndexError):
            continue
    return mounts


def mount_of(path: str, mounts: Iterable[Mount]) -> Mount | None:
    """The mount that holds ``path`` (absolute, links resolved): the longest mount point that
    is ``path`` or one of its parents, the last mounted among equals."""
    best: Mount | None = None
    for mount in mounts:
        point = mount.mount_point.rstrip("/") or "/"
        inside = path == point or path.startswith(point if point == "/" else point + "/")
        if inside and (best is None or len(point) >= len(best.mount_point.rstrip("/") or "/")):
            best = mount
    return best


def _read_mountinfo() -> list[Mount]:
    try:
        with _MOUNTINFO.open("rb") as handle:
            raw = handle.read(_MAX_MOUNTINFO)
    except OSError:
        return []
    return parse_mountinfo(raw.decode("utf-8", "surrogateescape"))


def check_directory(database: Path, mounts: list[Mount] | None = None) -> None:
    """The database's directory exists (made if missing), is on a local file system, and the
    database is not a file mounted on its own."""
    directory = database.parent
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
    except OSError as exc:
        raise refuse(
            database, f"cannot have its directory: {exc.strerror or exc}", _REMEDY
        ) from None
    if not stat.S_ISDIR(info.st_mode):
        raise refuse(database, f"is in {directory}, which is not a directory", _REMEDY)
    table = _read_mountinfo() if mounts is None else mounts
    holder = mount_of(os.fspath(directory), table)
    if holder is None:
        raise refuse(
            database,
            "is on a file system this process cannot see in /proc/self/mountinfo",
            "mount /proc, or put the store on a local volume",
        )
    if holder.fstype in NETWORK_FILE_SYSTEMS or holder.fstype.startswith("fuse."):
        raise refuse(
            database,
            f"is on a {one_line(holder.fstype, 40)} file system",
            "SQLite's write-ahead log needs a local file system shared only by one host: use a "
            "task volume (ECS) or an emptyDir (EKS), not EFS, NFS, SMB or FUSE",
        )
    for mount in table:
        if mount.mount_point == os.fspath(database):
            raise refuse(
                database,
                "is a single file mounted on its own",
                "SQLite keeps its write-ahead log beside the file's name, so a file mounted at "
                "another path corrupts it: mount the directory that holds it instead",
            )
