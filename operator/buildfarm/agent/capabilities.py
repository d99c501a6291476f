"""What the agent finds on its machine, for Worker.status.capabilities. Every probe is best effort: a
missing tool gives an empty field, never a failed start."""

import platform
import plistlib
import shutil
from importlib import metadata
from pathlib import Path

import psutil

from buildfarm.api.workers import WorkerCapabilities

APPLICATIONS = Path("/Applications")
XCODE_VERSIONS_MAX = 16


def agent_version() -> str:
    try:
        return metadata.version("buildfarm-operator")
    except metadata.PackageNotFoundError:
        return "unknown"


def os_version() -> str:
    if platform.system() == "Darwin":
        release = platform.mac_ver()[0]
        return f"macOS {release}" if release else "macOS"
    try:
        info = platform.freedesktop_os_release()
        return str(info.get("PRETTY_NAME") or f"Linux {platform.release()}")
    except OSError:
        return f"{platform.system()} {platform.release()}".strip()


def xcode_versions(applications: Path = APPLICATIONS) -> list[str]:
    """Versions of /Applications/Xcode*.app (CFBundleShortVersionString), sorted, at most 16."""
    found: set[str] = set()
    try:
        apps = sorted(applications.glob("Xcode*.app"))
    except OSError:
        return []
    for app in apps:
        try:
            with (app / "Contents" / "Info.plist").open("rb") as file:
                version = plistlib.load(file).get("CFBundleShortVersionString")
        except (OSError, plistlib.InvalidFileException, ValueError):
            continue
        if isinstance(version, str) and version:
            found.add(version[:32])
    return sorted(found, key=_version_key)[:XCODE_VERSIONS_MAX]


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))


def probe(work_dir: Path) -> WorkerCapabilities:
    disk_path = work_dir if work_dir.exists() else Path.home()
    try:
        free_disk: int | None = shutil.disk_usage(disk_path).free
    except OSError:
        free_disk = None
    return WorkerCapabilities(
        os_version=os_version()[:128],
        architecture=platform.machine().lower()[:32],
        xcode_versions=xcode_versions(),
        cpu_cores=psutil.cpu_count(logical=True),
        memory_bytes=psutil.virtual_memory().total,
        free_disk_bytes=free_disk,
        agent_version=agent_version()[:64],
    )
