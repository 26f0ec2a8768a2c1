"""The metrics server: the resource metrics API (metrics.k8s.io/v1beta1) as metrics-server."""
