"""Ferry serving: ONNX models on Ray Serve behind SageMaker, KServe V2 HTTP and gRPC routes."""
