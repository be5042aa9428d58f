"""netplex-ipam: cluster-wide IPAM whose store is the Kubernetes API.

Nodes own blocks of a range (IPBlock objects, claimed by create, so the API server's
AlreadyExists arbitrates between nodes); each node hands out the addresses of its own
blocks and records them durably on its disk, so an ordinary ADD writes nothing to the
API. IPAMClaims (NPWG v1.3) make an address outlive its pod. Modules:

  config      the `ipam` keys (whereabouts-compatible)
  kubeapi     a standard-library API client (this package never imports `kubernetes`)
  blocks      pool and block objects, names and arithmetic
  records     the node's durable per-address records
  ownership   the node's blocks: list, claim, reclaim from gone nodes
  claims      IPAMClaim reads and status writes
  allocator   ADD / DEL / GC over the above
  context     the process's clients and caches, and what the daemon lends
  reconcile   the daemon's loop that frees addresses of pods and claims that are gone
  plugin      the CNI verbs (`netplex-ipam`)

Imports `cni` and `delegates.ipam` only; never `meta`, `kubernetes` or `pyroute2`."""
