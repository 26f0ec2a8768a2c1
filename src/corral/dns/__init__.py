"""Cluster DNS: ``<service>.<namespace>.svc.<domain>`` from Services and EndpointSlices.

``records`` is the pure name-to-records logic over the informer caches; ``server`` is the
UDP/TCP server and ``corral dns`` (``main``). It is an ordinary API client, like the
scheduler and the controller manager, and imports nothing of theirs.
"""
