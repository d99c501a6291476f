"""Pure domain logic: no I/O, no kopf, no Kubernetes client. Fed snapshots and a clock."""
