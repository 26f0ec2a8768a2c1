"""The Service data path of a node, like kube-proxy: ``rules`` (pure: Services and
EndpointSlices to kube-proxy's iptables ruleset), ``proxier`` (informers, the debounced
sync loop, the iptables backend), ``userspace`` (the relay for hosts without root) and
``cmd`` (``corral proxy``)."""
