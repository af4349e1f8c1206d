"""Regenerate inference_pb2.py and inference_pb2_grpc.py from inference.proto (needs grpcio-tools).

    python -m serving.protos.generate
"""

from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    rc = protoc.main(["protoc", f"-I{ROOT}", f"--python_out={ROOT}", f"--grpc_python_out={ROOT}",
                      str(Path("serving/protos/inference.proto"))])
    if rc != 0:
        raise SystemExit(f"protoc failed with {rc}")


if __name__ == "__main__":
    main()
