"""What `netplex validate` says about a NetworkAttachmentDefinition's resourceName
(meta/validate.py calls `resource_warnings` for each NAD): warnings, never errors, since a
plugin netplex does not know may well read `deviceID`.

- a resourceName whose network has no plugin that takes a `deviceID`: the device the pod
  gets for it would go unused (a plugin takes one when its type is a known device
  plugin, or when it declares the `deviceID` capability);
- a resourceName that is not `<domain>/<name>`, the only form a device plugin's
  extended resource can have."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meta.model import RESOURCE_NAME_ANNOTATION

# CNI plugins known to read the `deviceID` a meta-plugin injects.
DEVICE_PLUGIN_TYPES = frozenset({
    "host-device", "netplex-host-device", "sriov", "ib-sriov", "accelerated-bridge", "ovs", "userspace",
    "vdpa", "dpdk",
})


def resource_warnings(annotations: Any, config: Mapping[str, Any]) -> list[str]:
    """Warnings about the resourceName of a NAD with these annotations and this parsed
    spec.config (a conf or a conflist)."""
    resource = annotations.get(RESOURCE_NAME_ANNOTATION) if isinstance(annotations, Mapping) else None
    if not isinstance(resource, str) or not resource:
        return []
    found = []
    domain, slash, name = resource.partition("/")
    if not (slash and domain and name and "." in domain):
        found.append(
            f"resourceName {resource!r} is not <domain>/<name> (like intel.com/sriov_netdevice): "
            "no device plugin can advertise it"
        )
    plugins = config.get("plugins") if "plugins" in config else [config]
    types = [str(p.get("type", "")) for p in plugins or [] if isinstance(p, Mapping)]
    takes = any(
        p.get("type") in DEVICE_PLUGIN_TYPES
        or (isinstance(p.get("capabilities"), Mapping) and p["capabilities"].get("deviceID") is True)
        for p in plugins or [] if isinstance(p, Mapping)
    )
    if not takes:
        found.append(
            f"resourceName {resource!r} is set, but no plugin of this network ({', '.join(types) or 'none'}) takes "
            "a deviceID: the device the pod gets for it would go unused"
        )
    return found
