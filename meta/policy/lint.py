"""`netplex validate`'s checks of MultiNetworkPolicies: each policy parses as netplex
reads it, and a node config that would leave policies unenforced (thin mode: no
`daemonSocket`) is warned about, since only `netplex daemon` can watch and enforce.

Reads the files it is given (YAML or JSON); no Kubernetes, no nft."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import yaml

from meta.policy import model
from meta.source import PolicyObject

KIND = "MultiNetworkPolicy"
Finding = tuple[str, int, str, str, bool]  # file, document, path, message, is_warning


def check(files: Sequence[str]) -> list[Finding]:
    policies: list[tuple[str, int]] = []
    thin: list[tuple[str, int, str]] = []
    found: list[Finding] = []
    for path in files:
        for index, doc, where in _documents(path):
            if doc.get("kind") == KIND:
                policies.append((path, index))
                found.extend((path, index, where, problem, False) for problem in _policy_problems(doc))
            elif _is_thin_netplex(doc):
                thin.append((path, index, where))
    if policies:
        first = f"{policies[0][0]}:{policies[0][1]}"
        for path, index, where in thin:
            found.append((path, index, where, f"a MultiNetworkPolicy exists ({first}) but this netplex config has "
                          "no daemonSocket: network policy is enforced only by `netplex daemon` (daemon mode)", True))
    return found


def _policy_problems(doc: dict[str, Any]) -> list[str]:
    metadata = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    annotations = metadata.get("annotations") if isinstance(metadata.get("annotations"), dict) else {}
    assert isinstance(annotations, dict)
    spec = doc.get("spec") if isinstance(doc.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    obj = PolicyObject(str(metadata.get("namespace", "default")), str(metadata.get("name", "")),
                       {str(k): str(v) for k, v in annotations.items()}, spec)
    problems = []
    try:
        parsed = model.parse(obj)
    except model.PolicyError as err:
        return [str(err)]
    if not parsed.networks:
        problems.append(f"no {model.POLICY_FOR_ANNOTATION} annotation: the policy applies to no network")
    return problems


def _is_thin_netplex(doc: dict[str, Any]) -> bool:
    entries = doc.get("plugins") if isinstance(doc.get("plugins"), list) else [doc]
    assert isinstance(entries, list)
    return any(
        isinstance(entry, dict) and entry.get("type") == "netplex" and not entry.get("daemonSocket")
        for entry in entries
    )


def _documents(path: str) -> Iterator[tuple[int, dict[str, Any], str]]:
    try:
        with open(path, encoding="utf-8") as handle:
            docs = list(yaml.safe_load_all(handle))
    except (OSError, ValueError, yaml.YAMLError):
        return  # validate reports unreadable files itself
    for index, doc in enumerate((d for d in docs if d is not None), start=1):
        if not isinstance(doc, dict):
            continue
        if str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
            for number, item in enumerate(doc["items"]):
                if isinstance(item, dict):
                    yield index, item, f"items.{number}"
        else:
            yield index, doc, ""
