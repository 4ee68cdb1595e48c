"""`make bench`: load scenarios, route-matching and Redis-command measurements (see docs/benchmarks.md)."""
