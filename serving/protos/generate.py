"""Regenerate inference_pb2.py and inference_pb2_grpc.py from inference.proto (needs grpcio-tools).

    python -m serving.protos.generate

The messages are registered in a descriptor pool of their own, not protobuf's default one: tritonclient's
gRPC module registers the same `inference.*` names there, and both must import in one process.
"""

from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]
PRIVATE_POOL = '_POOL = _descriptor_pool.DescriptorPool()  # its own pool: tritonclient registers the same "inference" names\n'


def main() -> None:
    rc = protoc.main(["protoc", f"-I{ROOT}", f"--python_out={ROOT}", f"--grpc_python_out={ROOT}",
                      str(Path("serving/protos/inference.proto"))])
    if rc != 0:
        raise SystemExit(f"protoc failed with {rc}")
    module = ROOT / "serving" / "protos" / "inference_pb2.py"
    text = module.read_text()
    default = "DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile("
    if default not in text:
        raise SystemExit(f"{module}: protoc's output changed; register the file in a private pool by hand")
    module.write_text(text.replace(default, PRIVATE_POOL + "DESCRIPTOR = _POOL.AddSerializedFile("))


if __name__ == "__main__":
    main()
