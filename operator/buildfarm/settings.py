"""The operator's settings: environment variables `BUILDFARM_*`, overridden by command-line flags.

Every field is typed and bounded, so a wrong value stops the operator at startup with one line that names
the variable and says what it must be, instead of failing later in a handler. A `BUILDFARM_*` variable that
is neither a setting nor another buildfarm program's (FOREIGN_VARIABLES) is an error too: a misspelled
setting would otherwise be ignored without a word.
"""

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final, Self, TypeVar, get_args

import annotated_types
from pydantic import (
    AfterValidator,
    Field,
    SecretBytes,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX: Final = "BUILDFARM_"
SECRET_MIN_BYTES: Final = 32
NAMESPACES_MAX: Final = 100
_NAMESPACE_MAX_LENGTH: Final = 63
_NAMESPACE_PATTERN: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Custom error types whose message already says all (and never shows a secret).
SELF_EXPLAINING_ERRORS: Final = frozenset(
    {"namespace_name", "secret_too_short", "worker_name", "label", "env_name", "command"}
)
# Marks a numeric field whose bounds are rendered as "between A and B seconds".
_UNIT: Final = "unit"
_SHOWN_MAX: Final = 80

# Variables under BUILDFARM_ that belong to other buildfarm programs sharing the operator's environment
# (a developer's shell, a CI job, a pod with several containers). The operator leaves them alone.
# A name ending in `*` stands for every variable it starts with. Keep this the one list of them.
FOREIGN_VARIABLES: Final[Mapping[str, str]] = {
    "BUILDFARM_AGENT_*": "the worker agent",
    "BUILDFARM_ARTIFACTS_*": "the artifact service",
    "BUILDFARM_TEST_*": "the test suite (tests/conftest.py, hack/stress.sh)",
    "BUILDFARM_ETCD": "dev tooling: the etcd binary (buildfarm/dev/binaries.py)",
    "BUILDFARM_KUBE_APISERVER": "dev tooling: the kube-apiserver binary (buildfarm/dev/binaries.py)",
    "BUILDFARM_KUBECTL": "dev tooling: the kubectl binary (buildfarm/dev/binaries.py)",
    "BUILDFARM_CACHE_DIR": "dev tooling: where hack/build-kube-apiserver.sh caches binaries",
    "BUILDFARM_LOG_FORMAT": "every buildfarm command: text or json logs (`buildfarm --log-format`)",
}
# How alike a misspelling and a setting must be (difflib's ratio) to suggest the setting.
_SUGGEST_CUTOFF: Final = 0.6


def _at_least_32_bytes(value: SecretStr) -> SecretStr:
    size = len(value.get_secret_value().encode())
    if size < SECRET_MIN_BYTES:
        # The size is safe to show; the value never is.
        raise PydanticCustomError(
            "secret_too_short",
            "must be at least {min} bytes (got {got}); generate one with `openssl rand -hex 32`",
            {"min": SECRET_MIN_BYTES, "got": size},
        )
    return value


Secret32 = Annotated[SecretStr, AfterValidator(_at_least_32_bytes)]
"""A secret of at least 32 bytes (UTF-8); shown as `**********` in repr and never in error messages."""


def name_format(kind: str, what: str, pattern: re.Pattern[str], max_length: int) -> AfterValidator:
    """A validator for a Kubernetes name: `'x' is not a <what> (<rule>, at most <max_length>)`."""

    def check(value: str) -> str:
        if len(value) > max_length or not pattern.match(value):
            raise PydanticCustomError(kind, "{name} is not " + what, {"name": repr(value)})
        return value

    return AfterValidator(check)


NamespaceName = Annotated[
    str,
    name_format(
        "namespace_name",
        "a namespace name (lowercase letters, digits and '-', at most 63)",
        _NAMESPACE_PATTERN,
        _NAMESPACE_MAX_LENGTH,
    ),
]


def _seconds(default: float, *, ge: float, le: float, description: str) -> Any:
    """A Field for a duration in seconds, bounded on both sides."""
    return Field(default, ge=ge, le=le, description=description, json_schema_extra={_UNIT: "seconds"})


seconds_field = _seconds  # for the settings of other commands (the agent's)


# kopf stores peering priorities as JSON numbers; stay within what any reader keeps exact.
PEERING_PRIORITY_MAX = 2**31 - 1


class OperatorSettings(BaseSettings):
    """How the operator connects to Kubernetes and how long anything may take.

    Each field `x` is read from the environment variable `BUILDFARM_X` (case-insensitive; empty = unset).
    """

    WHO: ClassVar[str] = "the operator"  # named in "is not a setting of ..."

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    kubeconfig: Path | None = Field(
        default=None,
        description=(
            "The kubeconfig file to use. Unset: $KUBECONFIG, else the in-cluster service account when "
            "running in a pod, else ~/.kube/config."
        ),
    )
    context: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="The kubeconfig context to use; unset: the kubeconfig's current-context.",
    )
    namespaces: Annotated[list[NamespaceName], NoDecode] = Field(
        default_factory=list,
        max_length=NAMESPACES_MAX,
        description="Namespaces whose Builds the operator serves, comma-separated in the environment; "
        "empty: all namespaces.",
    )
    standalone: bool = Field(
        default=False,
        description="Run without kopf peering, i.e. without coordinating with other operator replicas.",
    )
    peering_name: str = Field(
        default="default",
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="The name of kopf's peering object (a ClusterKopfPeering, or a KopfPeering in each "
        "served namespace) in which replicas of one installation see each other. Another installation in "
        "the same cluster uses another name (the chart uses its release's full name).",
    )
    peering_priority: int | None = Field(
        default=None,
        ge=1,
        le=PEERING_PRIORITY_MAX,
        description="This replica's kopf peering priority: of the replicas that peer, the one with the "
        "highest works and the others wait. Unset: a random one, chosen at start, so that replicas started "
        "alike do not tie (kopf pauses every replica of a tie).",
    )
    peering_lifetime_seconds: int = _seconds(
        20,
        ge=15,
        le=600,
        description="How long a replica counts as alive in the peering object after its last keep-alive "
        "(kopf renews it every lifetime minus 5 to 10 s). A killed replica's standby takes over once it "
        "expires; one stopped with SIGTERM hands over at once.",
    )
    request_timeout: float = _seconds(
        10.0, ge=0.5, le=300, description="The longest any single Kubernetes API call may take, in seconds."
    )
    connect_timeout: float = Field(
        default_factory=lambda data: min(5.0, data.get("request_timeout", 5.0)),
        ge=0.1,
        le=60,
        json_schema_extra={_UNIT: "seconds"},
        description="The longest opening a connection to the API server may take, in seconds; at most "
        "request_timeout. Default: 5, or request_timeout if that is lower.",
    )
    watch_server_timeout: int = _seconds(
        60,
        ge=10,
        le=3600,
        description="How long the API server keeps one watch open before the operator reopens it, "
        "in seconds.",
    )
    watch_client_timeout: float = Field(
        default_factory=lambda data: float(data.get("watch_server_timeout", 60)) + 30,
        ge=10,
        le=7200,
        json_schema_extra={_UNIT: "seconds"},
        description="When the operator gives up on a silent watch, in seconds; more than "
        "watch_server_timeout. Default: watch_server_timeout + 30 (90).",
    )
    handler_timeout: float = _seconds(
        60.0, ge=1, le=3600, description="The longest one handler may run before it is retried, in seconds."
    )
    resync_seconds: float = _seconds(
        30.0,
        ge=1,
        le=3600,
        description="How often the scheduler rescans everything, a safety net for missed events, in seconds.",
    )
    retry_backoff_seconds: float = _seconds(
        2.0, ge=0.1, le=300, description="How long to wait before retrying a failed handler, in seconds."
    )
    farm_namespace: NamespaceName = Field(
        default="buildfarm-system",
        description="The namespace of the farm itself: worker agents renew their heartbeat Leases there.",
    )
    lease_grace_seconds: float = _seconds(
        40.0,
        ge=5,
        le=3600,
        description="How long a worker's Lease may go unrenewed before its Ready condition becomes Unknown, "
        "in seconds (a Lease asking for a longer leaseDurationSeconds gets that).",
    )
    startup_grace_seconds: float | None = Field(
        default=None,
        ge=0,
        le=3600,
        json_schema_extra={_UNIT: "seconds"},
        description="After the operator starts, how long it only marks workers Ready, never lost, so a "
        "restart does not requeue builds before Leases were watched, in seconds. Default: "
        "lease_grace_seconds.",
    )
    requeue_delay_seconds: float = _seconds(
        0.0,
        ge=0,
        le=86400,
        description="How long a worker stays not Ready (after lease_grace_seconds) before its Assigned and "
        "Running builds are requeued, in seconds.",
    )
    deadline_grace_seconds: float = _seconds(
        300.0,
        ge=0,
        le=86400,
        description="How long past a build's spec.timeoutSeconds the operator waits for its agent to stop "
        "it before failing it with DeadlineExceeded itself, in seconds.",
    )
    liveness_endpoint: str | None = Field(
        default=None,
        max_length=256,
        pattern=r"^https?://[^/\s]+(/\S*)?$",
        description="Serve kopf's liveness probe at this URL, e.g. http://0.0.0.0:8080/healthz (the Helm "
        "chart's probes ask it); unset: no endpoint.",
    )
    metrics_port: int = Field(
        default=9090,
        ge=0,
        le=65535,
        description="Serve Prometheus metrics at http://0.0.0.0:<port>/metrics (see docs/metrics.md); "
        "0: no endpoint.",
    )
    artifact_signing_key: Secret32 | None = Field(
        default=None,
        description="A secret key for signing build artifacts, at least 32 bytes (`openssl rand -hex 32`). "
        "Unset: nothing is signed.",
    )

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split_namespaces(cls, value: Any) -> Any:
        """`a, b,,a` from the environment becomes ["a", "b"]: trimmed, empty parts and duplicates dropped."""
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            parts = [part.strip() if isinstance(part, str) else part for part in value]
            return list(dict.fromkeys(part for part in parts if part != ""))
        return value

    @model_validator(mode="after")
    def _timeouts_agree(self) -> Self:
        if self.connect_timeout > self.request_timeout:
            raise conflict(
                f"{env_var('connect_timeout')} ({self.connect_timeout:g}) must not exceed "
                f"{env_var('request_timeout')} ({self.request_timeout:g}): "
                "lower the first or raise the second",
                "connect_timeout",
                "request_timeout",
            )
        if self.watch_client_timeout <= self.watch_server_timeout:
            raise conflict(
                f"{env_var('watch_client_timeout')} ({self.watch_client_timeout:g}) must be greater than "
                f"{env_var('watch_server_timeout')} ({self.watch_server_timeout:g}), or the operator drops "
                "healthy watches: raise the first or lower the second",
                "watch_client_timeout",
                "watch_server_timeout",
            )
        return self


