"""The runtime lanes: real containerd (through CRI, as kubelet drives it) and podman (CNI
backend) running netplex, each inside a throwaway "node" network namespace.

Modules: `image` (the busybox image, built offline), `node` (the node namespace),
`plugins` (the CNI bin dir with a recording netplex wrapper), `networks` (NADs in a
local manifest directory and the netplex conflists), `containerd` and `cri` (a private
containerd and a CRI client), `netplex_daemon` (`netplex daemon` in the node, for the
containerd lane's daemon mode), `podman` (a private podman), `cleanup` (mounts, cgroups,
processes and runtime paths a lane leaves). Only `cri` needs more than the standard
library (grpcio and `container-runtime-interface-api`, test dependencies).
"""
