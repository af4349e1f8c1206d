"""AWS SigV4 verification (serving/sigv4.py): AWS's published test-suite vectors, botocore's signatures of
Ferry's own requests, every refusal, and the gateway's routes with a signature, a token, or neither. botocore
signs here (a real client's signer); the verifier itself does not use it."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from core.errors import FerryError
from ferry.config import ConfigError, parse_config
from serving import sigv4
from serving.protos import inference_pb2 as pb
from tests.unit.test_dataplane import Context
from tests.unit.test_hostile_inputs import client, gateway

# AWS's SigV4 test suite (docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html): its example
# credentials, scope and time, and the signatures it publishes for these requests.
SUITE_KEY, SUITE_SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SUITE_TIME = datetime(2015, 8, 30, 12, 36, tzinfo=timezone.utc)
SUITE = [  # name, method, raw path, query, signature
    ("get-vanilla", "GET", "/".encode(), b"", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("get-vanilla-query-order-key-case", "GET", b"/", b"Param2=value2&Param1=value1",
     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
    ("get-utf8", "GET", "/\u1234".encode(), b"", "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
    ("post-vanilla", "POST", b"/", b"", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
]
SUITE_HEADERS = [(b"host", b"example.amazonaws.com"), (b"x-amz-date", b"20150830T123600Z")]
KEY, SECRET = "AKIAFERRYTEST0000001", "ferry/Test+Secret0000000000000000000000000"


def scope(method: str, raw_path: bytes, query: bytes, headers: list[tuple[bytes, bytes]]) -> dict:
    return {"type": "http", "method": method, "path": raw_path.decode("utf-8"), "raw_path": raw_path,
            "query_string": query, "headers": headers}


def test_get_vanilla_canonical_request_and_string_to_sign_are_aws_published_ones():
    creq = sigv4.canonical_request("GET", b"/", b"", SUITE_HEADERS, ["host", "x-amz-date"],
                                   hashlib.sha256(b"").hexdigest())
    assert creq == ("GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    sts = sigv4.string_to_sign("20150830T123600Z", "20150830/us-east-1/service/aws4_request", creq)
    assert sts.endswith("\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63")


@pytest.mark.parametrize("name, method, path, query, signature", SUITE, ids=[c[0] for c in SUITE])
def test_aws_test_suite_requests_verify(name, method, path, query, signature):
    verifier = sigv4.SigV4Verifier("us-east-1", "service", {SUITE_KEY: SUITE_SECRET})
    auth = (f"AWS4-HMAC-SHA256 Credential={SUITE_KEY}/20150830/us-east-1/service/aws4_request, "
            f"SignedHeaders=host;x-amz-date, Signature={signature}")
    verifier.begin(auth, scope(method, path, query, SUITE_HEADERS), now=SUITE_TIME).verify(b"")
    wrong = auth[:-1] + ("0" if auth[-1] != "0" else "1")
    with pytest.raises(FerryError) as err:
        verifier.begin(wrong, scope(method, path, query, SUITE_HEADERS), now=SUITE_TIME).verify(b"")
    assert err.value.error.error_type == "InvalidSignatureException"


def signed(url: str, body: bytes = b"", method: str = "POST", secret: str = SECRET, key: str = KEY,
           when: datetime | None = None, region: str = "us-east-1", extra: dict | None = None) -> dict:
    """A request to `url` signed by botocore as boto3 signs it: {method, raw_path, query, headers, body}."""
    req = AWSRequest(method=method, url=url, data=body,
                     headers={"Content-Type": "text/csv", **(extra or {})})
    signer = botocore.auth.SigV4Auth(Credentials(key, secret), "sagemaker", region)
    if when is None:
        signer.add_auth(req)
    else:
        original = botocore.auth.get_current_datetime
        botocore.auth.get_current_datetime = lambda *a, **k: when.replace(tzinfo=None)
        try:
            signer.add_auth(req)
        finally:
            botocore.auth.get_current_datetime = original
    parts = urlsplit(url)
    headers = [(k.lower().encode(), v.encode() if isinstance(v, str) else v) for k, v in req.headers.items()]
    headers.append((b"host", parts.netloc.encode()))
    return {"method": method, "raw_path": parts.path.encode(), "query": parts.query.encode(), "headers": headers,
            "body": body}


def check(req: dict, verifier: sigv4.SigV4Verifier | None = None, now: datetime | None = None) -> None:
    verifier = verifier or sigv4.SigV4Verifier("us-east-1", "sagemaker", {KEY: SECRET})
    auth = dict(req["headers"])[b"authorization"].decode()
    verifier.begin(auth, scope(req["method"], req["raw_path"], req["query"], req["headers"]),
                   now=now).verify(req["body"])


def refused(req: dict, **kw) -> str:
    with pytest.raises(FerryError) as err:
        check(req, **kw)
    assert err.value.error.status == 403
    return f"{err.value.error.error_type}: {err.value.error.message}"


def test_botocore_signatures_verify_and_any_tampering_is_refused():
    url = "http://127.0.0.1:8080/endpoints/credit-risk%2Fv1/invocations?b=2&a=x%20y&a=1"  # double-encoded path
    req = signed(url, b"1,2,3\n", extra={"X-Amzn-SageMaker-Target-Variant": "A"})
    check(req)
    check(signed("http://127.0.0.1:8080/x", b"", extra={"X-Amz-Meta": "  a   b "}))  # spaces trimmed, collapsed
    for name, change in [("method", {"method": "PUT"}), ("path", {"raw_path": b"/endpoints/other/invocations"}),
                         ("query", {"query": b"a=1&b=2"}), ("body", {"body": b"9,9,9\n"}),
                         ("header", {"headers": [(k, b"B" if k == b"x-amzn-sagemaker-target-variant" else v)
                                                 for k, v in req["headers"]]})]:
        assert refused({**req, **change}).startswith("InvalidSignatureException: The request signature we "
                                                     "calculated does not match"), name


def test_each_refusal_says_what_aws_says():
    assert refused(signed("http://h/x", secret="wrong")).startswith("InvalidSignatureException")
    assert refused(signed("http://h/x", key="AKIAUNKNOWN")) == \
        "UnrecognizedClientException: The security token included in the request is invalid."
    stale = refused(signed("http://h/x", when=datetime.now(timezone.utc) - timedelta(minutes=6)))
    assert stale.startswith("InvalidSignatureException: Signature expired:")
    ahead = refused(signed("http://h/x", when=datetime.now(timezone.utc) + timedelta(minutes=6)))
    assert ahead.startswith("InvalidSignatureException: Signature not yet current:")
    check(signed("http://h/x", when=datetime.now(timezone.utc) - timedelta(minutes=4)))  # within the skew
    assert "valid region" in refused(signed("http://h/x", region="eu-west-1"))
    other = sigv4.SigV4Verifier("us-east-1", "execute-api", {KEY: SECRET})
    assert "correct service: 'execute-api'" in refused(signed("http://h/x"), verifier=other)
    req = signed("http://h/x")
    auth = dict(req["headers"])[b"authorization"]
    no_sig = auth.split(b", Signature=")[0]
    bad = {**req, "headers": [(k, no_sig if k == b"authorization" else v) for k, v in req["headers"]]}
    assert refused(bad) == "IncompleteSignatureException: Authorization header requires 'Signature' parameter."
    unsigned = signed("http://h/x", b"abc", extra={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    assert "no unsigned or streaming payloads" in refused(unsigned)
    declared = signed("http://h/x", b"abc", extra={"X-Amz-Content-SHA256": hashlib.sha256(b"abc").hexdigest()})
    check(declared)
    assert "x-amz-content-sha256" in refused({**declared, "body": b"abd"})


# --- the gateway: every HTTP route takes a signature, the token still works, gRPC takes only the token

def signed_gateway(tmp_path, token: str | None = None):
    write = {"sigv4": {"access_keys": {KEY: "${FERRY_TEST_SIGV4_SECRET}"}}}
    return gateway(tmp_path, token, server=write, environ={"FERRY_TEST_SIGV4_SECRET": SECRET})


def call(gw, method: str, path: str, body: bytes = b"", sign: bool = True, headers: dict | None = None):
    async def go():
        async with client(gw) as c:
            h = dict(headers or {})
            if sign:
                req = signed(f"http://gateway{path}", body, method=method, extra=h)
                h = {k.decode(): v.decode() for k, v in req["headers"] if k != b"host"}
            return await c.request(method, path, content=body, headers=h)
    return asyncio.run(go())


def test_gateway_routes_with_a_signature_a_token_or_neither(tmp_path):
    gw = signed_gateway(tmp_path, token="tok")
    row = b"0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8\n"
    r = call(gw, "POST", "/endpoints/credit-risk/invocations", row)
    assert r.status_code == 200, r.text
    assert call(gw, "POST", "/endpoints/credit-risk/invocations", row, sign=False,
                headers={"Authorization": "Bearer tok", "Content-Type": "text/csv"}).status_code == 200
    r = call(gw, "POST", "/endpoints/credit-risk/invocations", row, sign=False, headers={"Content-Type": "text/csv"})
    assert r.status_code == 401 and "bearer token or AWS SigV4" in r.json()["Message"]
    assert call(gw, "GET", "/v2/models/credit-risk").status_code == 200  # a route that reads no body
    v2 = b'{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 8], "data": [0, 0, 0, 0, 0, 0, 0, 0]}]}'
    r = call(gw, "POST", "/v2/models/credit-risk/infer", v2, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    r = call(gw, "GET", "/FeatureGroup/applicants?RecordIdentifierValueAsString=1")  # featurestore-runtime's GetRecord
    assert r.status_code == 200 and r.json()["Record"][0] == {"FeatureName": "applicant_id", "ValueAsString": "1"}
    gt = b'{"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId": "e1"}}\n'
    assert call(gw, "POST", "/ground-truth?endpoint=credit-risk", gt).status_code == 200  # the body replayed
    ctx = Context([("authorization", dict(signed("http://gateway/x")["headers"])[b"authorization"].decode())])
    asyncio.run(gw.ServerMetadata(pb.ServerMetadataRequest(), ctx))
    assert ctx.code.name == "UNAUTHENTICATED" and "gRPC takes the bearer token" in ctx.details


def test_without_a_token_an_unsigned_request_is_refused_as_aws_refuses_it(tmp_path):
    gw = signed_gateway(tmp_path)
    r = call(gw, "POST", "/endpoints/credit-risk/invocations", b"1\n", sign=False)
    assert r.status_code == 403 and r.headers["x-amzn-ErrorType"].startswith("MissingAuthenticationTokenException")
    assert r.json() == {"__type": "MissingAuthenticationTokenException", "message": "Missing Authentication Token"}
    r = call(gw, "POST", "/endpoints/credit-risk/invocations", b"1\n", sign=False,
             headers={"Authorization": "Bearer x"})
    assert r.status_code == 403 and r.json()["__type"] == "IncompleteSignatureException"
    r = call(gw, "POST", "/v2/models/credit-risk/infer", b"{}", sign=False)
    assert r.status_code == 403 and "Missing Authentication Token" in r.json()["error"]


def test_secrets_come_from_the_environment_or_a_file_literally(tmp_path):
    (tmp_path / "k").write_text(" s3cr3t #not-a-comment\n")
    doc = {"server": {"sigv4": {"access_keys": {"A1": "${V}", "A2": "file:k", "A3": "plain"}}}}
    cfg = parse_config(doc, base=tmp_path, environ={"V": "null"})
    assert cfg.server.sigv4.access_keys == {"A1": "null", "A2": "s3cr3t #not-a-comment", "A3": "plain"}
    with pytest.raises(ConfigError, match="server.sigv4.access_keys.A1: environment variable V is not set"):
        parse_config(doc, base=tmp_path, environ={})
    with pytest.raises(ConfigError, match="access key id"):
        parse_config({"server": {"sigv4": {"access_keys": {"A/B": "x"}}}}, environ={})
