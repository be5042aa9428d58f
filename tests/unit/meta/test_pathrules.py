"""meta.pathrules: path keys are absolute, IPAM data dirs stay under ipamRoots."""

from __future__ import annotations

import pytest

from cni.errors import CniError
from meta import pathrules


@pytest.mark.parametrize(
    ("doc", "key"),
    [({"cniDir": ""}, "cniDir"), ({"cniDir": "rel"}, "cniDir"), ({"binDir": 3}, "binDir"),
     ({"logFile": "x.log"}, "logFile"), ({"socketPath": "/a\0b"}, "socketPath"), ({"ipamRoots": "/x"}, "ipamRoots"),
     ({"ipamRoots": ["x"]}, "ipamRoots.0")],
)
def test_bad_path_keys_are_error_7_naming_the_key(doc: dict[str, object], key: str) -> None:
    with pytest.raises(CniError) as caught:
        pathrules.check_config_paths(doc)
    assert caught.value.code == 7 and caught.value.msg.startswith(f"{key}:")


def test_empty_optional_keys_are_fine() -> None:
    pathrules.check_config_paths({"logFile": "", "kubeconfig": "", "cniDir": "/var/lib/cni/netplex"})


def test_data_dirs_are_normalised_before_the_root_check() -> None:
    roots = ["/var/lib/cni/networks"]
    pathrules.check_ipam_data_dirs("n", {"ipam": {"dataDir": "/var/lib/cni/networks/a/../b"}}, roots)
    with pytest.raises(CniError, match="outside the configured ipamRoots"):
        pathrules.check_ipam_data_dirs("n", {"plugins": [{"ipam": {"dataDir": "/var/lib/cni/networks/../x"}}]}, roots)
    with pytest.raises(CniError):
        pathrules.check_ipam_data_dirs("n", {"ipam": {"dataDir": "/var/lib/cni/networks-evil"}}, roots)
