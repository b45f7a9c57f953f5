"""The seller's public keys: which products and key versions this image trusts.

Trust comes from the image, never from the runtime environment alone. The keys directory (default
``/etc/marketplace-entrypoint/keys``, chosen by a flag baked into ENTRYPOINT, never by an
environment variable) is the allow-list::

    <keys-dir>/<PRODUCT_CODE>/v<N>.pem        one RSA public key per product and key version
    <keys-dir>/<PRODUCT_CODE>/contract.json   or: a contract-priced product (License Manager)

A product code or key version that is not in it is never trusted. A product folder holds either
public keys (a metered product: RegisterUsage) or a contract file (a contract-priced product:
License Manager CheckoutLicense, `entrypoint.license.contract`), never both.

Everything is checked when the directory is loaded, so a broken image fails at its first start
rather than at a key rotation: unreadable or non-PEM files, private keys, certificates, non-RSA
keys, keys under 2048 bits, the jwt.io demo key from AWS's documentation and malformed contract
files are refused with the file's path and a remedy.

`check_public_key` is pure and is also applied by `entrypoint.verify_signature` to the key object
its caller passes.
"""

from __future__ import annotations

import hashlib
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .errors import ConfigurationError, UntrustedKeyError, one_line
from .license.contract import CONTRACT_FILE, MAX_CONTRACT_BYTES, ContractProduct, parse_contract

__all__ = [
    "DEFAULT_KEYS_DIR",
    "MIN_KEY_BITS",
    "TrustStore",
    "TrustedProduct",
    "check_public_key",
    "load_public_key_pem",
    "load_trust_store",
    "spki_fingerprint",
]

DEFAULT_KEYS_DIR = Path("/etc/marketplace-entrypoint/keys")

# Real Marketplace key sizes are not public (facts: "Public keys"); 2048 bits is the floor NIST
# SP 800-131A sets for RSA signatures, and the only key in AWS's docs (1024-bit) is compromised.
MIN_KEY_BITS = 2048
# Cap on a key file: a 16384-bit SPKI PEM is under 3 KiB; anything near this is not a key.
MAX_KEY_FILE_BYTES = 64 * 1024
# Cap on products and versions one image may trust; a keys directory is written by hand.
MAX_PRODUCTS = 256
MAX_VERSIONS_PER_PRODUCT = 64

# Keys whose private half is public. SHA-256 of the SubjectPublicKeyInfo DER -> (bits, what it is).
# The jwt.io RS256 demo key is the only PEM in AWS's RegisterUsage documentation ("Replace with
# your public key"); a token forged with its published private key verifies against it.
_DENYLIST: Mapping[str, tuple[int, str]] = MappingProxyType(
    {
        "d2f8d7917928bbe7a457bdbaa0f69221a49b0fbc867ea34b700e9e78364d57e8": (
            1024,
            "the jwt.io RS256 demo key from AWS's documentation, whose private key is public",
        ),
    }
)
_DENYLISTED_SIZES = frozenset(bits for bits, _ in _DENYLIST.values())

# ProductCode in the Metering API model: <=255 chars of [-a-zA-Z0-9/=:_.@]. A directory name
# cannot hold "/", and a leading "." is reserved for hidden entries (Kubernetes' ..data links).
_PRODUCT_DIR = re.compile(r"[-a-zA-Z0-9=:_@][-a-zA-Z0-9=:_.@]{0,254}")
# v<N>.pem with N >= 1 written without leading zeros, so v1 and v01 cannot both exist.
_KEY_FILE = re.compile(r"v([1-9][0-9]{0,8})\.pem")
_PEM_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")


