"""Shared API vocabulary: the base model, conditions, label selectors and platforms."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from buildfarm.api import formats

# Bounds keep CEL rules within the API server's cost budget and objects well under etcd's size limit.
NAME_MAX = 253
LABEL_VALUE_MAX = 63
LABEL_KEY_MAX = 317  # a DNS-subdomain prefix (253), '/', and a name (63)
SELECTOR_MAX_ITEMS = 20


class ApiModel(BaseModel):
    """Base of every API model: camelCase on the wire, snake_case in Python, unknown fields kept."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        use_enum_values=False,
    )

    def to_api(self) -> dict[str, Any]:
        """The JSON body the API server expects (camelCase keys, unset optionals left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Platform(StrEnum):
    IOS = "ios"
    ANDROID = "android"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """The standard Kubernetes condition shape (metav1.Condition)."""

    type: str = Field(
        description="Type of condition in CamelCase, e.g. Ready or Scheduled.",
        max_length=316,
        pattern=r"^[A-Z][A-Za-z0-9]*$",
    )
    status: ConditionStatus = Field(description="Status of the condition: True, False or Unknown.")
    reason: str = Field(
        description="A CamelCase word that says why the condition is in this status, for machines.",
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
    )
    message: str = Field(
        default="", description="A sentence for humans that says why, and what to do.", max_length=32768
    )
    last_transition_time: datetime = Field(
        description="When the condition last changed from one status to another."
    )
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="The metadata.generation the condition was computed from; stale if lower than it.",
    )


CONDITIONS_FIELD: Any = Field(
    default_factory=list,
    max_length=16,
    description="The latest observations of the object's state, one per condition type.",
    json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
)


LabelValue = Annotated[
    str,
    Field(
        max_length=LABEL_VALUE_MAX,
        json_schema_extra=formats.validations(formats.LABEL_VALUE.rule("a selector value")),
    ),
]

# Each rule names the selector part it checks; the API server prefixes the path of the offending element.
_OPERATOR_VALUES_RULES: Final = (
    {
        "rule": "!(self.operator in ['In', 'NotIn']) || (has(self.values) && size(self.values) > 0)",
        "message": "values must list at least one value when operator is In or NotIn",
        "reason": "FieldValueRequired",
        "fieldPath": ".values",
    },
    {
        "rule": "!(self.operator in ['Exists', 'DoesNotExist']) "
        "|| !has(self.values) || size(self.values) == 0",
        "message": "values must be empty when operator is Exists or DoesNotExist",
        "reason": "FieldValueForbidden",
        "fieldPath": ".values",
    },
)


class LabelSelectorRequirement(ApiModel):
    """One set-based requirement, validated as Kubernetes validates a LabelSelectorRequirement."""

    model_config = ApiModel.model_config | {"json_schema_extra": formats.validations(*_OPERATOR_VALUES_RULES)}

    key: str = Field(
        description="The label key the requirement applies to.",
        max_length=LABEL_KEY_MAX,
        json_schema_extra=formats.validations(formats.LABEL_KEY.rule("key")),
    )
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="How the key relates to the values: In, NotIn, Exists or DoesNotExist."
    )
    values: list[LabelValue] = Field(
        default_factory=list,
        max_length=SELECTOR_MAX_ITEMS,
        description="Label values; non-empty for In and NotIn, empty for Exists and DoesNotExist.",
    )


class LabelSelector(ApiModel):
    """A Kubernetes label selector; an empty selector matches everything."""

    match_labels: dict[str, LabelValue] = Field(
        default_factory=dict,
        description="Labels a Worker must carry with exactly these values.",
        json_schema_extra={
            "maxProperties": SELECTOR_MAX_ITEMS,
            **formats.validations(
                {
                    "rule": f"self.all(k, {formats.LABEL_KEY.cel('k')})",
                    "message": f"every key of matchLabels must be {formats.LABEL_KEY.means}",
                }
            ),
        },
    )
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list,
        max_length=SELECTOR_MAX_ITEMS,
        description="Set-based requirements on a Worker's labels; all must hold.",
    )


class Resource(ApiModel):
    """What every buildfarm object has: type and object metadata (kept as the API server sent it)."""

    api_version: str = Field(default="buildfarm.dev/v1alpha1")
    kind: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace", ""))

    @property
    def uid(self) -> str:
        return str(self.metadata.get("uid", ""))

    @property
    def resource_version(self) -> str:
        return str(self.metadata.get("resourceVersion", ""))

    @property
    def generation(self) -> int:
        return int(self.metadata.get("generation", 0))

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.metadata.get("labels") or {})

    @property
    def created(self) -> str:
        """creationTimestamp as RFC 3339 text, which sorts in time order."""
        return str(self.metadata.get("creationTimestamp", ""))
