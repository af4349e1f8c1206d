"""Ferry monitor: baselines, drift checks, violation reports, Prometheus metrics."""