def spki_fingerprint(key: rsa.RSAPublicKey) -> str:
    """SHA-256 of the key's SubjectPublicKeyInfo DER, as lowercase hex."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def check_public_key(
    key: object, *, min_bits: int = MIN_KEY_BITS, where: str = "public key"
) -> rsa.RSAPublicKey:
    """Return ``key`` if it may verify Marketplace signatures, else raise `UntrustedKeyError`.

    Guarantees: the result is an RSA *public* key of at least ``min_bits`` bits whose fingerprint
    is not on the denylist. Cheap enough to run on every verification: the fingerprint is only
    computed for keys of a size some denylisted key has.
    """
    if isinstance(key, rsa.RSAPrivateKey):
        raise UntrustedKeyError(
            f"{where} is an RSA private key",
            remedy="pass the public key; a seller never holds the Marketplace private key",
        )
    if not isinstance(key, rsa.RSAPublicKey):
        raise UntrustedKeyError(
            f"{where} is {one_line(type(key).__name__, 60)}, not an RSA public key",
            remedy="AWS Marketplace signs with RSA-PSS (PS256): pass the RSA public key object "
            "that entrypoint.load_public_key_pem() returns",
        )
    bits = key.key_size
    if bits in _DENYLISTED_SIZES:
        known = _DENYLIST.get(spki_fingerprint(key))
        if known is not None:
            raise UntrustedKeyError(
                f"{where} is {known[1]}",
                remedy="use the public key shown for your product in the AWS Marketplace "
                "Management Portal",
            )
    if bits < min_bits:
        raise UntrustedKeyError(
            f"{where} is a {bits}-bit RSA key, under the {min_bits}-bit minimum",
            remedy="use the public key shown for your product in the AWS Marketplace "
            "Management Portal",
        )
    return key


def load_public_key_pem(
    data: bytes, *, where: str = "public key", min_bits: int = MIN_KEY_BITS
) -> rsa.RSAPublicKey:
    """Parse one PEM-encoded RSA public key (SPKI or PKCS#1) and apply `check_public_key`.

    Refuses, naming ``where``: oversized input, no PEM block, several blocks, private keys,
    certificates and anything cryptography cannot parse as a public key.
    """
    if len(data) > MAX_KEY_FILE_BYTES:
        raise UntrustedKeyError(
            f"{where} is {len(data)} bytes, over the {MAX_KEY_FILE_BYTES}-byte cap for a key file"
        )
    labels = [m.group(1).decode("ascii") for m in _PEM_BEGIN.finditer(data)]
    if not labels:
        raise UntrustedKeyError(
            f"{where} is not PEM (no '-----BEGIN PUBLIC KEY-----' line)",
            remedy="save the key exactly as the AWS Marketplace Management Portal shows it",
        )
    if len(labels) > 1:
        raise UntrustedKeyError(
            f"{where} holds {len(labels)} PEM blocks ({', '.join(labels)}); one key per file"
        )
    label = labels[0]
    if "PRIVATE KEY" in label:
        raise UntrustedKeyError(
            f"{where} holds a private key ({label})",
            remedy="ship only the public key AWS Marketplace gave you, and treat this private "
            "key as leaked if it was ever in an image",
        )
    if label not in ("PUBLIC KEY", "RSA PUBLIC KEY"):
        raise UntrustedKeyError(
            f"{where} holds a {label}, not a PUBLIC KEY",
            remedy="save the public key exactly as the AWS Marketplace Management Portal shows it",
        )
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        # cryptography's Rust parser raises ValueError on malformed DER; never let it escape raw.
        raise UntrustedKeyError(f"{where} is not a valid PEM public key: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any parser failure is a refusal, never a crash
        raise UntrustedKeyError(f"{where} could not be parsed ({type(exc).__name__})") from None
    checked = check_public_key(key, min_bits=min_bits, where=where)
    # cryptography checks the exponent (odd, >= 3) but loads an even modulus, which no RSA key
    # has (n is a product of two odd primes): a damaged file, refused like the others.
    if checked.public_numbers().n % 2 == 0:
        raise UntrustedKeyError(
            f"{where} has an even RSA modulus, which no real key has (a damaged copy?)",
            remedy="save the key again exactly as the AWS Marketplace Management Portal shows it",
        )
    return checked


@dataclass(frozen=True, slots=True)
class TrustedProduct:
    """One product this image trusts: its public keys by version (a metered product), or its
    contract configuration (a contract-priced product, with no keys)."""

    code: str
    keys: Mapping[int, rsa.RSAPublicKey]
    contract: ContractProduct | None = None

    @property
    def latest_version(self) -> int:
        """The highest key version present: the default for RegisterUsage."""
        if not self.keys:
            raise ConfigurationError(
                f"product {self.code} is contract-priced: it has no RegisterUsage key",
                remedy="contract products are checked with License Manager, not RegisterUsage",
            )
        return max(self.keys)

    def describe(self) -> str:
        if self.contract is not None:
            return f"{self.code} ({self.contract.describe()})"
        return f"{self.code} ({', '.join(f'v{v}' for v in sorted(self.keys))})"


@dataclass(frozen=True, slots=True)
class TrustStore:
    """The loaded, checked allow-list of products and keys. Immutable once loaded."""

    root: Path
    products: Mapping[str, TrustedProduct]

    def product(self, code: str) -> TrustedProduct:
        """The trusted product ``code``, or `ConfigurationError` naming what is trusted."""
        try:
            return self.products[code]
        except KeyError:
            raise ConfigurationError(
                f"product code {one_line(code, 80)!r} is not trusted by this image "
                f"(trusted: {self.describe()})",
                remedy=f"add {self.root}/<PRODUCT_CODE>/v<N>.pem to the image, or set "
                "MARKETPLACE_PRODUCT_CODE to a trusted product",
            ) from None

    def key(self, code: str, version: int) -> rsa.RSAPublicKey:
        """The public key for ``code`` at ``version``, or `ConfigurationError`."""
        product = self.product(code)
        try:
            return product.keys[version]
        except KeyError:
            have = ", ".join(f"v{v}" for v in sorted(product.keys))
            raise ConfigurationError(
                f"no public key version {version} for product {code} in {self.root} "
                f"(present: {have})",
                remedy=f"add {self.root}/{code}/v{version}.pem to the image, or set "
                "MARKETPLACE_PUBLIC_KEY_VERSION to a present version",
            ) from None

    def describe(self) -> str:
        """Trusted products and versions, for diagnoses: ``prod-a (v1, v2), prod-b (v1)``."""
        if not self.products:
            return "none"
        return ", ".join(product.describe() for _, product in sorted(self.products.items()))


def _read_key_file(path: Path, cap: int = MAX_KEY_FILE_BYTES) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(cap + 1)
    except PermissionError:
        raise UntrustedKeyError(
            f"{path} is not readable by this user",
            remedy="make key files world-readable (mode 0644): they are public keys",
        ) from None
    except OSError as exc:
        raise UntrustedKeyError(f"{path} could not be read: {exc.strerror or exc}") from None
    return data


def _load_contract(path: Path, code: str) -> ContractProduct:
    _check_regular(path)
    return parse_contract(
        _read_key_file(path, MAX_CONTRACT_BYTES), product_code=code, where=str(path)
    )


def _check_regular(path: Path) -> None:
    try:
        is_file = stat.S_ISREG(path.stat().st_mode)
    except OSError as exc:
        raise UntrustedKeyError(f"{path} could not be read: {exc.strerror or exc}") from None
    if not is_file:
        raise UntrustedKeyError(f"{path} is not a regular file")


def _load_product(directory: Path, code: str) -> TrustedProduct:
    keys: dict[int, rsa.RSAPublicKey] = {}
    contract: ContractProduct | None = None
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        raise ConfigurationError(
            f"cannot list {directory}: {exc.strerror or exc}",
            remedy="make the keys directory readable and listable by the container's user",
        ) from None
    for path in entries:
        if path.name.startswith("."):
            continue
        if path.name == CONTRACT_FILE:
            contract = _load_contract(path, code)
            continue
        match = _KEY_FILE.fullmatch(path.name)
        if match is None:
            raise ConfigurationError(
                f"unexpected file {path} in the keys directory",
                remedy="name each key v<N>.pem after its public key version (v1.pem, v2.pem, …), "
                f"or write the product's {CONTRACT_FILE}, and keep nothing else in its folder",
            )
        if len(keys) >= MAX_VERSIONS_PER_PRODUCT:
            raise ConfigurationError(
                f"{directory} has more than {MAX_VERSIONS_PER_PRODUCT} key versions",
                remedy="keep only the current and the next key version in the image",
            )
        _check_regular(path)
        keys[int(match.group(1))] = load_public_key_pem(_read_key_file(path), where=str(path))
    if contract is not None and keys:
        # Contract-priced products call License Manager and never RegisterUsage (seller guide):
        # keys beside a contract would make what the image checks ambiguous.
        raise ConfigurationError(
            f"product folder {directory} holds both public keys and {CONTRACT_FILE}",
            remedy="a product is either metered (v<N>.pem: RegisterUsage) or contract-priced "
            f"({CONTRACT_FILE}: License Manager); keep only the one its listing uses",
        )
    if contract is None and not keys:
        raise ConfigurationError(
            f"product folder {directory} holds no v<N>.pem key and no {CONTRACT_FILE}",
            remedy="save the public key AWS Marketplace gave you as "
            f"{directory}/v<PUBLIC_KEY_VERSION>.pem, or a contract product's {CONTRACT_FILE} "
            "(keys/README.md)",
        )
    return TrustedProduct(code=code, keys=MappingProxyType(keys), contract=contract)


def load_trust_store(root: Path | str = DEFAULT_KEYS_DIR) -> TrustStore:
    """Load and check every key under ``root``; raise `ConfigurationError` on anything wrong.

    Top-level regular files (a README) and hidden entries are ignored; every other entry must be a
    product folder named by its product code. Symbolic links are followed (Kubernetes mounts).
    """
    root = Path(root)
    remedy = (
        "COPY your product's public keys into the image as "
        f"{root}/<PRODUCT_CODE>/v<N>.pem, or its {CONTRACT_FILE} (see keys/README.md), "
        "or pass --keys-dir"
    )
    try:
        entries = sorted(root.iterdir())
    except FileNotFoundError:
        raise ConfigurationError(f"keys directory {root} does not exist", remedy=remedy) from None
    except NotADirectoryError:
        raise ConfigurationError(
            f"keys directory {root} is not a directory", remedy=remedy
        ) from None
    except OSError as exc:
        raise ConfigurationError(
            f"cannot list keys directory {root}: {exc.strerror or exc}",
            remedy="make the keys directory readable and listable by the container's user",
        ) from None
    products: dict[str, TrustedProduct] = {}
    for path in entries:
        if path.name.startswith("."):
            continue
        if not path.is_dir():
            continue  # a README or notes beside the product folders
        if _PRODUCT_DIR.fullmatch(path.name) is None:
            raise ConfigurationError(
                f"{path} is not named like a product code",
                remedy="name each product folder exactly as the product code AWS Marketplace "
                "gave you (letters, digits and -=:_.@)",
            )
        if len(products) >= MAX_PRODUCTS:
            raise ConfigurationError(f"{root} trusts more than {MAX_PRODUCTS} products")
        products[path.name] = _load_product(path, path.name)
    if not products:
        raise ConfigurationError(f"keys directory {root} trusts no product", remedy=remedy)
    return TrustStore(root=root, products=MappingProxyType(products))
