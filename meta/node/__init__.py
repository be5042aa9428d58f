"""What a daemon in a pod needs to act on its node: the node's paths as the container sees
them (hostpath) and the probe the DaemonSet runs against the daemon's socket (probe).
Imports the standard library, and meta.shim's client, only."""
