"""The Open Inference Protocol V2 gRPC stubs, generated from proto/grpc_predict_v2.proto by
`make proto` (grpcio-tools) and committed: `grpc_predict_v2_pb2` (messages, typed by its
`.pyi`) and `grpc_predict_v2_pb2_grpc` (the service's servicer base and client stub)."""
