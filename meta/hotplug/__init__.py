"""Hot-plug: attach and detach networks on a running pod when its selection annotation
(`k8s.v1.cni.cncf.io/networks`) changes, in `netplex daemon` only.

- `diff`: which cached attachments go, which selections come and their ifnames (pure);
- `records`: what the daemon remembers of each sandbox it ADDed (its config and CNI_PATH),
  on disk beside the attachment cache, so a restarted daemon can catch up;
- `apply`: one reconcile of one sandbox (DELs, ADDs with per-network rollback, the cache,
  network-status in one patch, events), run under the sandbox's lock;
- `reconciler`: the thread that turns pod watch events into reconciles, with backoff;
- `events`: the `EventSink` protocol that Kubernetes events go through.

This package uses meta's CNI-path modules (cache, resolve, status, config), `cni` and the
built-in delegates' registry. It must never import meta.daemon (the daemon hands in its
lock, sources and metrics), meta.policy or meta.devices, nor `kubernetes` directly."""
