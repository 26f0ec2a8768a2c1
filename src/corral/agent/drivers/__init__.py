"""Runtime drivers: how a container of a pod becomes something running on this machine."""
