"""AWS Signature Version 4 verification, so that AWS SDK clients (boto3) with real credentials authenticate.

The request's `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...` header is
checked against the access keys of `server.sigv4` by AWS's published algorithm: the canonical request (method,
canonical URI, canonical query, the signed headers, the payload's SHA-256), the string to sign, the signing
key derived from the secret, date, region and service, and a constant-time comparison of the signatures.
`X-Amz-Date` must be within five minutes of the server's clock. Presigned URLs (query-string signatures) and
SigV4a are not accepted. Failures answer as AWS does: 403 with `InvalidSignatureException`,
`UnrecognizedClientException`, `IncompleteSignatureException` or `MissingAuthenticationTokenException`.

Verification runs in two steps so that a request with an unknown key or a stale date is refused before its
body is read: `SigV4Verifier.begin` checks the header, key, scope and date; `PendingSignature.verify(body)`
checks the signature once the body is in.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, unquote_to_bytes

from core.errors import FerryError, InferenceError

log = logging.getLogger(__name__)
ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=5)
AMZ_DATE = "%Y%m%dT%H%M%SZ"
HEX64 = re.compile(r"^[0-9a-f]{64}$")
MISMATCH = ("The request signature we calculated does not match the signature you provided. Check your AWS "
            "Secret Access Key and signing method. Consult the service documentation for details.")


def denied(error_type: str, message: str) -> FerryError:
    """AWS's answer to a request that fails authentication (403, the error type as AWS names it)."""
    return FerryError(InferenceError(403, error_type, "UNAUTHENTICATED", message))


def missing(credentials: str | None) -> FerryError:
    """No Authorization header, or one that is not a SigV4 signature."""
    if not credentials:
        return denied("MissingAuthenticationTokenException", "Missing Authentication Token")
    return denied("IncompleteSignatureException", f"the Authorization header is not an {ALGORITHM} signature")


# --- the algorithm (AWS's SigV4 signing process, as a client computes it)

def _remove_dot_segments(path: bytes) -> bytes:
    """RFC 3986 dot-segment removal, empty segments dropped (as AWS normalises non-S3 paths)."""
    out: list[bytes] = []
    for seg in path.split(b"/"):
        if seg == b"..":
            if out:
                out.pop()
        elif seg and seg != b".":
            out.append(seg)
    lead = b"/" if path.startswith(b"/") else b""
    trail = b"/" if path.endswith(b"/") and out else b""
    return lead + b"/".join(out) + trail


def canonical_uri(raw_path: bytes) -> str:
    """The path as the client sent it (still percent-encoded), normalised and URI-encoded once more: the
    double encoding every AWS service but S3 signs."""
    return quote(_remove_dot_segments(raw_path) or b"/", safe="/~")


def canonical_query(query: bytes) -> str:
    """Each name and value URI-encoded (RFC 3986 unreserved kept), pairs sorted by name, then value."""
    if not query:
        return ""
    pairs = []
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        pairs.append((quote(unquote_to_bytes(name), safe="-_.~"), quote(unquote_to_bytes(value), safe="-_.~")))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def canonical_headers(headers: list[tuple[bytes, bytes]], signed: list[str]) -> str:
    """`name:value` lines of the signed headers (repeats joined by commas, runs of spaces made one)."""
    values: dict[str, list[str]] = {name: [] for name in signed}
    for name, value in headers:
        key = name.decode("latin-1").lower()
        if key in values:
            values[key].append(" ".join(value.decode("latin-1").split()))
    return "".join(f"{name}:{','.join(values[name])}\n" for name in signed)


def canonical_request(method: str, raw_path: bytes, query: bytes, headers: list[tuple[bytes, bytes]],
                      signed: list[str], payload_hash: str) -> str:
    return "\n".join([method.upper(), canonical_uri(raw_path), canonical_query(query),
                      canonical_headers(headers, signed), ";".join(signed), payload_hash])


def string_to_sign(amz_date: str, scope: str, creq: str) -> str:
    return "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(creq.encode("utf-8")).hexdigest()])


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    return _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode("utf-8"), date), region), service), "aws4_request")


def signature(key: bytes, sts: str) -> str:
    return hmac.new(key, sts.encode("utf-8"), hashlib.sha256).hexdigest()


# --- the verifier

@dataclass(frozen=True, slots=True)
class Authorization:
    """The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header."""

    access_key: str
    date: str
    region: str
    service: str
    signed_headers: list[str]
    signature: str

    @classmethod
    def parse(cls, value: str) -> "Authorization":
        algorithm, _, rest = value.strip().partition(" ")
        if algorithm != ALGORITHM:
            raise denied("IncompleteSignatureException", f"unsupported signature algorithm; Ferry takes {ALGORITHM}")
        fields = {}
        for part in rest.split(","):
            name, eq, val = part.strip().partition("=")
            if eq:
                fields[name] = val
        absent = [name for name in ("Credential", "SignedHeaders", "Signature") if not fields.get(name)]
        if absent:
            raise denied("IncompleteSignatureException",
                         " ".join(f"Authorization header requires '{name}' parameter." for name in absent))
        scope = fields["Credential"].split("/")
        if len(scope) != 5 or not all(scope):
            raise denied("IncompleteSignatureException", "Credential must be "
                         "<access key>/<yyyymmdd>/<region>/<service>/aws4_request")
        if scope[4] != "aws4_request":
            raise denied("IncompleteSignatureException", "Credential should be scoped with a valid terminator: "
                                                         "'aws4_request'")
        return cls(scope[0], scope[1], scope[2], scope[3], fields["SignedHeaders"].split(";"), fields["Signature"])


