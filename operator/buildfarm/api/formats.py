"""String formats the API server enforces on untrusted input, as CEL rules generated into the CRDs.

Each format is a regular expression plus what it means in words, so the rule's message tells the user
what to write instead. The expressions use only what RE2 (the API server's CEL) and Python's `re` read
the same way: character classes, groups, alternation, bounded repeats, and `^`/`$` around the whole
(RE2's `$` never matches before a trailing newline; `Format.accepts` uses `re.fullmatch` to agree).
They are the API server's first wall: a worker agent must still pass every field as one argument and
never build a shell string from it.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

# Kubernetes names and labels, as k8s.io/apimachinery/pkg/util/validation defines them.
_DNS_LABEL: Final = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN: Final = rf"{_DNS_LABEL}(\.{_DNS_LABEL})*"
_LABEL_NAME: Final = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"

# URLs: a host is a DNS name (any case) or a bracketed IPv6 address; each path segment starts with a
# character that is not '-', so no part of a URL can be read as a command-line option.
_HOST_LABEL: Final = r"[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?"
_HOST: Final = rf"({_HOST_LABEL}(\.{_HOST_LABEL})*|\[[0-9A-Fa-f:.]+\])"
_PORT: Final = r"(:[0-9]{1,5})?"
_USER: Final = r"[A-Za-z0-9_][-A-Za-z0-9_.]*"
_SEGMENT: Final = r"([A-Za-z0-9._~+=,@]|%[0-9A-Fa-f]{2})([-A-Za-z0-9._~+=,@]|%[0-9A-Fa-f]{2})*"
_PATH: Final = rf"{_SEGMENT}(/{_SEGMENT})*/?"
_QUERY: Final = r"(\?[-A-Za-z0-9._~+=,@%&/:;]*)?"
_LOOPBACK: Final = r"(127\.0\.0\.1|localhost|\[::1\])"

# git refs: `git check-ref-format --allow-onelevel`, narrowed to the characters branch and tag names
# use in practice. A component starts with neither '.' nor '-', has no '..', and does not end with '.';
# '{' is not allowed at all, so '@{' cannot occur. The trailing '.lock' and the lone '@' are refused by
# the extra conditions of GIT_REVISION.
_REF_FIRST: Final = r"[A-Za-z0-9_+#@,=]"
_REF_CHAR: Final = r"[-A-Za-z0-9_+#@,=]"
_REF_COMPONENT: Final = rf"{_REF_FIRST}(\.?{_REF_CHAR})*"


def validations(*rules: dict[str, Any]) -> dict[str, Any]:
    """A model's or field's json_schema_extra that carries CEL rules into the generated CRD."""
    return {"x-kubernetes-validations": list(rules)}


@dataclass(frozen=True)
class Format:
    """A string format: `regex` (whole string) and `extra` CEL conditions on `self`, in words as `means`."""

    regex: str
    means: str
    # Conditions a regular expression without lookahead cannot say: CEL on `self`, and its Python twin.
    extra: tuple[tuple[str, Callable[[str], bool]], ...] = ()

    def accepts(self, value: str) -> bool:
        """The rule as Python evaluates it, for tests and clients; the API server's CEL is the authority."""
        if re.fullmatch(self.regex, value) is None:
            return False
        return all(python(value) for _, python in self.extra)

    def cel(self, var: str = "self") -> str:
        """The CEL condition that `var` (a string) has this format."""
        if "'" in self.regex:
            raise ValueError("a format's regex cannot contain a single quote (it is a CEL raw string)")
        checks = [f"{var}.matches(r'{self.regex}')", *(cel.replace("self", var) for cel, _ in self.extra)]
        return " && ".join(checks)

    def rule(self, field: str, *, optional: bool = False) -> dict[str, Any]:
        """An x-kubernetes-validations entry on the string itself; the error names `field`."""
        if optional:
            return {
                "rule": f"self == '' || ({self.cel()})",
                "message": f"{field} must be empty or {self.means}",
            }
        return {"rule": self.cel(), "message": f"{field} must be {self.means}"}


DNS_LABEL: Final = Format(
    f"^{_DNS_LABEL}$",
    "a DNS label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
)
DNS_SUBDOMAIN: Final = Format(
    f"^{_DNS_SUBDOMAIN}$",
    "a DNS subdomain: at most 253 lowercase letters, digits, '-' and '.', each dot-separated part "
    "starting and ending with a letter or digit",
)
LABEL_KEY: Final = Format(
    f"^({_DNS_SUBDOMAIN}/)?{_LABEL_NAME}$",
    "a label key: an optional DNS subdomain prefix of at most 253 characters and '/', then a name of "
    "at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
    extra=(("self.indexOf('/') <= 253", lambda v: v.find("/") <= 253),),
)
LABEL_VALUE: Final = Format(
    f"^({_LABEL_NAME})?$",
    "a label value: at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or "
    "digit, or empty",
)
GIT_URL: Final = Format(
    f"^(https://{_HOST}{_PORT}/{_PATH}|ssh://({_USER}@)?{_HOST}{_PORT}/{_PATH}|{_USER}@{_HOST}:/?{_PATH})$",
    "https://host/path, ssh://[user@]host[:port]/path or user@host:path, with no part starting with '-' "
    "and no spaces or control characters",
)
ARCHIVE_URL: Final = Format(
    f"^(https://{_HOST}|http://{_LOOPBACK}){_PORT}/{_PATH}{_QUERY}$",
    "an https:// URL (http:// only to 127.0.0.1, localhost or [::1]), with no spaces or control characters",
)
GIT_REVISION: Final = Format(
    f"^{_REF_COMPONENT}(/{_REF_COMPONENT})*$",
    "a branch, tag, ref (refs/heads/main) or commit SHA as git check-ref-format accepts it: letters, "
    "digits and '-_+#@,=./', no part starting with '.' or '-' or ending with '.' or '.lock', no '..'",
    extra=(
        ("!self.matches(r'[.]lock(/|$)')", lambda v: re.search(r"[.]lock(/|$)", v) is None),
        ("self != '@'", lambda v: v != "@"),
    ),
)
PROFILE: Final = Format(
    r"^[A-Za-z0-9_][-A-Za-z0-9_.]*$",
    "letters, digits, '.', '_' and '-', starting with a letter, digit or '_'",
)
CAMEL_CASE: Final = Format(r"^[A-Z][A-Za-z0-9]*$", "a CamelCase word such as NoMatchingWorker")
