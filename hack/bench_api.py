"""Benchmark of the operator against a real API server: how fast, how many writes, how much memory.

Starts a local control plane (etcd + kube-apiserver, as the tests do), runs `buildfarm operator` as a
subprocess, and prints in one run:

  RAW      sequential conditional status writes/s from one client thread: the ceiling
  BACKLOG  W workers x B builds (capacity C) created with no operator running; operator start -> all Assigned
  LATENCY  idle workers, builds created one at a time at a steady rate: create -> Assigned, seen by a watch
  WRITES   API writes per build until Assigned, by resource and verb, from the API server's own
           apiserver_request_total (scraped before and after each phase), and 409s per build
  MEMORY   operator RSS idle, and after a restart with M builds and the W workers

Timing lives here, not in tests. Every size is a flag or an environment variable; the defaults are the
issue's (1,000 workers x 5,000 builds, 10,000 builds for MEMORY); `make bench-api QUICK=1` is a smaller run.

  .venv/bin/python hack/bench_api.py [--workers 1000] [--builds 5000] [--capacity 5]
      [--latency-builds 200] [--latency-rate 5] [--latency-workers 50] [--memory-builds 10000]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import queue
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "operator")]

from buildfarm import constants as c  # noqa: E402
from buildfarm.dev.controlplane import ControlPlane, new_api_client  # noqa: E402

TIMEOUT = 30
FARM_NAMESPACE = "buildfarm-system"
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "APPLY"})
# Writes in a measured phase that are not the operator's work for the builds: the benchmark creating builds,
# the API server renewing its own Lease, and the operator's one-time permission check at start.
NOT_PER_BUILD = frozenset({("builds", "POST"), ("leases", "PUT"), ("selfsubjectaccessreviews", "POST")})
SETUP_THREADS = 8
METRIC = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="([^"]*)"')


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def main() -> None:
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)  # setup threads share one pool
    quick = os.environ.get("QUICK") == "1"
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=env_int("BENCH_WORKERS", 100 if quick else 1000))
    parser.add_argument("--builds", type=int, default=env_int("BENCH_BUILDS", 500 if quick else 5000))
    parser.add_argument("--capacity", type=int, default=env_int("BENCH_CAPACITY", 5))
    parser.add_argument("--raw-writes", type=int, default=env_int("BENCH_RAW_WRITES", 300))
    parser.add_argument(
        "--latency-builds", type=int, default=env_int("BENCH_LATENCY_BUILDS", 100 if quick else 200)
    )
    parser.add_argument("--latency-rate", type=float, default=float(os.environ.get("BENCH_LATENCY_RATE", 5)))
    parser.add_argument("--latency-workers", type=int, default=env_int("BENCH_LATENCY_WORKERS", 50))
    parser.add_argument(
        "--memory-builds", type=int, default=env_int("BENCH_MEMORY_BUILDS", 1000 if quick else 10000)
    )
    parser.add_argument(
        "--skip", default=os.environ.get("BENCH_SKIP", ""), help="phases to skip, e.g. memory"
    )
    parser.add_argument(
        "--profile-memory",
        action="store_true",
        default=os.environ.get("BENCH_PROFILE_MEMORY") == "1",
        help="after MEMORY, restart the operator under tracemalloc and print where its memory went",
    )
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("BENCH_TIMEOUT", 1800)))
    args = parser.parse_args()
    skip = {s.strip().lower() for s in args.skip.split(",") if s.strip()}

    print(f"machine: {machine()}")
    print(
        f"sizes: backlog {args.workers} workers x {args.builds} builds (capacity {args.capacity}); "
        f"latency {args.latency_builds} builds at {args.latency_rate:g}/s on {args.latency_workers} workers; "
        f"memory {args.memory_builds} builds + {args.workers} workers",
        flush=True,
    )
    with (
        tempfile.TemporaryDirectory(prefix="bench-api-") as tmp,
        ControlPlane(Path(tmp) / "cp", crd_dir=REPO / "crds") as cp,
        new_api_client(cp.kubeconfig) as api_client,
    ):
        bench = Bench(api_client, cp.kubeconfig, Path(tmp))
        bench.setup()
        raw = bench.raw(args.raw_writes)
        print(f"RAW      {raw:.1f} conditional status writes/s (one client thread, sequential)", flush=True)
        idle = bench.idle_rss(args.timeout)
        if "latency" not in skip:
            bench.latency(args.latency_workers, args.latency_builds, args.latency_rate, args.timeout)
        if "backlog" not in skip:
            bench.backlog(args.workers, args.builds, args.capacity, raw, args.timeout)
        if "memory" not in skip:
            bench.memory(
                idle, args.workers, args.capacity, args.memory_builds, args.timeout, args.profile_memory
            )


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ram = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} CPUs ({model}), {ram:.0f} GiB RAM, Python {sys.version.split()[0]}"


@dataclass
class Counts:
    """apiserver_request_total by (verb, resource/subresource, code)."""

    values: Counter[tuple[str, str, str]]

    def __sub__(self, other: Counts) -> Counts:
        diff: Counter[tuple[str, str, str]] = Counter()
        for key, value in self.values.items():
            if value - other.values.get(key, 0) > 0:
                diff[key] = value - other.values.get(key, 0)
        return Counts(diff)

    def writes(self) -> Counter[tuple[str, str]]:
        out: Counter[tuple[str, str]] = Counter()
        for (verb, resource, _code), value in self.values.items():
            if verb in WRITE_VERBS and (resource, verb) not in NOT_PER_BUILD:
                out[(resource, verb)] += value
        return out

    def conflicts(self) -> int:
        return sum(v for (verb, _, code), v in self.values.items() if code == "409" and verb in WRITE_VERBS)


class Bench:
    def __init__(self, api_client: k8s.ApiClient, kubeconfig: Path, tmp: Path) -> None:
        self.api_client = api_client
        self.api = k8s.CustomObjectsApi(api_client)
        self.core = k8s.CoreV1Api(api_client)
        self.coordination = k8s.CoordinationV1Api(api_client)
        self.kubeconfig = kubeconfig
        self.tmp = tmp
        self.run_id = 0

    # Setup

    def setup(self) -> None:
        self.namespace(FARM_NAMESPACE)

    def namespace(self, name: str) -> str:
        with contextlib.suppress(ApiException):
            self.core.create_namespace(
                k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)), _request_timeout=TIMEOUT
            )
        return name

    def workers(self, prefix: str, count: int, capacity: int) -> list[str]:
        """Ready workers, as their agents and the operator would leave them: a fresh Lease and Ready=True."""
        names = [f"{prefix}-{i:05d}" for i in range(count)]
        parallel(self._worker, [(n, capacity) for n in names])
        return names

    def _worker(self, name: str, capacity: int) -> None:
        body = {
            "apiVersion": c.API_VERSION,
            "kind": c.WORKER_KIND,
            "metadata": {"name": name},
            "spec": {"platforms": ["ios", "android"], "capacity": capacity},
        }
        self.api.create_cluster_custom_object(
            c.GROUP, c.VERSION, c.WORKER_PLURAL, body, _request_timeout=TIMEOUT
        )
        now = datetime.now(UTC)
        lease = k8s.V1Lease(
            metadata=k8s.V1ObjectMeta(name=name, namespace=FARM_NAMESPACE),
            spec=k8s.V1LeaseSpec(
                holder_identity=name,
                lease_duration_seconds=3600,
                renew_time=now.replace(microsecond=now.microsecond or 1),
            ),
        )
        self.coordination.create_namespaced_lease(FARM_NAMESPACE, lease, _request_timeout=TIMEOUT)
        condition = {
            "type": "Ready",
            "status": "True",
            "reason": "LeaseRenewed",
            "message": "",
            "lastTransitionTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        self.api.patch_cluster_custom_object_status(
            c.GROUP,
            c.VERSION,
            c.WORKER_PLURAL,
            name,
            {"status": {"conditions": [condition]}},
            _request_timeout=TIMEOUT,
        )

    def delete_workers(self, names: list[str]) -> None:
        def delete(name: str) -> None:
            with contextlib.suppress(ApiException):
                self.api.delete_cluster_custom_object(
                    c.GROUP, c.VERSION, c.WORKER_PLURAL, name, _request_timeout=TIMEOUT
                )
            with contextlib.suppress(ApiException):
                self.coordination.delete_namespaced_lease(name, FARM_NAMESPACE, _request_timeout=TIMEOUT)

        parallel(delete, [(n,) for n in names])

    def create_build(self, namespace: str, name: str, platform: str = "ios") -> None:
        body = {
            "apiVersion": c.API_VERSION,
            "kind": c.BUILD_KIND,
            "metadata": {"name": name},
            "spec": {"platform": platform, "source": {"git": {"url": "https://example.com/app.git"}}},
        }
        self.api.create_namespaced_custom_object(
            c.GROUP, c.VERSION, namespace, c.BUILD_PLURAL, body, _request_timeout=TIMEOUT
        )

    def builds(self, namespace: str, count: int, platform: str = "ios") -> None:
        parallel(self.create_build, [(namespace, f"b-{i:05d}", platform) for i in range(count)])

    def phases(self, namespace: str) -> Counter[str]:
        phases: Counter[str] = Counter()
        token = None
        while True:
            kwargs: dict[str, Any] = {"limit": 1000, "_request_timeout": TIMEOUT}
            if token:
                kwargs["_continue"] = token
            body = self.api.list_namespaced_custom_object(
                c.GROUP, c.VERSION, namespace, c.BUILD_PLURAL, **kwargs
            )
            for item in body["items"]:
                phases[(item.get("status") or {}).get("phase") or "(none)"] += 1
            token = body["metadata"].get("continue")
            if not token:
                return phases

    def drop_namespace_builds(self, namespace: str) -> None:
        with contextlib.suppress(ApiException):
            self.api.delete_collection_namespaced_custom_object(
                c.GROUP, c.VERSION, namespace, c.BUILD_PLURAL, _request_timeout=TIMEOUT * 10
            )

    # The API server's own counters

    def counts(self) -> Counts:
        api = self.api_client
        request = api.param_serialize("GET", "/metrics", auth_settings=["BearerToken"])
        response = api.call_api(*request, _request_timeout=TIMEOUT)
        text = response.read().decode()
        values: Counter[tuple[str, str, str]] = Counter()
        for line in text.splitlines():
            match = METRIC.match(line)
            if not match:
                continue
            labels = dict(LABEL.findall(match["labels"]))
            resource = labels.get("resource", "")
            if labels.get("subresource"):
                resource += "/" + labels["subresource"]
            values[(labels.get("verb", ""), resource, labels.get("code", ""))] += int(float(match["value"]))
        return Counts(values)

    def settled_counts(self, quiet: float = 3.0, limit: float = 60.0) -> Counts:
        """The counters once the operator's writes have stopped (the Events trail the bindings)."""
        deadline = time.monotonic() + limit
        last = self.counts()
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = self.counts()
            if sum((now - last).writes().values()):
                last, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since >= quiet:
                break
        return last

    # The operator

    @contextlib.contextmanager
    def operator(self, label: str, traced: Path | None = None) -> Iterator[tuple[psutil.Process, Path]]:
        """`traced`: run it under tracemalloc (hack/traced_operator.py), which writes its report there."""
        self.run_id += 1
        log_path = self.tmp / f"operator-{self.run_id}-{label}.log"
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        exe = Path(sys.executable).parent / "buildfarm"
        command = [str(exe)] if exe.exists() else [sys.executable, "-m", "buildfarm.cli.main"]
        if traced is not None:
            command = [sys.executable, str(REPO / "hack" / "traced_operator.py")]
            env["BENCH_TRACE_OUT"] = str(traced)
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [*command, "operator", "--standalone"], stdout=log, stderr=subprocess.STDOUT, env=env
            )
            try:
                yield psutil.Process(proc.pid), log_path
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                if proc.returncode not in (0, -15) and traced is None:  # traced, it stops too slowly
                    print(f"  (operator exited with {proc.returncode}; log {log_path})")

    # Phases

    def raw(self, writes: int) -> float:
        """One client thread, each write a status patch conditional on the resourceVersion it got back."""
        (name,) = self.workers("raw", 1, 1)
        worker = self.api.get_cluster_custom_object(
            c.GROUP, c.VERSION, c.WORKER_PLURAL, name, _request_timeout=TIMEOUT
        )
        rv = worker["metadata"]["resourceVersion"]
        start = time.monotonic()
        for i in range(writes):
            body = {"metadata": {"resourceVersion": rv}, "status": {"buildsSucceeded": i}}
            answer = self.api.patch_cluster_custom_object_status(
                c.GROUP, c.VERSION, c.WORKER_PLURAL, name, body, _request_timeout=TIMEOUT
            )
            rv = answer["metadata"]["resourceVersion"]
        elapsed = time.monotonic() - start
        self.delete_workers([name])
        return writes / elapsed

    def latency(self, worker_count: int, builds: int, rate: float, timeout: float) -> None:
        namespace = self.namespace(f"latency-{uuid.uuid4().hex[:6]}")
        workers = self.workers("lat", worker_count, 5)
        with self.operator("latency") as (proc, log), Watcher(self.api, namespace) as watcher:
            wait_until("the operator to list", timeout, lambda: operator_ready(log, proc))
            # A first build that waits for nothing: the operator's cache is synced once it is assigned.
            self.create_build(namespace, "warmup")
            watcher.wait_assigned(["warmup"], timeout)
            before = self.counts()
            names = [f"l-{i:05d}" for i in range(builds)]
            created: dict[str, float] = {}
            interval = 1.0 / rate
            start = time.monotonic()
            for i, name in enumerate(names):
                pause = start + i * interval - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                created[name] = time.monotonic()
                self.create_build(namespace, name)
            seen = watcher.wait_assigned(names, timeout)
            after = self.settled_counts()
            latencies = sorted((seen[n] - created[n]) * 1000 for n in names)
        print(
            f"LATENCY  {builds} builds at {rate:g}/s on {worker_count} idle workers: create->Assigned "
            f"p50 {pct(latencies, 50):.0f} ms, p90 {pct(latencies, 90):.0f} ms, "
            f"p99 {pct(latencies, 99):.0f} ms, "
            f"max {latencies[-1]:.0f} ms"
        )
        report_writes("idle", after - before, builds)
        self.drop_namespace_builds(namespace)
        self.delete_workers(workers)

    def backlog(self, worker_count: int, builds: int, capacity: int, raw: float, timeout: float) -> None:
        namespace = self.namespace(f"backlog-{uuid.uuid4().hex[:6]}")
        workers = self.workers("w", worker_count, capacity)
        self.builds(namespace, builds)
        expect = min(builds, worker_count * capacity)
        before = self.counts()
        with self.operator("backlog") as (proc, _), Watcher(self.api, namespace) as watcher:
            start = time.monotonic()
            peak = 0
            while watcher.assigned_count() < expect:
                peak = max(peak, proc.memory_info().rss)
                if time.monotonic() - start > timeout:
                    print(
                        f"BACKLOG  gave up after {timeout:.0f}s: {watcher.assigned_count()}/{expect} Assigned"
                    )
                    return
                time.sleep(0.2)
            elapsed = time.monotonic() - start
            first = watcher.first_assigned_at - start if watcher.first_assigned_at else float("nan")
            after = self.settled_counts()
            rss = proc.memory_info().rss
            peak = max(peak, rss)
        rate = expect / elapsed
        steady = expect / (elapsed - first) if elapsed > first else float("nan")
        print(
            f"BACKLOG  {worker_count} workers x {builds} builds (capacity {capacity}): {expect} Assigned in "
            f"{elapsed:.1f}s from operator start (first after {first:.1f}s): "
            f"{rate:.1f}/s = {rate / raw:.2f}x RAW; "
            f"after the first: {steady:.1f}/s = {steady / raw:.2f}x RAW"
        )
        report_writes("backlog", after - before, expect)
        print(
            f"MEMORY   operator RSS during the backlog: peak {peak / 2**20:.0f} MiB, "
            f"at the end {rss / 2**20:.0f} MiB"
        )
        self.backlog_state = (workers, builds)

    def idle_rss(self, timeout: float) -> int:
        """RSS of a fresh operator on an empty cluster, a few seconds after its initial LIST."""
        with self.operator("idle") as (proc, log):
            wait_until("the operator to list", timeout, lambda: operator_ready(log, proc))
            time.sleep(3)
            return int(proc.memory_info().rss)

    def memory(
        self,
        idle: int,
        worker_count: int,
        capacity: int,
        total_builds: int,
        timeout: float,
        profile: bool = False,
    ) -> None:
        """RSS of an operator restarted with `total_builds` builds and the workers. Builds beyond the
        backlog's are for labels no worker has, so they wait (NoMatchingWorker) and the workers' load stays
        as the backlog left it."""
        existing = getattr(self, "backlog_state", None)
        workers, have = existing if existing is not None else (self.workers("w", worker_count, capacity), 0)
        extra = self.namespace(f"memory-{uuid.uuid4().hex[:6]}")
        missing = max(0, total_builds - have)
        self.builds_unservable(extra, missing)
        with self.operator("memory") as (proc, log):
            start = time.monotonic()
            wait_until("the operator to list", timeout, lambda: operator_ready(log, proc))
            listed = time.monotonic() - start
            wait_until("every build to have a phase", timeout, lambda: not self.phases(extra).get("(none)"))
            settle = time.monotonic() - start
            time.sleep(3)
            full = proc.memory_info().rss
        objects = have + missing + len(workers)
        print(
            f"MEMORY   operator RSS {idle / 2**20:.0f} MiB idle (empty cluster); {full / 2**20:.0f} MiB "
            f"after a restart with {have + missing} builds and {len(workers)} workers: "
            f"+{(full - idle) / 2**20:.0f} MiB, "
            f"{(full - idle) / objects / 1024:.1f} KiB per object (listed after {listed:.0f}s; "
            f"all {missing} new builds had a phase after {settle:.0f}s)",
            flush=True,
        )
        if profile:
            self.profile_memory(timeout)

    def profile_memory(self, timeout: float) -> None:
        """Restart the operator under tracemalloc on the same objects and print where its memory went."""
        report = self.tmp / "memory-trace.txt"
        with self.operator("traced", traced=report) as (proc, log):
            wait_until("the traced operator to list", timeout, lambda: operator_ready(log, proc))
            time.sleep(10)  # the initial LIST's events are handled and the scheduler's cycle is done
            proc.send_signal(signal.SIGUSR1)
            wait_until("the memory trace", timeout, report.exists)
        print("MEMORY   the traced operator's live memory, by the innermost buildfarm or kopf frame:")
        for line in report.read_text().splitlines():
            print(f"           {line}")

    def builds_unservable(self, namespace: str, count: int) -> None:
        """Builds no worker can take: labels no worker has, so they wait with NoMatchingWorker."""

        def create(name: str) -> None:
            body = {
                "apiVersion": c.API_VERSION,
                "kind": c.BUILD_KIND,
                "metadata": {"name": name},
                "spec": {
                    "platform": "ios",
                    "workerSelector": {"matchLabels": {"bench.buildfarm.dev/none": "x"}},
                    "source": {"git": {"url": "https://example.com/app.git"}},
                },
            }
            self.api.create_namespaced_custom_object(
                c.GROUP, c.VERSION, namespace, c.BUILD_PLURAL, body, _request_timeout=TIMEOUT
            )

        parallel(create, [(f"m-{i:05d}",) for i in range(count)])


