"""The build command: a template split into arguments like a shell would, BEFORE anything is filled in,
then each {placeholder} substituted inside its own argument. A value from a Build (every field of which is
untrusted) therefore stays one argument whatever it contains: spaces, quotes, `;`, `$(...)`. No shell ever
sees it. Pure, so it is table-tested."""

import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Final

from buildfarm.api.builds import Build
from buildfarm.api.meta import Platform

PLACEHOLDER: Final = re.compile(r"\{([a-z_]*)\}")
PLACEHOLDERS: Final = frozenset(
    {"platform", "profile", "artifact", "output_dir", "source_dir", "build_name", "namespace", "attempt"}
)
# What eas build uses when no --profile is given.
DEFAULT_PROFILE: Final = "production"
ARTIFACT_SUFFIX: Final = {Platform.IOS: "ipa", Platform.ANDROID: "apk"}


class TemplateError(ValueError):
    """The template names a placeholder that does not exist."""


def check_template(template: str) -> list[str]:
    """The template split into arguments; TemplateError for an unknown placeholder or an empty command."""
    argv = shlex.split(template)
    if not argv:
        raise TemplateError("the command is empty")
    for arg in argv:
        for name in PLACEHOLDER.findall(arg):
            if name not in PLACEHOLDERS:
                known = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
                raise TemplateError(f"{{{name}}} is not a placeholder (known: {known})")
    return argv


def render(template: str, values: Mapping[str, str]) -> list[str]:
    """The argv: the template split first, then placeholders replaced inside each argument. `{{`/`}}`
    are not special: a template needs no literal braces."""
    argv = check_template(template)
    return [PLACEHOLDER.sub(lambda m: values[m.group(1)], arg) for arg in argv]


def artifact_name(build: Build) -> str:
    """The file the build writes: <build name>.ipa or .apk (a build name is a DNS subdomain: safe)."""
    return f"{build.name}.{ARTIFACT_SUFFIX[build.spec.platform]}"


def values_for(build: Build, *, source_dir: str, output_dir: str, artifact: str) -> dict[str, str]:
    return {
        "platform": build.spec.platform.value,
        "profile": build.spec.profile or DEFAULT_PROFILE,
        "artifact": artifact,
        "output_dir": output_dir,
        "source_dir": source_dir,
        "build_name": build.name,
        "namespace": build.namespace,
        "attempt": str(build.status.attempt),
    }


def remote_command(argv: Sequence[str]) -> str:
    """One command line for a remote shell (ssh joins its arguments into one): every argument quoted."""
    return " ".join(shlex.quote(arg) for arg in argv)
