"""Storage keys and the names that go into them, checked before anything touches storage (pure).

A key is `/`-separated components (docs/artifacts-api.md, "Storage layout"). Every component a client
chose (namespace, build name, artifact file name) is checked here: no `..`, no absolute paths, no NUL or
control characters, no separators, no leading dot, so a key can never leave its prefix on any backend.
"""

import re
from typing import Final

SHA256_PATTERN: Final = re.compile(r"^[a-f0-9]{64}$")
_DNS_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_UID: Final = re.compile(r"^[a-zA-Z0-9-]{1,64}$")
FILE_NAME_MAX: Final = 255  # bytes, as status.artifacts[].name and most file systems allow
ATTEMPT_MAX: Final = 100  # as status.attempt


class BadName(ValueError):
    """A name cannot be part of a storage key; the message says which and why."""


def file_name(name: str) -> str:
    """An artifact's file name: one path component of printable characters."""
    if not name or len(name.encode()) > FILE_NAME_MAX:
        raise BadName(f"the file name must be 1 to {FILE_NAME_MAX} bytes long")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise BadName(f"the file name {name!r} holds a NUL or control character: rename the file")
    if "/" in name or "\\" in name:
        raise BadName(f"the file name {name!r} holds a path separator: upload a plain file name")
    if name.startswith("."):
        raise BadName(f"the file name {name!r} starts with a dot ('..' and hidden files are refused)")
    return name


def namespace(name: str) -> str:
    if len(name) > 63 or not _DNS_LABEL.match(name):
        raise BadName(f"{name!r} is not a namespace name")
    return name


def object_name(name: str) -> str:
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise BadName(f"{name!r} is not a Build name")
    return name


def sha256(value: str) -> str:
    if not SHA256_PATTERN.match(value):
        raise BadName(f"{value!r} is not a sha256 (64 lowercase hex digits)")
    return value


def attempt(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= ATTEMPT_MAX:
        raise BadName(f"{value!r} is not an attempt (1 to {ATTEMPT_MAX})")
    return int(value)


def uid(value: str) -> str:
    if not _UID.match(value):
        raise BadName(f"{value!r} is not a uid")
    return value


def source_prefix(ns: str, digest: str) -> str:
    """One prefix per source, so the retention sweep can list sources with `list_prefixes`."""
    return f"sources/{namespace(ns)}/{sha256(digest)}/"


def source_key(ns: str, digest: str) -> str:
    return f"{source_prefix(ns, digest)}source.tar.gz"


def build_prefix(ns: str, name: str, build_uid: str) -> str:
    """Everything of one Build (all attempts); keyed by uid so a new Build with an old name sees nothing."""
    return f"builds/{namespace(ns)}/{object_name(name)}/{uid(build_uid)}/"


def artifact_key(ns: str, name: str, build_uid: str, build_attempt: int, file: str) -> str:
    return f"{build_prefix(ns, name, build_uid)}{build_attempt}/artifacts/{file_name(file)}"


def log_key(ns: str, name: str, build_uid: str, build_attempt: int) -> str:
    return f"{build_prefix(ns, name, build_uid)}{build_attempt}/log"


def check_key(key: str) -> str:
    """A key a backend may store: relative, no empty, `.`-led or control-character components.
    Backends call it as a second line of defence; the service builds keys only from checked names."""
    parts = key.split("/")
    if key.startswith("/") or any(
        not part
        or part.startswith(".")
        or any(ord(ch) < 0x20 or ord(ch) == 0x7F or ch == "\\" for ch in part)
        for part in parts
    ):
        raise BadName(f"{key!r} is not a storage key")
    return key


def check_prefix(prefix: str) -> str:
    if not prefix.endswith("/"):
        raise BadName(f"{prefix!r} is not a storage prefix (it must end with '/')")
    check_key(prefix[:-1])
    return prefix
