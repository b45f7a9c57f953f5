"""Build-stage helper for docker/Dockerfile: check the keys, then slim the installed libraries.

Runs inside the image's build stage with the base image's own ``python3`` (standard library only,
plus the libraries it is slimming), so it must work on every Python the image supports (3.11+).

    python3 image_build.py check-keys KEYS_DIR
    python3 image_build.py slim PREFIX

``check-keys`` loads the keys directory exactly as the entrypoint does at start-up, so an image
that would refuse to start (no product, a private key, the jwt.io demo key, a 1024-bit key, a
malformed contract product's ``contract.json``) is never built.

``slim`` turns a ``pip install --no-compile --target PREFIX/lib`` tree into the image's layer:

* botocore's service models are cut to the services the entrypoint and its credential providers
  call: ``meteringmarketplace`` (RegisterUsage), ``license-manager`` (CheckoutLicense, for
  contract-priced products) and ``sts`` (AssumeRoleWithWebIdentity for IRSA on EKS, AssumeRole
  for profiles). The ECS task role and instance metadata providers speak plain HTTP
  and need no model. The top-level data (endpoints, partitions, retry and SDK default
  configuration) is kept whole: every client needs it.
* The JSON data left is stored gzip-compressed (``endpoints.json``, 1.25 MB, becomes 50 kB):
  botocore's loader reads ``<name>.json.gz`` wherever ``<name>.json`` is absent
  (botocore/loaders.py, ``_JSON_OPEN_METHODS``), as it already does for the service models.
* boto3's resource models, console scripts, type stubs and test folders go: nothing imports them.
* The demo and the emulator go too (``entrypoint/demo.py``, ``entrypoint/emulator/``): they are
  development tools, and in a production image ``marketplace-entrypoint demo`` would start the
  workload with no RegisterUsage at all (a CMD of ``["demo", "--", "app"]`` behind an ENTRYPOINT
  without ``--``). There, ``demo`` and ``emulator`` say they are not part of the image (exit 64).
* Byte code is compiled only for the modules a bootstrap imports (found by importing them and
  creating the clients, offline), as ``checked-hash`` pycs: valid whatever the files' mtimes
  (reproducible layers), still checked against the source, and usable on a read-only root where
  Python could never write its own cache. The rest of botocore and the emulator stay source only.
* Afterwards the clients are created again from the slimmed tree, so a cut that breaks the SDK
  fails the build, not the buyer's first start.

It writes ``PREFIX/python-version`` (e.g. ``3.11``): the libraries hold compiled extensions for
that CPython only (cffi's ``_cffi_backend`` is built per version), and the launcher checks it.
"""

from __future__ import annotations

import argparse
import gzip
import os
import py_compile
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NoReturn

# Service models the SDK needs: RegisterUsage, License Manager (contract products), and STS for
# the web identity (IRSA) and assume-role credential providers (botocore/credentials.py creates
# 'sts' clients; 'sso' and 'signin' serve developer logins, which AWS Marketplace container
# products do not support).
KEEP_SERVICES = frozenset({"meteringmarketplace", "license-manager", "sts"})
# Whole folders nothing imports at run time: boto3's resource models (boto3.resource() only) and
# pip's console scripts, written with the build stage's interpreter path.
DROP_PATHS = ("boto3/data", "bin")
# The development tools, which have no place in a production image: the demo starts a workload
# with no RegisterUsage, the emulator signs answers with keys of its own (entrypoint/cli.py then
# says they are not part of the image).
DEVELOPMENT_TOOLS = ("entrypoint/demo.py", "entrypoint/emulator")
# Names dropped wherever they appear: type stubs and test suites are for developers.
DROP_SUFFIXES = (".pyi",)
DROP_DIRS = frozenset({"__pycache__", "tests", "test"})

# What a bootstrap imports, run in a child interpreter against the slimmed tree. It creates the
# clients exactly as entrypoint.metering does (explicit region, static or chain credentials) and
# builds the default credential chain, offline: no request is sent.
_PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
import botocore.session
import entrypoint.bootstrap, entrypoint.cli, entrypoint.execute, entrypoint.keys
import entrypoint.metering, entrypoint.region, entrypoint.register, entrypoint.verify
import entrypoint.license.checkout, entrypoint.license.client
session = botocore.session.get_session()
for service in ("meteringmarketplace", "license-manager", "sts"):
    session.create_client(service, region_name="us-east-1", aws_access_key_id="AKIDPROBE",
                          aws_secret_access_key="probe")
session.get_component("credential_provider")
lib = sys.argv[1].rstrip("/") + "/"
for module in list(sys.modules.values()):
    path = getattr(module, "__file__", None) or ""
    if path.startswith(lib) and path.endswith(".py"):
        print(path)
