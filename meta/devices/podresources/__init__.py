"""The kubelet's pod-resources v1 API as Python modules: `api.proto` (written for netplex
from the public definition) and the `api_pb2` / `api_pb2_grpc` modules generated from it
with grpcio-tools and committed, so neither a build nor a node needs the generator.

Only `meta.devices.kubelet` (the client) and the test double import them; both pull in
`grpc`, which the CNI path loads only when a network names a resourceName."""
