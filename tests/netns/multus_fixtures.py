"""Multus's on-disk cache, byte for byte as Multus writes it, for the migration tests.

Multus (pkg/multus/multus.go, saveDelegates) saves `json.Marshal([]*types.DelegateNetConf)`
to `<cniDir>/<containerID>`; Go's encoder writes the untagged fields under their Go names
(`Conf`, `ConfList`, `Name`, `IsFilterV4Gateway`, `IsFilterV6Gateway`, `Bytes`), the
tagged ones under their tags with `omitempty`, and `[]byte` as base64. `types.NetConf`
always has `cniVersion`, `name`, `type` and (as structs, never omitted) `ipam` and `dns`;
`types.NetConfList` omits its empty fields. libcni (NewCNIConfigWithCacheDir with that same
`cniDir`) keeps each network's result in `<cniDir>/results/<name>-<containerID>-<ifname>`
as a `cniCacheV1` document.

`run_reference` plays libcni: it executes a reference plugin (or a conflist's plugins in
order with prevResult) exactly as Multus would through libcni."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

REFERENCE_BIN = "/usr/lib/cni"


def go_netconf(plugin: dict[str, Any]) -> dict[str, Any]:
    """`types.NetConf` as Go marshals it (unknown plugin keys are not in the struct)."""
    ipam = plugin.get("ipam") or {}
    doc: dict[str, Any] = {"cniVersion": plugin.get("cniVersion", ""), "name": plugin.get("name", ""),
                           "type": plugin.get("type", "")}
    if plugin.get("capabilities"):
        doc["capabilities"] = plugin["capabilities"]
    doc["ipam"] = {"type": ipam["type"]} if ipam.get("type") else {}
    doc["dns"] = {}
    return doc


def delegate_record(config: dict[str, Any], *, name: str, ifname_request: str = "") -> dict[str, Any]:
    """One `types.DelegateNetConf` of a conf or conflist, as saveDelegates writes it."""
    raw = json.dumps(config).encode()
    if "plugins" in config:
        conf: dict[str, Any] = {"cniVersion": "", "name": "", "type": "", "ipam": {}, "dns": {}}
        conf_list = {"cniVersion": config["cniVersion"], "name": config["name"],
                     "plugins": [go_netconf(plugin) for plugin in config["plugins"]]}
    else:
        conf, conf_list = go_netconf(config), {}
    doc: dict[str, Any] = {"Conf": conf, "ConfList": conf_list, "Name": name}
    if ifname_request:
        doc["ifnameRequest"] = ifname_request
    doc.update({"IsFilterV4Gateway": False, "IsFilterV6Gateway": False, "Bytes": base64.b64encode(raw).decode()})
    return doc


def libcni_result(config: dict[str, Any], result: dict[str, Any], *, container_id: str, ifname: str,
                  netns: str, cni_args: list[list[str]]) -> dict[str, Any]:
    """libcni's cachedInfo (cacheAdd) of one network's ADD."""
    return {
        "kind": "cniCacheV1", "containerId": container_id,
        "config": base64.b64encode(json.dumps(config).encode()).decode(),
        "ifName": ifname, "networkName": config["name"], "netns": netns, "cniArgs": cni_args,
        "result": result,
    }


def run_reference(node_ns: str, config: dict[str, Any], *, command: str, container_id: str, netns: str,
                  ifname: str, cni_args: list[list[str]]) -> dict[str, Any] | None:
    """ADD (or DEL) one network with the reference plugins in `node_ns`, as libcni does."""
    plugins = config.get("plugins", [config])
    order = plugins if command == "ADD" else list(reversed(plugins))
    prev: dict[str, Any] | None = None
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": command,
           "CNI_CONTAINERID": container_id, "CNI_NETNS": netns, "CNI_IFNAME": ifname,
           "CNI_PATH": REFERENCE_BIN, "CNI_ARGS": ";".join(f"{k}={v}" for k, v in cni_args)}
    for plugin in order:
        stdin = {**plugin, "name": config["name"], "cniVersion": config["cniVersion"]}
        if prev is not None:
            stdin["prevResult"] = prev
        proc = subprocess.run(
            ["ip", "netns", "exec", os.path.basename(node_ns), str(Path(REFERENCE_BIN) / plugin["type"])],
            input=json.dumps(stdin).encode(), env=env, capture_output=True, timeout=60, check=False,
        )
        assert proc.returncode == 0, (plugin["type"], proc.stdout, proc.stderr)
        if command == "ADD":
            prev = json.loads(proc.stdout)
    return prev


def write_multus_cache(cni_dir: Path, container_id: str, delegates: list[dict[str, Any]],
                       results: list[dict[str, Any]]) -> None:
    """The files Multus leaves after a successful ADD (mode 0600, dirs 0700)."""
    cni_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    record = cni_dir / container_id
    record.write_bytes(json.dumps(delegates, separators=(",", ":")).encode())
    record.chmod(0o600)
    (cni_dir / "results").mkdir(mode=0o700, exist_ok=True)
    for cached in results:
        path = cni_dir / "results" / f"{cached['networkName']}-{container_id}-{cached['ifName']}"
        path.write_bytes(json.dumps(cached, separators=(",", ":")).encode())
        path.chmod(0o600)