def env_var(field: str, prefix: str = ENV_PREFIX) -> str:
    """The environment variable of a setting: `request_timeout` -> `BUILDFARM_REQUEST_TIMEOUT`."""
    return f"{prefix}{field.upper()}"


@dataclass(frozen=True)
class SettingsProblem:
    """One thing wrong with the settings; `message` names the settings by their environment variables."""

    fields: tuple[str, ...]
    message: str
    prefix: str = ENV_PREFIX

    def render(self, names: Mapping[str, str]) -> str:
        """The message with some settings named differently, e.g. by the command-line flag that set them."""
        text = self.message
        for field in self.fields:
            if field in names:
                text = re.sub(rf"\b{re.escape(env_var(field, self.prefix))}\b", names[field], text)
        return text


class SettingsError(Exception):
    """The settings are invalid; `str()` is one line naming every wrong variable and what it must be."""

    def __init__(self, problems: list[SettingsProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__(self.render())

    def render(self, names: Mapping[str, str] | None = None) -> str:
        return "; ".join(problem.render(names or {}) for problem in self.problems)


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> OperatorSettings:
    """The settings from the environment, with `overrides` (e.g. command-line flags) taking precedence.

    `environ` is only checked for unknown `BUILDFARM_*` variables (default: os.environ); the values are
    read from os.environ by pydantic-settings.
    """
    return validated(OperatorSettings, environ, **overrides)


AnySettings = TypeVar("AnySettings", bound=BaseSettings)


def validated(
    model: type[AnySettings], environ: Mapping[str, str] | None = None, **overrides: Any
) -> AnySettings:
    """The settings of any command (operator, agent) from its prefix's variables and `overrides`, or a
    SettingsError that names each problem the same way for all of them."""
    problems = [
        SettingsProblem((), unknown_setting(name, model), _prefix(model))
        for name in unknown_variables(environ, model)
    ]
    try:
        settings = model(**overrides)
    except ValidationError as error:
        # `from None`: the pydantic error echoes inputs, which may include a secret.
        raise SettingsError([*problems, *_problems(error, model)]) from None
    if problems:
        raise SettingsError(problems)
    return settings


def _prefix(model: type[BaseSettings]) -> str:
    return str(model.model_config.get("env_prefix") or "")


def setting_variables(model: type[BaseSettings] = OperatorSettings) -> list[str]:
    """Every environment variable that is a setting, e.g. `BUILDFARM_REQUEST_TIMEOUT`."""
    return [env_var(field, _prefix(model)) for field in model.model_fields]


def is_foreign(name: str) -> bool:
    """Whether `name` belongs to another buildfarm program (FOREIGN_VARIABLES), in any letter case."""
    upper = name.upper()
    return any(
        upper.startswith(pattern[:-1]) if pattern.endswith("*") else upper == pattern
        for pattern in FOREIGN_VARIABLES
    )


def unknown_variables(
    environ: Mapping[str, str] | None = None, model: type[BaseSettings] = OperatorSettings
) -> list[str]:
    """The variables under the model's prefix set (not empty) in `environ` that are neither its settings
    nor foreign (only the operator's prefix, `BUILDFARM_`, is shared with other programs).

    Names are compared ignoring case, as the settings are read.
    """
    prefix = _prefix(model)
    known = set(setting_variables(model))
    env = os.environ if environ is None else environ
    return sorted(
        name
        for name, value in env.items()
        if name.upper().startswith(prefix)
        and value != ""  # empty means unset, as for the settings themselves
        and name.upper() not in known
        and not (prefix == ENV_PREFIX and is_foreign(name))
    )


def unknown_setting(variable: str, model: type[BaseSettings] = OperatorSettings) -> str:
    """One line saying `variable` (as the user wrote it) is no setting, and which one it may be meant as."""
    # Compared without the common prefix, which would make every name look alike.
    prefix = _prefix(model)
    suffixes = {name.removeprefix(prefix): name for name in setting_variables(model)}
    close = difflib.get_close_matches(
        variable.upper().removeprefix(prefix), suffixes, n=1, cutoff=_SUGGEST_CUTOFF
    )
    hint = (
        f"did you mean {suffixes[close[0]]}?"
        if close
        else f"unset it (the settings are {', '.join(setting_variables(model))})"
    )
    return f"{variable} is not a setting of {getattr(model, 'WHO', 'this command')}; {hint}"


class _ConflictError(ValueError):
    """Two or more settings disagree; the message already names them."""

    def __init__(self, message: str, fields: tuple[str, ...]) -> None:
        super().__init__(message)
        self.fields = fields


def conflict(message: str, *fields: str) -> _ConflictError:
    """Raise it from a model validator when settings disagree; `message` names them by variable."""
    return _ConflictError(message, fields)


def _problems(error: ValidationError, model: type[BaseSettings]) -> list[SettingsProblem]:
    prefix = _prefix(model)
    problems = []
    for detail in error.errors(include_url=False):
        if detail["type"] == "default_factory_not_called":
            continue  # A consequence of another field's error, which is reported instead.
        cause = detail.get("ctx", {}).get("error")
        if isinstance(cause, _ConflictError):
            problems.append(SettingsProblem(cause.fields, str(cause), prefix))
            continue
        field = str(detail["loc"][0]) if detail["loc"] else ""
        if not field:
            problems.append(SettingsProblem((), detail["msg"], prefix))
            continue
        if detail["type"] == "extra_forbidden":
            problems.append(SettingsProblem((), unknown_setting(env_var(field, prefix), model), prefix))
            continue
        message = f"{env_var(field, prefix)}: {_describe(model, field, detail)}"
        problems.append(SettingsProblem((field,), message, prefix))
    return problems


def _describe(model: type[BaseSettings], field: str, detail: ErrorDetails) -> str:
    """What the value must be, and the value given unless the field holds a secret."""
    info = model.model_fields.get(field)
    kind = detail["type"]
    ctx = detail.get("ctx", {})
    secret = info is not None and _holds_secret(info.annotation)
    got = "" if secret else f" (got {_show(detail['input'])})"
    unit = ""
    if info is not None and isinstance(info.json_schema_extra, dict):
        unit = f" {info.json_schema_extra.get(_UNIT, '')}".rstrip()

    message: str
    if kind == "missing":
        return "is required"
    if kind in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"} and info is not None:
        message = _bounds_message(info.metadata, unit) or detail["msg"]
    elif kind in {"float_parsing", "float_type", "finite_number"}:
        message = f"must be a number{' of ' + unit.strip() if unit else ''}"
    elif kind in {"int_parsing", "int_type", "int_from_float"}:
        message = f"must be a whole number{' of ' + unit.strip() if unit else ''}"
    elif kind == "enum" and "expected" in ctx:
        message = f"must be {ctx['expected']}"
    elif kind == "string_type":
        message = "must be a string"
    elif kind in {"bool_parsing", "bool_type"}:
        message = "must be true or false"
    elif kind == "too_long" and "max_length" in ctx:
        message = f"must have at most {ctx['max_length']} items"
    elif kind in {"string_too_short", "string_too_long"}:
        message = detail["msg"].replace("String should have", "must have")
    elif kind in SELF_EXPLAINING_ERRORS:
        return detail["msg"]  # Already shows what it needs to, and never a secret.
    else:
        message = detail["msg"]
    return f"{message}{got}"


def _bounds_message(metadata: list[Any], unit: str) -> str | None:
    low = next((m for m in metadata if isinstance(m, annotated_types.Ge | annotated_types.Gt)), None)
    high = next((m for m in metadata if isinstance(m, annotated_types.Le | annotated_types.Lt)), None)
    if isinstance(low, annotated_types.Ge) and isinstance(high, annotated_types.Le):
        return f"must be between {_show(low.ge)} and {_show(high.le)}{unit}"
    if isinstance(low, annotated_types.Ge):
        return f"must be at least {_show(low.ge)}{unit}"
    if isinstance(low, annotated_types.Gt):
        return f"must be more than {_show(low.gt)}{unit}"
    if isinstance(high, annotated_types.Le):
        return f"must be at most {_show(high.le)}{unit}"
    if isinstance(high, annotated_types.Lt):
        return f"must be less than {_show(high.lt)}{unit}"
    return None


def _show(value: Any) -> str:
    """A value as the user typed it: `-1`, `abc`; quoted only if blank or padded; cut short if long."""
    if isinstance(value, float):
        return f"{value:g}"
    text = str(value)
    if isinstance(value, str) and (not value or value.strip() != value):
        text = repr(value)
    return text if len(text) <= _SHOWN_MAX else f"{text[: _SHOWN_MAX - 3]}..."


def _holds_secret(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, SecretStr | SecretBytes):
        return True
    return any(_holds_secret(arg) for arg in get_args(annotation))
