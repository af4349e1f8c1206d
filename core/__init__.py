"""The small shared pieces every part of Ferry uses and none of them owns.

A leaf package: it imports nothing of serving, monitor, clarify, featurestore or ferry, and all of them
may import it. The Strict schema base, protocol-neutral inference errors, the ONNX runtime wrapper, the
payload codecs (one per content type, used to serve a request and to read its capture back) and the
SageMaker capture record live here.
"""
