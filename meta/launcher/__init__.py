"""What `netplex install` puts on a node so the plugin runs there, outside any container:
a relocatable runtime (meta.launcher.runtime) and the launcher scripts that start it
(meta.launcher.templates)."""
