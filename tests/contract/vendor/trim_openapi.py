"""Trim a vendored OpenAPI document to the paths and webhooks the contract tests use.

Keeps ``openapi``, ``info``, ``servers``, ``security``, the named paths and webhooks, and every
component they reach through ``$ref`` (transitively); everything else is dropped unchanged.
Run by hand when refreshing a vendored spec (see README.md beside this file)::

    python trim_openapi.py FULL.json OUT.json --path /v3/mail/send --webhook email.bounced
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/"):
                found.add(ref)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def trim(spec: dict[str, Any], paths: list[str], webhooks: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {k: spec[k] for k in ("openapi", "info", "servers", "security") if k in spec}
    out["paths"] = {p: spec["paths"][p] for p in paths}
    if webhooks:
        out["webhooks"] = {w: spec["webhooks"][w] for w in webhooks}
    wanted: set[str] = set()
    todo = _refs(out)
    while todo:
        ref = todo.pop()
        if ref in wanted:
            continue
        wanted.add(ref)
        _, _, section, name = ref.split("/", 3)
        todo |= _refs(spec["components"][section][name]) - wanted
    components: dict[str, dict[str, Any]] = {}
    for ref in sorted(wanted):
        _, _, section, name = ref.split("/", 3)
        components.setdefault(section, {})[name] = spec["components"][section][name]
    # securitySchemes are named by `security`, not by $ref.
    if "securitySchemes" in spec.get("components", {}):
        components["securitySchemes"] = spec["components"]["securitySchemes"]
    out["components"] = components
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--path", action="append", default=[])
    parser.add_argument("--webhook", action="append", default=[])
    args = parser.parse_args()
    with open(args.source, encoding="utf-8") as handle:
        spec = json.load(handle)
    trimmed = trim(spec, args.path, args.webhook)
    with open(args.target, "w", encoding="utf-8") as handle:
        json.dump(trimmed, handle, indent=1, ensure_ascii=False, sort_keys=False)
        handle.write("\n")


if __name__ == "__main__":
    main()
