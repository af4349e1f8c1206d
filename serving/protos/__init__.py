"""Generated protobuf and gRPC modules of the V2 inference service (see inference.proto)."""
