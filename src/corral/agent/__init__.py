"""The node agent: registers Nodes, renews Leases, runs the pods bound to them."""
