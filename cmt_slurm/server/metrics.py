"""Prometheus metrics at ``/metrics``.

Two kinds:

* **event counters and histograms** (boot-script requests by mode, bytes served, reports, stage durations,
  finished deployments by outcome) are counted where they happen. Under gunicorn each worker is its own
  process, so when ``PROMETHEUS_MULTIPROC_DIR`` is set (``cmt server`` sets it to a fresh directory under
  the data dir) prometheus-client writes them to per-process files and a scrape sums every worker's.
  Without it (tests, the dev server) they live in this app's own registry.
* **gauges of current state** (nodes by state, deployments by stage) are read from the database at scrape
  time, so every worker answers the same figures.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from .state import server_state

#: Stage durations span seconds (identify) to tens of minutes (a large transfer).
STAGE_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class StateCollector(Collector):
    """Current node states and deployment stages, counted by the provisioner at scrape time."""

    def __init__(
        self,
        node_counts: Callable[[], Mapping[str, int]],
        deployment_counts: Callable[[], Mapping[str, int]],
    ) -> None:
        self._nodes = node_counts
        self._deployments = deployment_counts

    def collect(self) -> Iterator[Metric]:
        nodes = GaugeMetricFamily("cmt_nodes", "Nodes by provisioning state", labels=["state"])
        for state, n in sorted(self._nodes().items()):
            nodes.add_metric([state], n)
        yield nodes
        deps = GaugeMetricFamily("cmt_deployments_active", "Active deployments by stage", labels=["stage"])
        for stage, n in sorted(self._deployments().items()):
            deps.add_metric([stage], n)
        yield deps


class ServerMetrics:
    def __init__(self, state_collector: Collector | None = None) -> None:
        self.registry = CollectorRegistry()
        # In multiprocess mode the values go to files and a fresh registry reads them at scrape time;
        # registering the objects as well would count this worker twice.
        reg = None if multiprocess_dir() else self.registry
        self.boot_requests = Counter(
            "cmt_boot_script_requests", "iPXE boot scripts served, by mode", ["mode"], registry=reg
        )
        self.bytes_served = Counter(
            "cmt_bytes_served",
            "Body bytes handed to the kernel for sending (images, live env)",
            ["kind"],
            registry=reg,
        )
        self.reports = Counter(
            "cmt_deployment_reports", "Progress reports accepted, by stage", ["stage"], registry=reg
        )
        self.finished = Counter(
            "cmt_deployments_finished", "Deployments that reached an outcome here", ["outcome"], registry=reg
        )
        self.stage_seconds = Histogram(
            "cmt_deployment_stage_seconds",
            "Time a deployment spent in a stage, observed when it left it",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=reg,
        )
        self._state_collector = state_collector
        if state_collector is not None and reg is not None:
            self.registry.register(state_collector)

    def render(self) -> bytes:
        if multiprocess_dir():
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            if self._state_collector is not None:
                registry.register(self._state_collector)
            return generate_latest(registry)
        return generate_latest(self.registry)


bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    return Response(server_state().metrics.render(), content_type=CONTENT_TYPE_LATEST)
