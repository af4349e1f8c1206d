"""Protocol adapters: each turns its wire format into an `Exchange` for the data plane and its answer (or
error) back into the wire format. Nothing else: authentication, limits, routing, metrics and capture
belong to serving.dataplane."""