class Watcher:
    """Watches one namespace's builds and records when each was first seen Assigned (monotonic time)."""

    def __init__(self, api: k8s.CustomObjectsApi, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.assigned: dict[str, float] = {}
        self.first_assigned_at: float | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._ready: queue.Queue[None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        self._ready.get(timeout=TIMEOUT)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()

    def _run(self) -> None:
        resource_version = ""
        signalled = False
        while not self._stop.is_set():
            watch = k8s_watch.Watch()
            try:
                if not resource_version:
                    listed = self.api.list_namespaced_custom_object(
                        c.GROUP, c.VERSION, self.namespace, c.BUILD_PLURAL, _request_timeout=TIMEOUT
                    )
                    resource_version = listed["metadata"]["resourceVersion"]
                    for item in listed["items"]:
                        self._see(item)
                    if not signalled:
                        signalled = True
                        self._ready.put(None)
                for event in watch.stream(
                    self.api.list_namespaced_custom_object,
                    c.GROUP,
                    c.VERSION,
                    self.namespace,
                    c.BUILD_PLURAL,
                    resource_version=resource_version,
                    timeout_seconds=30,
                    _request_timeout=60,
                ):
                    obj = event["object"]
                    resource_version = obj["metadata"]["resourceVersion"]
                    self._see(obj)
                    if self._stop.is_set():
                        return
            except ApiException as exc:
                if exc.status == 410:
                    resource_version = ""
            except Exception:  # a dropped watch: start again
                time.sleep(0.1)

    def _see(self, obj: dict[str, Any]) -> None:
        now = time.monotonic()
        if (obj.get("status") or {}).get("phase") == "Assigned":
            with self._changed:
                name = obj["metadata"]["name"]
                if name not in self.assigned:
                    self.assigned[name] = now
                    self.first_assigned_at = self.first_assigned_at or now
                    self._changed.notify_all()

    def assigned_count(self) -> int:
        with self._lock:
            return len(self.assigned)

    def wait_assigned(self, names: list[str], timeout: float) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not all(n in self.assigned for n in names):
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = [n for n in names if n not in self.assigned]
                    raise SystemExit(
                        f"timed out waiting for {len(missing)} build(s) to be Assigned, e.g. {missing[:3]}"
                    )
                self._changed.wait(min(left, 1.0))
            return dict(self.assigned)


def operator_ready(log_path: Path, proc: psutil.Process) -> bool:
    """The operator has merged its initial LIST and plans from now on (its own log line says so)."""
    text = log_path.read_text(errors="replace")
    if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
        last = text.strip().splitlines()[-1:] or ["(no output)"]
        raise SystemExit(f"the operator exited before it listed: {last[0]}")
    return "scheduling starts" in text


def report_writes(case: str, counts: Counts, builds: int) -> None:
    writes = counts.writes()
    total = sum(writes.values())
    split = ", ".join(f"{resource} {verb} {n / builds:.2f}" for (resource, verb), n in sorted(writes.items()))
    print(
        f"WRITES   {case}: {total / builds:.2f} per build ({split}); "
        f"409s {counts.conflicts() / builds:.2f} per build",
        flush=True,
    )


def pct(values: list[float], p: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, int(p) - 1))]


def wait_until(what: str, timeout: float, probe: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def parallel(call: Callable[..., None], items: list[tuple[Any, ...]]) -> None:
    with ThreadPoolExecutor(SETUP_THREADS) as pool:
        for future in [pool.submit(call, *item) for item in items]:
            future.result()


if __name__ == "__main__":
    main()
