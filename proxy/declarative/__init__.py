"""Declarative configuration: the gateway's products, plans, upstreams, routes and partners as
one YAML file (docs/config.md, JSON Schema in proxy/config.schema.json), never secrets.

- ``export_yaml()`` writes the database's configuration. It is deterministic (objects sorted by
  name, fields in schema order, defaults left out), so export → apply on an empty database →
  export gives the same file.
- ``apply(text, prune=, dry_run=)`` makes the database match the file in ONE transaction and
  returns the changes (create / update / delete per object). Objects in the file are created or
  updated; objects missing from it are deleted only with ``prune``, and only for the sections
  the file has (a file without ``partners:`` leaves partners alone). Every object goes through
  its model's ``full_clean()``, so the rules of the Django admin and the admin API hold here
  too. Any error refuses the whole file, with line numbers, and changes nothing. Applying the
  same file twice changes nothing the second time. A dry run is the same apply, rolled back:
  what it reports is exactly what the apply would do.

Changes reach the gateways through the usual config-version bump once the transaction commits,
and each one is recorded in the audit log with source "config".
"""

from __future__ import annotations

from proxy.declarative.apply import Change, Progress, Result, apply, diff, quiet
from proxy.declarative.format import ConfigError, ConfigInvalid, parse, schema
from proxy.declarative.kinds import export_data, export_yaml

__all__ = [
    "Change",
    "ConfigError",
    "ConfigInvalid",
    "Progress",
    "Result",
    "apply",
    "diff",
    "export_data",
    "export_yaml",
    "parse",
    "quiet",
    "schema",
]
