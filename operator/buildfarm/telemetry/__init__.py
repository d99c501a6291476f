"""Metrics and structured logs shared by every buildfarm process (operator, agent, artifact service).

The metrics are module-level objects, so code records with one line wherever something happens
(`operator.ASSIGNMENTS.labels(platform).inc()`); each process exposes only its own component's families,
through one registry and one HTTP endpoint (`exporter.serve`). Names, types and labels are the contract
in docs/metrics.md, and `catalog.DEFINED` is its one source in code.
"""
