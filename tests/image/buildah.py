"""Real image builds without a Docker engine: buildah (vfs storage, chroot isolation), debootstrap.

See ../shared/image-testing.md for what works on these machines. Everything lives under one cache
directory (default ``/var/cache/marketplace-entrypoint``, or ``$MARKETPLACE_IMAGE_CACHE``):

* ``debootstrap/<name>-<key>.tar``: a Debian root file system, keyed by everything that makes it
  (suite, variant, packages, mirror, architecture, debootstrap's version), made once per machine;
  a foreign architecture's (arm64 on amd64) is made by the same debootstrap, whose second stage
  runs the foreign binaries under QEMU through binfmt_misc (tests/image/emulation.py);
* ``storage/``: buildah's own image store, so base images and built images survive between runs;
* ``test-keys/``: the private keys the tests' Metering emulator signs with. They stay the same
  between runs so the images that trust their public halves stay cached too.

Built images are tagged by a hash of their whole build context and arguments: a run whose inputs
did not change reuses the image, a change rebuilds it and drops the previous tag of that image.
A multi-platform build (``buildah bud --platform linux/amd64,linux/arm64 --manifest``) makes a
manifest list, and each platform's image is tagged ``<name>-<arch>:<hash>`` beside it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CACHE = Path(os.environ.get("MARKETPLACE_IMAGE_CACHE", "/var/cache/marketplace-entrypoint"))
REPOSITORY = "localhost/marketplace-entrypoint-test"
# Bumped when the recipe below changes in a way the key does not see.
_RECIPE = 1
# Where python3 and the usual tools are in the Debian images, as in the official Python images.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class BuildError(AssertionError):
    """A build step failed; the message holds the command's output."""


