"""The `kube-insight-logserver` command line."""
