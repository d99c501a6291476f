"""Every buildfarm metric, created through these helpers so the catalogue (DEFINED) lists its name, type,
labels and component: the exporter registers a component's metrics from it, and a unit test holds it to
the table in docs/metrics.md."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.registry import Collector

# No *_created series: a timestamp per series that dashboards and alerts never use.
disable_created_metrics()  # type: ignore[no-untyped-call]

Component = Literal["operator", "agent", "artifacts", "kube"]
# kube: the Kubernetes API client's metrics, exposed by every process that uses the client.
COMPONENTS: Final[tuple[Component, ...]] = ("operator", "agent", "artifacts", "kube")


@dataclass(frozen=True)
class Definition:
    name: str  # as exposed; a counter's ends in _total
    type: Literal["counter", "gauge", "histogram"]
    labels: tuple[str, ...]
    help: str
    component: Component


DEFINED: list[Definition] = []
# Metrics recorded directly; gauges computed at scrape time are collectors of their own (COLLECTORS).
OBJECTS: dict[Component, list[Collector]] = {component: [] for component in COMPONENTS}


def counter(component: Component, name: str, help: str, labels: Sequence[str] = ()) -> Counter:
    if not name.endswith("_total"):
        raise ValueError(f"a counter's name ends in _total: {name}")
    metric = Counter(name, help, list(labels), registry=None)
    _define(Definition(name, "counter", tuple(labels), help, component), metric)
    return metric


def gauge(component: Component, name: str, help: str, labels: Sequence[str] = ()) -> Gauge:
    metric = Gauge(name, help, list(labels), registry=None)
    _define(Definition(name, "gauge", tuple(labels), help, component), metric)
    return metric


def histogram(
    component: Component, name: str, help: str, buckets: Sequence[float], labels: Sequence[str] = ()
) -> Histogram:
    metric = Histogram(name, help, list(labels), buckets=list(buckets), registry=None)
    _define(Definition(name, "histogram", tuple(labels), help, component), metric)
    return metric


def computed(component: Component, name: str, help: str, labels: Sequence[str]) -> Definition:
    """A gauge a collector computes at scrape time (from a cache, not from events)."""
    definition = Definition(name, "gauge", tuple(labels), help, component)
    _define(definition, None)
    return definition


def register_collector(component: Component, collector: Collector) -> None:
    OBJECTS[component].append(collector)


def _define(definition: Definition, metric: Collector | None) -> None:
    if any(d.name == definition.name for d in DEFINED):
        raise ValueError(f"metric {definition.name} is defined twice")
    DEFINED.append(definition)
    if metric is not None:
        OBJECTS[definition.component].append(metric)


# Buckets, in seconds. API calls and scheduler cycles take milliseconds to seconds; builds take minutes.
FAST_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
QUEUE_WAIT_BUCKETS: Final = (1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400)
BUILD_DURATION_BUCKETS: Final = (30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 10800, 14400)
TRANSFER_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