class PendingSignature:
    """A request whose header, key, scope and date passed: `verify(body)` checks the signature itself."""

    __slots__ = ("_auth", "_key", "_scope", "_amz_date", "_content_sha256")

    def __init__(self, auth: Authorization, key: bytes, scope: dict, amz_date: str, content_sha256: str | None):
        self._auth, self._key, self._scope = auth, key, scope
        self._amz_date, self._content_sha256 = amz_date, content_sha256

    def verify(self, body: bytes) -> None:
        """Raise InvalidSignatureException unless the signature covers this request and this body."""
        body_hash = hashlib.sha256(body).hexdigest()
        if self._content_sha256 is not None and not hmac.compare_digest(self._content_sha256, body_hash):
            raise denied("InvalidSignatureException",
                         "The provided 'x-amz-content-sha256' header does not match what was computed.")
        s, a = self._scope, self._auth
        creq = canonical_request(s["method"], s.get("raw_path") or s["path"].encode("utf-8"), s["query_string"],
                                 s["headers"], a.signed_headers, self._content_sha256 or body_hash)
        sts = string_to_sign(self._amz_date, f"{a.date}/{a.region}/{a.service}/aws4_request", creq)
        if not hmac.compare_digest(signature(self._key, sts).encode(), a.signature.encode("utf-8", "replace")):
            log.debug("SigV4 mismatch for key %s; canonical request:\n%s", a.access_key, creq)
            raise denied("InvalidSignatureException", MISMATCH)


class SigV4Verifier:
    """Checks SigV4-signed HTTP requests against `access_keys` (access key id -> secret access key)."""

    def __init__(self, region: str, service: str, access_keys: dict[str, str], max_skew: timedelta = MAX_SKEW):
        self.region, self.service, self.max_skew = region, service, max_skew
        self._secrets = dict(access_keys)

    def begin(self, authorization: str, scope: dict, now: datetime | None = None) -> PendingSignature:
        """Check the header, the access key, the credential scope and the date of a request (its ASGI scope);
        raise the 403 AWS would answer, or return the signature check to run on the body."""
        auth = Authorization.parse(authorization)
        secret = self._secrets.get(auth.access_key)
        if secret is None:
            raise denied("UnrecognizedClientException", "The security token included in the request is invalid.")
        if "host" not in auth.signed_headers:
            raise denied("IncompleteSignatureException", "'Host' must be a 'SignedHeader' in the AWS Authorization.")
        if "x-amz-date" not in auth.signed_headers:
            raise denied("IncompleteSignatureException", "'X-Amz-Date' must be a 'SignedHeader' in the AWS "
                                                         "Authorization.")
        found = {name: value for name, value in scope["headers"] if name in (b"x-amz-date", b"x-amz-content-sha256")}
        amz_date = found.get(b"x-amz-date", b"").decode("latin-1")
        try:
            when = datetime.strptime(amz_date, AMZ_DATE).replace(tzinfo=timezone.utc)
        except ValueError:
            raise denied("IncompleteSignatureException", "X-Amz-Date must be in ISO-8601 'basic format' "
                                                         f"(yyyymmddThhmmssZ), got {amz_date[:20]!r}") from None
        now = now or datetime.now(timezone.utc)
        if when < now - self.max_skew:
            raise denied("InvalidSignatureException", f"Signature expired: {amz_date} is now earlier than "
                         f"{(now - self.max_skew).strftime(AMZ_DATE)} ({now.strftime(AMZ_DATE)} - 5 min.)")
        if when > now + self.max_skew:
            raise denied("InvalidSignatureException", f"Signature not yet current: {amz_date} is still later than "
                         f"{(now + self.max_skew).strftime(AMZ_DATE)} ({now.strftime(AMZ_DATE)} + 5 min.)")
        if auth.date != amz_date[:8]:
            raise denied("InvalidSignatureException", "Date in Credential scope does not match YYYYMMDD from "
                                                      f"X-Amz-Date: {auth.date[:8]!r} != {amz_date[:8]!r}")
        if auth.region != self.region:
            raise denied("InvalidSignatureException", f"Credential should be scoped to a valid region: "
                                                      f"{self.region!r}")
        if auth.service != self.service:
            raise denied("InvalidSignatureException", f"Credential should be scoped to correct service: "
                                                      f"{self.service!r}")
        content = found.get(b"x-amz-content-sha256")
        content_sha256 = None if content is None else content.decode("latin-1")
        if content_sha256 is not None and not HEX64.match(content_sha256):
            raise denied("InvalidSignatureException", "x-amz-content-sha256 must be the body's SHA-256: Ferry "
                                                      "takes no unsigned or streaming payloads")
        return PendingSignature(auth, signing_key(secret, auth.date, auth.region, auth.service), scope, amz_date,
                                content_sha256)
