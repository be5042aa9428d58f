"""Network policy on secondary networks: MultiNetworkPolicy, enforced by `netplex daemon`
with one nftables table inside each selected pod's network namespace.

- model.py: the MultiNetworkPolicy spec (pydantic, at the edge), label selectors, `policy-for`;
- select.py: which policies select a pod's interface, and the addresses of a rule's peers
  on that interface's network (from network-status);
- compile.py: one pod's ruleset as nft JSON: base chains bound to the interfaces by name,
  peer addresses in named sets;
- nft.py: running `nft -j -f -` inside a pod's namespace, one transaction per change;
- engine.py: the daemon's side: watches, the pods of this node (the attachment cache),
  reconciling on every change, and the hook the daemon's ADD calls.

It reads Kubernetes through meta/k8s.py (started by the engine) and never imports
pyroute2, the hotplug or devices packages, or the shim; the CNI path (meta/plugin.py)
never imports it."""