"""


def _say(message: str) -> None:
    sys.stdout.write(f"image_build: {message}\n")


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"image_build: error: {message}\n")
    raise SystemExit(1)


def check_keys(keys_dir: Path, lib: Path) -> None:
    """Load ``keys_dir`` with the entrypoint's own loader; exit 1 with its diagnosis if refused."""
    sys.path.insert(0, str(lib))
    from entrypoint.errors import EntrypointError
    from entrypoint.keys import load_trust_store

    try:
        store = load_trust_store(keys_dir)
    except EntrypointError as error:
        _fail(
            f"the image would refuse to start: {error.summary}: {error.reason}; put your "
            "product's public keys in the build context as keys/<PRODUCT_CODE>/v<N>.pem, or a "
            "contract product's keys/<PRODUCT_CODE>/contract.json (keys/README.md)"
        )
    _say(f"the image trusts {store.describe()}")


def _remove(path: Path) -> int:
    """Delete ``path`` (file or tree); return the bytes it held."""
    if path.is_symlink() or path.is_file():
        size = path.lstat().st_size
        path.unlink()
        return size
    size = sum(p.lstat().st_size for p in path.rglob("*") if not p.is_symlink() and p.is_file())
    shutil.rmtree(path)
    return size


def prune(lib: Path) -> dict[str, int]:
    """Delete what the entrypoint never loads from ``lib``; return bytes removed per rule."""
    removed: dict[str, int] = {}

    def note(rule: str, paths: Iterable[Path]) -> None:
        for path in sorted(paths, reverse=True):  # children before parents
            if path.exists() or path.is_symlink():
                removed[rule] = removed.get(rule, 0) + _remove(path)

    data = lib / "botocore" / "data"
    if not (data / "meteringmarketplace").is_dir():
        _fail(f"{data} has no meteringmarketplace model: is botocore installed in {lib}?")
    note(
        "botocore service models",
        (p for p in data.iterdir() if p.is_dir() and p.name not in KEEP_SERVICES),
    )
    saved = 0
    for path in sorted(data.rglob("*.json")):
        raw = path.read_bytes()
        # mtime=0: the same input gives the same bytes (reproducible layers).
        packed = gzip.compress(raw, compresslevel=9, mtime=0)
        path.with_name(path.name + ".gz").write_bytes(packed)
        path.unlink()
        saved += len(raw) - len(packed)
    removed["botocore data, by gzip"] = saved
    note("boto3 resources, console scripts", (lib / p for p in DROP_PATHS))
    note("the demo and the emulator", (lib / p for p in DEVELOPMENT_TOOLS))
    note(
        "caches, tests, type stubs",
        (
            p
            for p in lib.rglob("*")
            if (p.is_dir() and p.name in DROP_DIRS) or p.name.endswith(DROP_SUFFIXES)
        ),
    )
    return removed


def _imported_modules(lib: Path) -> list[Path]:
    # -I: ignore PYTHON* variables and the user's site-packages, so the probe sees only ``lib``.
    # -B: the probe must not leave timestamp-based pycs behind; they are compiled below.
    result = subprocess.run(
        [sys.executable, "-I", "-B", "-c", _PROBE, str(lib)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        _fail(f"the slimmed libraries cannot create the SDK clients:\n{result.stderr}")
    return sorted({Path(line) for line in result.stdout.splitlines() if line})


def compile_imported(lib: Path) -> list[Path]:
    """Compile checked-hash pycs for every module a bootstrap imports from ``lib``."""
    modules = _imported_modules(lib)
    for path in modules:
        py_compile.compile(
            str(path),
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
        )
    return modules


def slim(prefix: Path) -> None:
    lib = prefix / "lib"
    before = _tree_size(lib)
    removed = prune(lib)
    modules = compile_imported(lib)
    # The check above ran before the pycs existed; run it again on the final tree.
    _imported_modules(lib)
    version = "{}.{}".format(*sys.version_info[:2])
    (prefix / "python-version").write_text(version + "\n", encoding="ascii")
    for rule, size in removed.items():
        _say(f"removed {size / 1e6:6.2f} MB of {rule}")
    _say(
        f"compiled {len(modules)} modules a bootstrap imports; "
        f"{lib} went from {before / 1e6:.2f} MB to {_tree_size(lib) / 1e6:.2f} MB "
        f"(CPython {version})"
    )


def _tree_size(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="image_build", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    keys = commands.add_parser("check-keys", help="load the keys directory as the entrypoint does")
    keys.add_argument("keys_dir", type=Path)
    keys.add_argument("--lib", type=Path, required=True, help="where the entrypoint is installed")
    slim_parser = commands.add_parser("slim", help="prune and compile PREFIX/lib")
    slim_parser.add_argument("prefix", type=Path)
    args = parser.parse_args(argv)
    os.umask(0o022)
    if args.command == "check-keys":
        check_keys(args.keys_dir, args.lib)
    else:
        slim(args.prefix)


if __name__ == "__main__":
    main()
