"""The configuration file format: YAML checked against proxy/config.schema.json, with the line
number of every key and item kept so that errors can say where they are."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

# The published copy of schema() (editors, CI); tests keep it equal to schema().
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "config.schema.json"
FORMAT_VERSION = 1
MAX_BYTES = 5 * 1024 * 1024
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
HEADER = "# apigw gateway configuration (docs/config.md). Apply with: manage.py gatewayconfig apply FILE\n"


@dataclass(frozen=True, slots=True)
class ConfigError:
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "path": self.path, "message": self.message}


class ConfigInvalid(Exception):
    """The file was refused as a whole; ``errors`` say where and why."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.line or 0, e.path))
        super().__init__("\n".join(str(e) for e in self.errors))


# -- reading ---------------------------------------------------------------------
@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The JSON Schema files are checked against (built from the models; see schemagen.py)."""
    from proxy.declarative.schemagen import build_schema

    return build_schema()


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    """The schema's validator, with its ``$ref``s to ``$defs`` written out in place: resolving a
    reference for each of 10,000 routes was a third of the check's time."""
    defs = schema().get("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if len(node) == 1 and isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in defs:
                return inline(defs[ref[8:]])
            return {k: v if k == "$defs" else inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return jsonschema.Draft202012Validator(inline(schema()))


Path_ = tuple[str | int, ...]


def path_text(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class Lines:
    """Line numbers (1-based) of the keys and items of a YAML document, by path."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.lines: dict[Path_, int] = {}
        self.errors: list[ConfigError] = []
        self._seen: set[int] = set()
        if root is not None:
            self._walk(root, ())

    def _walk(self, node: yaml.Node, path: Path_) -> None:
        if id(node) in self._seen:
            self.errors.append(
                ConfigError(node.start_mark.line + 1, path_text(path), "anchors and aliases (*name) are not supported")
            )
            return
        self._seen.add(id(node))
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            keys: set[Any] = set()
            for key_node, value_node in node.value:
                key = key_node.value
                if key in keys:
                    self.errors.append(
                        ConfigError(key_node.start_mark.line + 1, path_text(path), f"the key {key!r} appears twice")
                    )
                keys.add(key)
                self.lines[(*path, key)] = key_node.start_mark.line + 1
                self._walk(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._walk(item, (*path, index))

    def at(self, path: Path_) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


def _unstorable(value: Any, path: Path_) -> Iterator[tuple[Path_, str]]:
    if isinstance(value, str):
        if "\x00" in value:
            yield path, "text may not contain NUL characters"
    elif isinstance(value, float):
        if not math.isfinite(value):
            # YAML's .inf/.nan pass the schema's "number" but no database column holds them.
            yield path, f"{value} is not a number the gateway can use (.inf and .nan are not allowed)"
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _unstorable(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _unstorable(v, (*path, i))


def parse(text: str) -> tuple[dict[str, Any], Lines]:
    """YAML text → data, checked against the JSON Schema. Raises ConfigInvalid."""
    data, lines, problems = check(text)
    if problems:
        raise ConfigInvalid([error for _, error in problems])
    return data, lines


def check(text: str) -> tuple[Any, Lines, list[tuple[Path_, ConfigError]]]:
    """YAML text → data and its problems against the JSON Schema, each with its path, so that
    apply can still judge the parts without problems and report everything in one go. Raises
    ConfigInvalid only when the text is not YAML at all (or too large)."""
    if len(text.encode("utf-8", "replace")) > MAX_BYTES:
        raise ConfigInvalid([ConfigError(None, "", f"the file is larger than {MAX_BYTES // 1024 // 1024} MiB")])
    try:
        # Parsed once, with libyaml where PyYAML has it (10,000 routes: ≈1.5 s instead of ≈17 s
        # for the pure-Python parser run twice): the node tree gives the line numbers, and the
        # same tree is constructed into data.
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
            lines = Lines(root)
            if lines.errors:
                raise ConfigInvalid(lines.errors)
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ConfigInvalid(
            [ConfigError(mark.line + 1 if mark else None, "", f"not valid YAML: {exc.problem or exc.context}")]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigInvalid([ConfigError(None, "", f"not valid YAML: {exc}")]) from None
    if data is None:
        data = {}
    errors: list[tuple[Path_, ConfigError]] = []
    validator = _validator()
    for error in validator.iter_errors(data):
        path: Path_ = tuple(error.absolute_path)
        message = error.message
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = set(error.schema.get("properties", {}))
            unknown = sorted(str(k) for k in error.instance if k not in allowed)
            if unknown:
                path = (*path, unknown[0])
                message = f"unknown key {unknown[0]!r}" + (
                    f" (allowed: {', '.join(sorted(allowed))})" if len(allowed) < 25 else ""
                )
        errors.append((path, ConfigError(lines.at(path), path_text(path), message)))
    errors += [(p, ConfigError(lines.at(p), path_text(p), m)) for p, m in _unstorable(data, ())]
    if isinstance(data, dict):
        for index, product in enumerate(data.get("products") or []):
            if isinstance(product, dict) and product.get("openapi") is not None:
                try:
                    json.dumps(product["openapi"], allow_nan=False)
                except (TypeError, ValueError):
                    p: Path_ = ("products", index, "openapi")
                    errors.append(
                        (
                            p,
                            ConfigError(
                                lines.at(p), path_text(p), "holds values JSON cannot (dates or .nan?); quote them"
                            ),
                        )
                    )
    return data, lines, errors


# -- writing ------------------------------------------------------------------------------------
class _Flow(list[Any]):
    """A short list of plain values, written on one line: ``methods: [GET, POST]``."""


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # "routes:\n  - name: …", not "routes:\n- name: …"


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _represent_flow(dumper: yaml.SafeDumper, value: _Flow) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=True)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(_Flow, _represent_flow)


def _flowed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _flowed(v) for k, v in value.items()}
    if isinstance(value, list):
        if value and all(isinstance(v, str | int | float | bool) for v in value):
            return _Flow(value)
        return [_flowed(v) for v in value]
    return value


def dump_yaml(data: Mapping[str, Any]) -> str:
    return HEADER + yaml.dump(_flowed(dict(data)), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
