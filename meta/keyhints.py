"""Known keys of what people write for netplex, and the closest one to a typo ("did you
mean `master`?"): used by `netplex validate` for the shipped delegates' configs and by
the selection parser for the annotation's elements. Standard library and the models'
field lists only; no I/O."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from cni import decode

# Keys every CNI plugin config may carry (spec section 1.2 and conventions).
CNI_PLUGIN_KEYS = frozenset({"cniVersion", "cniVersions", "name", "type", "capabilities", "ipam", "dns", "args",
                             "runtimeConfig", "prevResult", "deviceID", "pciBusID"})
HOST_LOCAL_KEYS = frozenset({"type", "subnet", "rangeStart", "rangeEnd", "gateway", "ranges", "routes", "dataDir",
                             "resolvConf", "rangeFromFile"})
STATIC_KEYS = frozenset({"type", "addresses", "routes", "dns"})


def suggestion(key: str, known: Iterable[str]) -> str:
    """' (did you mean `master`?)' for the closest known key, or ''."""
    candidates = sorted(known)
    import difflib  # only when a key is unknown: not on every call's path

    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if not close:  # case slips (`isgateway`) are not close by ratio at short lengths
        close = [name for name in candidates if name.lower() == key.lower()][:1]
    return f" (did you mean `{close[0]}`?)" if close else ""


def model_keys(model: type[msgspec.Struct]) -> frozenset[str]:
    """The wire names of a model's fields."""
    return decode.wire_names(model)


def unknown(keys: Iterable[str], known: frozenset[str]) -> list[tuple[str, str]]:
    """(key, suggestion) for each key not in `known`, in order. Case is ignored, as Go's
    encoding/json (and so every reference plugin, and netplex's bridge) ignores it."""
    folded = {name.lower() for name in known}
    return [(key, suggestion(key, known)) for key in keys if key.lower() not in folded]
