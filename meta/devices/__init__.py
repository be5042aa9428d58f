"""NFV device-plugin networks: which device a network's delegate gets, and what
network-status says about it.

- `kubelet`: the pod-resources gRPC client (which device IDs the kubelet gave a pod for a
  resource); imports `grpc` only when called.
- `assign`: resourceName -> device IDs -> one device per network, `deviceID` injected into
  every plugin of the delegate's config (and its runtimeConfig where declared).
- `devinfo`: NPWG Device Information spec v1.1 files (the device plugin's under `dp/`, the
  one netplex hands the delegate under `cni/`) and the `device-info` of network-status.
- `hints`: what `netplex validate` warns about.

This package uses `meta.model`, `meta.source` and `cni`; it never imports `kubernetes`,
pyroute2, nor the internals of meta.policy or meta.hotplug."""