def run(command: Sequence[str], *, timeout: float = 900, check: bool = True) -> str:
    """Run ``command`` and return its stdout; on failure raise `BuildError` with both outputs."""
    result = subprocess.run(
        list(command), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise BuildError(
            f"{' '.join(command)} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-6000:]}"
        )
    return result.stdout


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """Hold an exclusive lock shared by every test session on this machine (CI and a developer's
    ``make test`` may run at once)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "locks").mkdir(exist_ok=True)
    with (CACHE / "locks" / f"{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def digest(*parts: object) -> str:
    """A short, stable hash of JSON-able ``parts``, for cache keys and tags."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def tree_digest(root: Path) -> str:
    """Hash of every file's relative path, mode and content under ``root``."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        info = path.lstat()
        h.update(f"{relative}\0{info.st_mode:o}\0".encode())
        if path.is_symlink():
            h.update(str(path.readlink()).encode())
        elif path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an OCI image configuration a container runtime uses to start it."""

    entrypoint: list[str]
    cmd: list[str]
    user: str
    env: list[str]
    working_dir: str

    @classmethod
    def from_oci(cls, config: Mapping[str, Any]) -> ImageConfig:
        return cls(
            entrypoint=list(config.get("Entrypoint") or []),
            cmd=list(config.get("Cmd") or []),
            user=str(config.get("User") or ""),
            env=list(config.get("Env") or []),
            working_dir=str(config.get("WorkingDir") or "/"),
        )


class Buildah:
    """buildah with this suite's storage: vfs driver (no overlay needed), chroot isolation."""

    def __init__(self, cache: Path = CACHE) -> None:
        self.cache = cache
        self.storage = cache / "storage"
        # buildah's run-time state, one per storage (two storages must not share one).
        self.runroot = Path("/run/marketplace-entrypoint") / digest(str(self.storage))
        self.base_args = [
            "buildah",
            "--root",
            str(self.storage),
            "--runroot",
            str(self.runroot),
            "--storage-driver",
            "vfs",
        ]
        # repository -> the tag this session built or reused
        self.current: dict[str, str] = {}

    def __call__(self, *args: str, timeout: float = 900) -> str:
        return run([*self.base_args, *args], timeout=timeout)

    def exists(self, image: str) -> bool:
        result = subprocess.run(
            [*self.base_args, "inspect", "--type", "image", image],
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def inspect(self, image: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self("inspect", "--type", "image", image))
        return data

    def config(self, image: str) -> ImageConfig:
        """ENTRYPOINT, CMD, USER, Env and WorkingDir, as a runtime reads them from the image."""
        return ImageConfig.from_oci(self.inspect(image)["OCIv1"].get("config") or {})

    def diff_ids(self, image: str) -> list[str]:
        return list(self.inspect(image)["OCIv1"]["rootfs"]["diff_ids"])

    def remove_containers(self) -> None:
        """Remove every working container in the suite's storage."""
        for container in self("containers", "--quiet").split():
            subprocess.run([*self.base_args, "rm", container], capture_output=True, check=False)

    def drop_other_tags(self, image: str) -> None:
        """Remove earlier builds of ``image``'s repository (other tags); ignore ones in use."""
        self.current[image.rsplit(":", 1)[0]] = image
        self.drop_stale()

    def drop_stale(self) -> None:
        """Remove every tag of a repository this session built that is not the current one.

        An image another one was built FROM cannot go before its child, so this repeats while
        it makes progress; what a running container still uses stays until a later session.
        """
        for _ in range(len(self.current) + 1):
            listing = json.loads(self("images", "--json") or "[]")
            stale = [
                name
                for entry in listing
                for name in entry.get("names") or []
                if self.current.get(name.rsplit(":", 1)[0], name) != name
            ]
            removed = 0
            for name in stale:
                rmi = subprocess.run(
                    [*self.base_args, "rmi", name], capture_output=True, check=False
                )
                removed += rmi.returncode == 0
            if not removed:
                return

    def build(
        self,
        tag: str,
        context: Path,
        *,
        dockerfile: Path,
        build_args: Mapping[str, str] | None = None,
        secrets: Mapping[str, Path] | None = None,
        options: Sequence[str] = (),
    ) -> str:
        """``buildah bud`` (chroot isolation, local images only); returns the build log."""
        command = ["bud", "--isolation", "chroot", "--pull=never", *options, "-f", str(dockerfile)]
        for name, value in (build_args or {}).items():
            command += ["--build-arg", f"{name}={value}"]
        for name, path in (secrets or {}).items():
            command += ["--secret", f"id={name},src={path}"]
        return self(*command, "-t", tag, str(context), timeout=1500)

    def cached_build(
        self,
        name: str,
        context: Path,
        *,
        dockerfile: Path,
        build_args: Mapping[str, str] | None = None,
        secrets: Mapping[str, Path] | None = None,
        options: Sequence[str] = (),
    ) -> tuple[str, float | None]:
        """Build ``context`` as ``REPOSITORY/name:<hash of inputs>`` unless that image exists.

        Returns the tag and the build's wall time (None when the image was reused).
        """
        key = digest(
            tree_digest(context), dockerfile.read_text(), dict(build_args or {}), list(options)
        )
        tag = f"{REPOSITORY}/{name}:{key}"
        with locked(f"build-{name}"):
            if self.exists(tag) and not os.environ.get("MARKETPLACE_IMAGE_REBUILD"):
                self.current[tag.rsplit(":", 1)[0]] = tag
                return tag, None
            start = time.monotonic()
            log = self.build(
                tag,
                context,
                dockerfile=dockerfile,
                build_args=build_args,
                secrets=secrets,
                options=options,
            )
            elapsed = time.monotonic() - start
            (self.cache / "logs").mkdir(parents=True, exist_ok=True)
            (self.cache / "logs" / f"{name}.log").write_text(log)
            self.drop_other_tags(tag)
        return tag, elapsed

    def cached_manifest_build(
        self,
        name: str,
        context: Path,
        *,
        dockerfile: Path,
        platforms: Sequence[str],
        build_args: Mapping[str, str] | None = None,
        secrets: Mapping[str, Path] | None = None,
    ) -> tuple[dict[str, str], float | None]:
        """One ``buildah bud --platform P1,P2 --manifest LIST`` for every platform at once, as a
        seller builds the multi-architecture image; cached like `cached_build`.

        Returns ``{arch: tag}`` (each platform's image, tagged ``REPOSITORY/<name>-<arch>``) and
        the build's wall time (None when reused). The manifest list is ``REPOSITORY/<name>``.
        """
        key = digest(
            tree_digest(context), dockerfile.read_text(), dict(build_args or {}), list(platforms)
        )
        manifest = f"{REPOSITORY}/{name}:{key}"
        tags = {p.split("/")[1]: f"{REPOSITORY}/{name}-{p.split('/')[1]}:{key}" for p in platforms}
        with locked(f"build-{name}"):
            reuse = not os.environ.get("MARKETPLACE_IMAGE_REBUILD")
            if reuse and self.exists(manifest) and all(self.exists(t) for t in tags.values()):
                self.current[manifest.rsplit(":", 1)[0]] = manifest
                for tag in tags.values():
                    self.current[tag.rsplit(":", 1)[0]] = tag
                return tags, None
            # --manifest adds to an existing list: start from none.
            subprocess.run([*self.base_args, "rmi", manifest], capture_output=True, check=False)
            start = time.monotonic()
            command = ["bud", "--isolation", "chroot", "--pull=never"]
            command += ["--platform", ",".join(platforms), "--manifest", manifest]
            for arg, value in (build_args or {}).items():
                command += ["--build-arg", f"{arg}={value}"]
            for secret, path in (secrets or {}).items():
                command += ["--secret", f"id={secret},src={path}"]
            log = self(*command, "-f", str(dockerfile), str(context), timeout=2400)
            elapsed = time.monotonic() - start
            listing = json.loads(self("manifest", "inspect", manifest))
            built = {m["platform"]["architecture"]: m["digest"] for m in listing["manifests"]}
            if set(built) != set(tags):
                raise BuildError(f"{manifest} holds {sorted(built)}, expected {sorted(tags)}")
            repository = manifest.rsplit(":", 1)[0]
            for arch, tag in tags.items():
                self("tag", f"{repository}@{built[arch]}", tag)
            (self.cache / "logs").mkdir(parents=True, exist_ok=True)
            (self.cache / "logs" / f"{name}.log").write_text(log)
            for tag in tags.values():
                self.current[tag.rsplit(":", 1)[0]] = tag
            self.drop_other_tags(manifest)
        return tags, elapsed

    def manifest_list(self, name: str, images: Mapping[str, str]) -> str:
        """A local manifest list ``REPOSITORY/<name>`` of ``images`` ({arch: tag}), so that one
        ``FROM`` resolves to each platform's base in a multi-platform build."""
        tag = f"{REPOSITORY}/{name}:{digest(sorted(images.items()))}"
        with locked(f"manifest-{name}"):
            if not self.exists(tag):
                self("manifest", "create", tag)
                for image in images.values():
                    self("manifest", "add", tag, f"containers-storage:{image}")
            self.drop_other_tags(tag)
        return tag

    def push_dir(self, image: str, destination: Path) -> dict[str, Any]:
        """Write ``image`` as an uncompressed ``dir:`` copy; return its manifest."""
        self("push", "--quiet", "--disable-compression", image, f"dir:{destination}")
        manifest: dict[str, Any] = json.loads((destination / "manifest.json").read_text())
        return manifest


# -- Debian base images ----------------------------------------------------------------------


@dataclass(frozen=True)
class DebianBase:
    """A Debian root file system made by debootstrap and imported as an image."""

    name: str
    suite: str
    include: tuple[str, ...]
    variant: str = "minbase"
    # None: this machine's own; "arm64" on an amd64 machine needs emulation (emulation.py).
    arch: str | None = None


def _apt_sources() -> list[tuple[str, list[str]]]:
    """(URI, suites) of every ``deb`` source in this machine's apt configuration."""
    entries: list[tuple[str, list[str]]] = []
    apt = Path("/etc/apt")
    for path in sorted([apt / "sources.list", *apt.glob("sources.list.d/*")]):
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":  # deb822 stanzas
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    name, sep, value = line.partition(":")
                    if sep and not line.startswith(("#", " ")):
                        fields[name.strip().lower()] = value.strip()
                if "deb" in fields.get("types", "").split():
                    suites = fields.get("suites", "").split()
                    entries += [(uri, suites) for uri in fields.get("uris", "").split()]
        else:  # one-line style: deb [options] URI suite components...
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
                if len(words) >= 3 and words[0] == "deb":
                    entries.append((words[1], words[2:3]))
    return entries


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (its sources list), or $MARKETPLACE_DEBIAN_MIRROR.

    debootstrap needs a release archive (every release is on the same mirror); the security and
    updates archives and third-party repositories are skipped.
    """
    override = os.environ.get("MARKETPLACE_DEBIAN_MIRROR")
    if override:
        return override
    for uri, suites in _apt_sources():
        release_archive = any("-" not in s and "/" not in s for s in suites)
        if (
            uri.startswith("http")
            and "/debian" in uri
            and "security" not in uri
            and release_archive
        ):
            return uri.rstrip("/")
    return "http://deb.debian.org/debian"


def _debootstrap_version() -> str:
    return run(["dpkg-query", "-W", "-f=${Version}", "debootstrap"], check=False).strip()


def debian_image(buildah: Buildah, base: DebianBase) -> str:
    """The base image for ``base``, made once per machine and cached (tarball and image)."""
    mirror = debian_mirror()
    arch = base.arch or run(["dpkg", "--print-architecture"]).strip() or platform.machine()
    key = digest(_RECIPE, base.suite, base.variant, sorted(base.include), mirror, arch,
                 _debootstrap_version())  # fmt: skip
    tag = f"{REPOSITORY}/{base.name}:{key}"
    tarball = buildah.cache / "debootstrap" / f"{base.name}-{key}.tar"
    with locked(f"debian-{base.name}"):
        if buildah.exists(tag):
            buildah.current[tag.rsplit(":", 1)[0]] = tag
            return tag
        if not tarball.exists():
            _debootstrap(base, arch, mirror, tarball)
        container = buildah("from", "scratch").strip()
        try:
            buildah("add", "--quiet", container, str(tarball), "/")
            # Like the official Python images: PATH set, CMD python3 (which ENTRYPOINT clears).
            buildah("config", "--env", f"PATH={DEFAULT_PATH}", "--cmd", "python3", container)
            buildah("config", "--os", "linux", "--arch", arch, container)
            buildah("commit", "--quiet", container, tag)
        finally:
            subprocess.run([*buildah.base_args, "rm", container], capture_output=True, check=False)
        buildah.drop_other_tags(tag)
    return tag


def _debootstrap(base: DebianBase, arch: str, mirror: str, tarball: Path) -> None:
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tarball.parent, prefix="rootfs-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        run(
            [
                "debootstrap",
                f"--arch={arch}",
                f"--variant={base.variant}",
                f"--include={','.join(base.include)}",
                base.suite,
                str(rootfs),
                mirror,
            ],
            timeout=1200,
        )
        # What a container image does not carry: device nodes (the runtime provides /dev),
        # apt's package lists and downloaded .debs (as in Debian's official images).
        partial = tarball.with_suffix(".partial")
        run(
            [
                "tar",
                "--numeric-owner",
                "--xattrs",
                "-C",
                str(rootfs),
                "--exclude=./dev/*",
                "--exclude=./proc/*",
                "--exclude=./sys/*",
                "--exclude=./var/lib/apt/lists/*",
                "--exclude=./var/cache/apt/*",
                "-cf",
                str(partial),
                ".",
            ]
        )
        partial.rename(tarball)
        shutil.rmtree(rootfs, ignore_errors=True)
