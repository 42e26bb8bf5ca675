"""A small S3-compatible server standing in for minio: `s3_server.py server <dir> [...]`.

Buckets are directories under <dir>, objects are files in them. What minio keeps about a bucket
besides its objects (here only its policy) lives under <dir>/.minio.sys/buckets/<bucket>/, as in
minio: it survives a restart with the data volume and is never listed as a bucket.

Who may do what, as in minio:
- a request with an Authorization header must be signed with AWS Signature Version 4 by
  MINIO_ROOT_USER / MINIO_ROOT_PASSWORD; so must a presigned URL (X-Amz-* query), which must
  also not have expired; both may then do everything;
- any other request is anonymous: it is allowed only when the bucket's policy allows its action
  (s3:GetObject for GET and HEAD of an object, s3:PutObject, s3:DeleteObject, s3:ListBucket for
  listing or HEAD of the bucket, ...) to the principal "*" and no statement denies it; else
  403 AccessDenied. Listing the buckets is never anonymous. An anonymous GET or HEAD of a
  missing object is 404 only when the policy also allows s3:ListBucket, else 403.

Supported: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation, ListObjects
(V1 and V2, with prefix, delimiter, max-keys, continuation), Put/Get/DeleteBucketPolicy,
Put/Get/Head/Delete/CopyObject (GET with one byte range), and GET /minio/health/live and
/minio/health/ready without credentials. Any other S3 call answers 501 NotImplemented. Not kept:
object metadata (Content-Type is always application/octet-stream), versions, multipart uploads,
Signature Version 2 and policy conditions (both refused with 501, never taken for anonymous
requests or half-evaluated).
"""

import base64
import hashlib
import hmac
import json
import os
import posixpath
import re
import shutil
import signal
import sys
import traceback
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit
from xml.sax.saxutils import escape

ACCESS_KEY = os.environ["MINIO_ROOT_USER"]
SECRET_KEY = os.environ["MINIO_ROOT_PASSWORD"]
DATA = Path(sys.argv[2] if len(sys.argv) > 2 else "/data")
BUCKET_META = DATA / ".minio.sys" / "buckets"
POLICY_FILE = "policy.json"
S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
HEALTH_PATHS = ("/minio/health/live", "/minio/health/ready")

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
MAX_POLICY_BYTES = 20 * 1024  # as AWS and minio
POLICY_VERSION = "2012-10-17"
ARN_PREFIX = "arn:aws:s3:::"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Query parameters that select an S3 call other than the plain one on a bucket or object.
SUBRESOURCES = _words(
    "accelerate acl analytics attributes cors delete encryption intelligent-tiering inventory "
    "legal-hold lifecycle location logging metrics notification object-lock ownershipControls "
    "policy policyStatus publicAccessBlock replication requestPayment restore retention select "
    "tagging torrent uploadId uploads versioning versions website"
)

# S3 action names a bucket policy may use (minio refuses others); those acting on objects
# need an object resource (bucket/...), the others a bucket resource.
OBJECT_ACTIONS = _words(
    "s3:AbortMultipartUpload s3:DeleteObject s3:DeleteObjectTagging s3:DeleteObjectVersion "
    "s3:DeleteObjectVersionTagging s3:GetObject s3:GetObjectAttributes s3:GetObjectLegalHold "
    "s3:GetObjectRetention s3:GetObjectTagging s3:GetObjectVersion "
    "s3:GetObjectVersionAttributes s3:GetObjectVersionForReplication s3:GetObjectVersionTagging "
    "s3:ListMultipartUploadParts s3:PutObject s3:PutObjectLegalHold s3:PutObjectRetention "
    "s3:PutObjectTagging s3:PutObjectVersionTagging s3:ReplicateDelete s3:ReplicateObject "
    "s3:ReplicateTags s3:RestoreObject s3:BypassGovernanceRetention"
)
BUCKET_ACTIONS = _words(
    "s3:CreateBucket s3:DeleteBucket s3:DeleteBucketPolicy s3:ForceDeleteBucket "
    "s3:GetBucketLocation s3:GetBucketNotification s3:GetBucketObjectLockConfiguration "
    "s3:GetBucketPolicy s3:GetBucketPolicyStatus s3:GetBucketTagging s3:GetBucketVersioning "
    "s3:GetEncryptionConfiguration s3:GetLifecycleConfiguration s3:GetReplicationConfiguration "
    "s3:HeadBucket s3:ListAllMyBuckets s3:ListBucket s3:ListBucketMultipartUploads "
    "s3:ListBucketVersions s3:ListenBucketNotification s3:PutBucketNotification "
    "s3:PutBucketObjectLockConfiguration s3:PutBucketPolicy s3:PutBucketTagging "
    "s3:PutBucketVersioning s3:PutEncryptionConfiguration s3:PutLifecycleConfiguration "
    "s3:PutReplicationConfiguration"
)

MESSAGES = {
    "AccessDenied": "Access Denied.",
    "AuthorizationHeaderMalformed": "The authorization header is malformed.",
    "AuthorizationQueryParametersError": "Error parsing the X-Amz-Credential parameter.",
    "BucketAlreadyOwnedByYou": "Your previous request to create the named bucket succeeded "
    "and you already own it.",
    "BucketNotEmpty": "The bucket you tried to delete is not empty",
    "InternalError": "We encountered an internal error, please try again.",
    "InvalidAccessKeyId": "The Access Key Id you provided does not exist in our records.",
    "InvalidArgument": "Invalid argument",
    "InvalidBucketName": "The specified bucket is not valid.",
    "InvalidKey": "Object name is not valid.",
    "InvalidRange": "The requested range is not satisfiable",
    "MalformedPolicy": "Policy has invalid resource.",
    "MissingContentLength": "You must provide the Content-Length HTTP header.",
    "NoSuchBucket": "The specified bucket does not exist",
    "NoSuchBucketPolicy": "The bucket policy does not exist",
    "NoSuchKey": "The specified key does not exist.",
    "NotImplemented": "A header you provided implies functionality that is not implemented",
    "PolicyTooLarge": "Policy exceeds the maximum allowed document size.",
    "SignatureDoesNotMatch": "The request signature we calculated does not match the signature "
    "you provided. Check your key and signing method.",
    "XAmzContentSHA256Mismatch": "The provided 'x-amz-content-sha256' header does not match "
    "what was computed.",
}


class S3Error(Exception):
    def __init__(self, status: int, code: str, message: str | None = None):
        super().__init__(code)
        self.status, self.code = status, code
        self.message = message or MESSAGES.get(code, code)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _xml(body: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>' + body).encode()


def _http_date(moment: datetime) -> str:
    return moment.strftime("%a, %d %b %Y %H:%M:%S GMT")


def _iso_date(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


# --- names -----------------------------------------------------------------------------------

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+")


def valid_bucket_name(name: str) -> bool:
    """S3's rules for new bucket names, which minio applies: 3-63 characters of lower-case
    letters, digits, '.' and '-', a letter or digit at both ends, no '..', '.-' or '-.', not an
    IP address. They also keep `.minio.sys` from ever being a bucket."""
    return (
        _BUCKET_NAME.fullmatch(name) is not None
        and not any(bad in name for bad in ("..", ".-", "-."))
        and _IP_ADDRESS.fullmatch(name) is None
    )


def bucket_exists(name: str) -> bool:
    return valid_bucket_name(name) and (DATA / name).is_dir()


# --- bucket policies ---------------------------------------------------------------------------


def wildcard_match(pattern: str, name: str) -> bool:
    """minio's policy wildcards: '*' stands for any run of characters, '?' for exactly one."""
    regex = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    return re.fullmatch(regex, name, re.DOTALL) is not None


def _could_match_under(pattern: str, prefix: str) -> bool:
    """Whether `pattern` can match some name starting with `prefix`."""
    for want, have in zip(pattern, prefix, strict=False):
        if want == "*":
            return True
        if want not in ("?", have):
            return False
    return len(prefix) <= len(pattern)


def _malformed(message: str) -> S3Error:
    return S3Error(400, "MalformedPolicy", message)


def _fields(value: object, names: dict[str, str], where: str) -> dict[str, object]:
    """A JSON object's members under their canonical names. Names match case-insensitively and
    an unknown one is an error, as with minio's (Go) decoder."""
    if not isinstance(value, dict):
        raise _malformed(f"{where} must be a JSON object")
    found = {}
    for name, member in value.items():
        canonical = names.get(name.lower())
        if canonical is None:
            raise _malformed(f"unknown field {name!r} in {where}")
        found[canonical] = member
    return found


def _string_set(value: object, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _malformed(f"{where} must be a string or a list of strings")
    return sorted(set(value))


def _element_or_not(fields: dict[str, object], name: str) -> tuple[list[str], list[str]]:
    """`Action`/`NotAction` (or `Resource`/`NotResource`): exactly one of the two, not empty."""
    values = _string_set(fields.get(name), name)
    negated = _string_set(fields.get(f"Not{name}"), f"Not{name}")
    if not values and not negated:
        raise _malformed(f"{name} must not be empty")
    if values and negated:
        raise _malformed(f"{name} and Not{name} cannot be specified in the same statement")
    return values, negated


def _resource_pattern(resource: str) -> str:
    return resource if resource == "*" else resource[len(ARN_PREFIX) :]


def _statement(raw: object, bucket: str) -> dict[str, object]:
    fields = _fields(
        raw,
        {
            name.lower(): name
            for name in _words(
                "Sid Effect Principal Action NotAction Resource NotResource Condition"
            )
        },
        "a Statement",
    )
    statement: dict[str, object] = {}
    sid = fields.get("Sid") or ""
    if not isinstance(sid, str):
        raise _malformed("Sid must be a string")
    if sid:
        statement["Sid"] = sid
    effect = fields.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise _malformed(f"invalid Effect {effect}")
    statement["Effect"] = effect
    principal = fields.get("Principal")
    if principal == "*":
        principals = ["*"]
    elif isinstance(principal, dict):
        principals = _string_set(_fields(principal, {"aws": "AWS"}, "Principal").get("AWS"), "AWS")
    else:
        raise _malformed(f"invalid Principal {principal}")
    if not principals:
        raise _malformed(f"invalid Principal {principal}")
    statement["Principal"] = {"AWS": principals}

    actions, not_actions = _element_or_not(fields, "Action")
    known = OBJECT_ACTIONS | BUCKET_ACTIONS
    for action in actions + not_actions:
        if not any(wildcard_match(action, name) for name in known):
            raise _malformed(f"invalid action '{action}'")
    statement["Action" if actions else "NotAction"] = actions or not_actions

    resources, not_resources = _element_or_not(fields, "Resource")
    patterns = []
    for resource in resources + not_resources:
        if resource != "*" and not resource.startswith(ARN_PREFIX):
            raise _malformed(f"invalid resource '{resource}'")
        pattern = _resource_pattern(resource)
        if pattern.startswith("/"):
            raise _malformed(f"invalid resource '{resource}' - starts with '/'")
        if not (wildcard_match(pattern, bucket) or _could_match_under(pattern, bucket + "/")):
            raise _malformed(f"policy resource '{resource}' does not match bucket '{bucket}'")
        patterns.append(pattern)
    for action in actions:
        on_objects = any(wildcard_match(action, name) for name in OBJECT_ACTIONS)
        if on_objects and not any("/" in p or "*" in p for p in patterns):
            raise _malformed(f"unsupported Resource found {resources} for action {action}")
        if not on_objects and not any("/" not in p or p == "*" for p in patterns):
            raise _malformed(f"unsupported Resource found {resources} for action {action}")
    statement["Resource" if resources else "NotResource"] = resources or not_resources

    if fields.get("Condition"):
        raise S3Error(
            501, "NotImplemented", "policy conditions are not evaluated by this minio stand-in"
        )
    return statement


def parse_policy(document: bytes, bucket: str) -> dict[str, object]:
    """Check a bucket policy as minio does and return it in minio's normal form (principals,
    actions and resources as sorted lists, duplicate statements dropped)."""
    try:
        raw = json.loads(document)
    except (UnicodeDecodeError, ValueError) as error:
        raise _malformed(f"the policy is not valid JSON: {error}") from None
    top = _fields(raw, {"version": "Version", "id": "ID", "statement": "Statement"}, "the policy")
    version = top.get("Version") or ""
    if not isinstance(version, str) or version not in ("", POLICY_VERSION):
        raise _malformed(f"invalid version '{version}'")
    raw_statements = top.get("Statement") or []
    if not isinstance(raw_statements, list):
        raise _malformed("Statement must be a list")
    statements: list[dict[str, object]] = []
    for raw_statement in raw_statements:
        statement = _statement(raw_statement, bucket)
        if statement not in statements:
            statements.append(statement)
    if not version:
        raise _malformed("The policy must contain a valid version string")
    policy: dict[str, object] = {"Version": version}
    if top.get("ID"):
        policy["ID"] = top["ID"]
    policy["Statement"] = statements
    return policy


def _resource_matches(pattern: str, resource: str) -> bool:
    cleaned = posixpath.normpath(resource) if resource else "."
    return (cleaned != "." and cleaned == pattern) or wildcard_match(pattern, resource)


def policy_allows_anonymous(policy: dict | None, action: str, bucket: str, key: str = "") -> bool:
    """minio's evaluation of a bucket policy for an anonymous request: any matching Deny
    statement refuses, else any matching Allow statement allows, else it is refused."""
    if not policy:
        return False
    resource = f"{bucket}/{key}" if key else bucket

    def matches(statement: dict) -> bool:
        # Anonymous is the empty account name: only principal patterns made of wildcards match.
        if not any(set(p) <= {"*", "?"} for p in statement["Principal"]["AWS"]):
            return False
        if "Action" in statement and not any(
            wildcard_match(p, action) for p in statement["Action"]
        ):
            return False
        if "NotAction" in statement and any(
            wildcard_match(p, action) for p in statement["NotAction"]
        ):
            return False
        if "Resource" in statement and not any(
            _resource_matches(_resource_pattern(r), resource) for r in statement["Resource"]
        ):
            return False
        return "NotResource" not in statement or not any(
            _resource_matches(_resource_pattern(r), resource) for r in statement["NotResource"]
        )

    statements = policy.get("Statement", [])
    if any(s["Effect"] == "Deny" and matches(s) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and matches(s) for s in statements)


def load_policy(bucket: str) -> dict | None:
    try:
        return json.loads((BUCKET_META / bucket / POLICY_FILE).read_text())
    except FileNotFoundError:
        return None


def store_policy(bucket: str, policy: dict) -> None:
    target = BUCKET_META / bucket / POLICY_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(f".{POLICY_FILE}.{uuid.uuid4().hex}")
    scratch.write_text(json.dumps(policy, separators=(",", ":")))
    os.replace(scratch, target)


def drop_policy(bucket: str) -> None:
    (BUCKET_META / bucket / POLICY_FILE).unlink(missing_ok=True)


# --- the HTTP side -------------------------------------------------------------------------------


class S3Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "MinIO"
    sys_version = ""

    def log_message(self, *_args) -> None:
        pass

    def _reply(
        self, status: int, body: bytes = b"", content_type: str = "application/xml", extra=None
    ):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amz-request-id", self.request_id)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, error: S3Error) -> None:
        parts = [f"<Code>{escape(error.code)}</Code><Message>{escape(error.message)}</Message>"]
        if self.key:
            parts.append(f"<Key>{escape(self.key)}</Key>")
        if self.bucket:
            parts.append(f"<BucketName>{escape(self.bucket)}</BucketName>")
        parts.append(f"<Resource>{escape(urlsplit(self.path).path)}</Resource>")
        parts.append(f"<RequestId>{self.request_id}</RequestId>")
        self._reply(error.status, _xml("<Error>" + "".join(parts) + "</Error>"))

    # --- authentication ----------------------------------------------------------------------

    def _signature(self, date: str, region: str, service: str, stamp: str, canonical: str):
        scope = f"{date}/{region}/{service}/aws4_request"
        to_sign = "\n".join(
            [ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        key = _hmac(
            _hmac(_hmac(_hmac(("AWS4" + SECRET_KEY).encode(), date), region), service),
            "aws4_request",
        )
        return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()

    def _canonical(self, query: list[tuple[str, str]], signed: str, payload_hash: str) -> str:
        url = urlsplit(self.path)
        canonical_query = "&".join(
            f"{quote(key, safe='-_.~')}={quote(value, safe='-_.~')}" for key, value in sorted(query)
        )
        headers = "".join(
            f"{name}:{' '.join((self.headers.get(name) or '').split())}\n"
            for name in signed.split(";")
        )
        return "\n".join(
            [self.command, url.path or "/", canonical_query, headers, signed, payload_hash]
        )

    def _check_header_signature(self, header: str, payload: bytes) -> None:
        try:
            fields = dict(
                part.strip().split("=", 1) for part in header[len(ALGORITHM) + 1 :].split(",")
            )
            access_key, date, region, service, _ = fields["Credential"].split("/")
            signed, signature = fields["SignedHeaders"], fields["Signature"]
        except (KeyError, ValueError):
            raise S3Error(400, "AuthorizationHeaderMalformed") from None
        if access_key != ACCESS_KEY:
            raise S3Error(403, "InvalidAccessKeyId")
        payload_hash = self.headers.get("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
        if payload_hash not in ("UNSIGNED-PAYLOAD", hashlib.sha256(payload).hexdigest()):
            raise S3Error(400, "XAmzContentSHA256Mismatch")
        query = parse_qsl(urlsplit(self.path).query, keep_blank_values=True)
        expected = self._signature(
            date,
            region,
            service,
            self.headers.get("x-amz-date", ""),
            self._canonical(query, signed, payload_hash),
        )
        if not hmac.compare_digest(expected, signature):
            raise S3Error(403, "SignatureDoesNotMatch")

    def _check_presigned(self, query: list[tuple[str, str]]) -> None:
        params = dict(query)
        try:
            access_key, date, region, service, _ = params["X-Amz-Credential"].split("/")
            stamp, signed = params["X-Amz-Date"], params["X-Amz-SignedHeaders"]
            signature, expires = params["X-Amz-Signature"], int(params["X-Amz-Expires"])
            signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except (KeyError, ValueError):
            raise S3Error(400, "AuthorizationQueryParametersError") from None
        if params.get("X-Amz-Algorithm") != ALGORITHM or not 0 < expires <= MAX_PRESIGN_SECONDS:
            raise S3Error(400, "AuthorizationQueryParametersError")
        if access_key != ACCESS_KEY:
            raise S3Error(403, "InvalidAccessKeyId")
        if datetime.now(UTC) > signed_at + timedelta(seconds=expires):
            raise S3Error(403, "AccessDenied", "Request has expired")
        unsigned = [(k, v) for k, v in query if k != "X-Amz-Signature"]
        payload_hash = params.get("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
        expected = self._signature(
            date, region, service, stamp, self._canonical(unsigned, signed, payload_hash)
        )
        if not hmac.compare_digest(expected, signature):
            raise S3Error(403, "SignatureDoesNotMatch")

    def _authenticate(self, payload: bytes) -> bool:
        """True for the root user's signed or presigned requests, False for anonymous ones;
        raises for a request whose credentials do not check out."""
        header = self.headers.get("Authorization")
        query = parse_qsl(urlsplit(self.path).query, keep_blank_values=True)
        names = {key for key, _ in query}
        if (header or "").startswith("AWS ") or {"AWSAccessKeyId", "Signature"} <= names:
            # minio also takes Signature Version 2; this stand-in refuses it loudly rather than
            # take such a request for an anonymous one.
            raise S3Error(501, "NotImplemented", "this minio stand-in checks Signature V4 only")
        if header is not None:
            if not header.startswith(ALGORITHM + " "):
                raise S3Error(400, "AuthorizationHeaderMalformed")
            self._check_header_signature(header, payload)
            return True
        if names & {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature"}:
            self._check_presigned(query)
            return True
        return False

    def _allowed(self, *actions: str, key: str = "") -> bool:
        """Whether this request may do one of `actions` on its bucket (or `key` in it)."""
        if self.authenticated:
            return True
        policy = load_policy(self.bucket) if bucket_exists(self.bucket) else None
        return any(policy_allows_anonymous(policy, a, self.bucket, key) for a in actions)

    # --- dispatch ------------------------------------------------------------------------------

    def _handle(self) -> None:
        self.request_id = uuid.uuid4().hex[:16].upper()
        self.bucket = self.key = ""
        url = urlsplit(self.path)
        if url.path in HEALTH_PATHS:
            self._reply(200, b"", "text/plain")
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            payload = self.rfile.read(length) if length else b""
            self.authenticated = self._authenticate(payload)
            parts = unquote(url.path).lstrip("/").split("/", 1)
            self.bucket, self.key = parts[0], (parts[1] if len(parts) > 1 else "")
            query = dict(parse_qsl(url.query, keep_blank_values=True))
            operation, actions = self._route(query)
            if not self._allowed(*actions, key=self.key):
                raise S3Error(403, "AccessDenied")
            if operation != "list_buckets" and not valid_bucket_name(self.bucket):
                raise S3Error(400, "InvalidBucketName")
            getattr(self, operation)(query, payload)
        except S3Error as error:
            self._error(error)
        except Exception:
            traceback.print_exc()
            self._error(S3Error(500, "InternalError"))

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _handle

    def _route(self, query: dict[str, str]) -> tuple[str, tuple[str, ...]]:
        """The handler for this request and the policy actions any one of which allows it."""
        method, selected = self.command, SUBRESOURCES.intersection(query)
        if not self.bucket:
            if method == "GET" and not selected:
                return "list_buckets", ()  # never anonymous: no action a bucket policy grants
        elif not self.key:
            if selected == {"policy"} and method in ("PUT", "GET", "DELETE"):
                verb = {"PUT": "Put", "GET": "Get", "DELETE": "Delete"}[method]
                return f"{verb.lower()}_bucket_policy", (f"s3:{verb}BucketPolicy",)
            if selected == {"location"} and method == "GET":
                return "get_bucket_location", ("s3:GetBucketLocation",)
            plain = {
                "PUT": ("create_bucket", ("s3:CreateBucket",)),
                "HEAD": ("head_bucket", ("s3:HeadBucket", "s3:ListBucket")),
                "GET": ("list_objects", ("s3:ListBucket",)),
                "DELETE": ("delete_bucket", ("s3:DeleteBucket",)),
            }
            if not selected and method in plain:
                return plain[method]
        elif not selected:
            if method == "PUT" and "x-amz-copy-source" in self.headers:
                return "copy_object", ("s3:PutObject",)
            plain = {
                "PUT": ("put_object", ("s3:PutObject",)),
                "GET": ("get_object", ("s3:GetObject",)),
                "HEAD": ("get_object", ("s3:GetObject",)),
                "DELETE": ("delete_object", ("s3:DeleteObject",)),
            }
            if method in plain:
                return plain[method]
        raise S3Error(501, "NotImplemented")

    # --- buckets -------------------------------------------------------------------------------

    def _bucket_dir(self) -> Path:
        if not bucket_exists(self.bucket):
            raise S3Error(404, "NoSuchBucket")
        return DATA / self.bucket

    def list_buckets(self, _query, _payload) -> None:
        names = sorted(p.name for p in DATA.iterdir() if p.is_dir() and valid_bucket_name(p.name))
        items = "".join(
            f"<Bucket><Name>{escape(name)}</Name>"
            f"<CreationDate>{_iso_date(self._created(name))}</CreationDate></Bucket>"
            for name in names
        )
        self._reply(
            200,
            _xml(
                f'<ListAllMyBucketsResult xmlns="{S3_NS}"><Owner><ID></ID><DisplayName>'
                f"</DisplayName></Owner><Buckets>{items}</Buckets></ListAllMyBucketsResult>"
            ),
        )

    @staticmethod
    def _created(name: str) -> datetime:
        return datetime.fromtimestamp((DATA / name).stat().st_mtime, UTC)

    def create_bucket(self, _query, _payload) -> None:
        if not valid_bucket_name(self.bucket):
            raise S3Error(400, "InvalidBucketName")
        if bucket_exists(self.bucket):
            raise S3Error(409, "BucketAlreadyOwnedByYou")
        (DATA / self.bucket).mkdir(parents=True)
        drop_policy(self.bucket)  # a policy left by a bucket of that name removed by hand
        self._reply(200, extra={"Location": f"/{self.bucket}"})

    def head_bucket(self, _query, _payload) -> None:
        self._bucket_dir()
        self._reply(200)

    def delete_bucket(self, _query, _payload) -> None:
        bucket_dir = self._bucket_dir()
        if any(p.is_file() for p in bucket_dir.rglob("*")):
            raise S3Error(409, "BucketNotEmpty")
        shutil.rmtree(bucket_dir)
        shutil.rmtree(BUCKET_META / self.bucket, ignore_errors=True)
        self._reply(204)

    def get_bucket_location(self, _query, _payload) -> None:
        self._bucket_dir()
        # minio's default region (us-east-1) is written as an empty constraint, as S3 does.
        self._reply(200, _xml(f'<LocationConstraint xmlns="{S3_NS}"></LocationConstraint>'))

    def put_bucket_policy(self, _query, payload: bytes) -> None:
        self._bucket_dir()
        length = int(self.headers.get("Content-Length", "0"))
        if length <= 0:
            raise S3Error(411, "MissingContentLength")
        if length > MAX_POLICY_BYTES:
            raise S3Error(400, "PolicyTooLarge")
        store_policy(self.bucket, parse_policy(payload, self.bucket))
        self._reply(204)

    def get_bucket_policy(self, _query, _payload) -> None:
        self._bucket_dir()
        policy = load_policy(self.bucket)
        if policy is None:
            raise S3Error(404, "NoSuchBucketPolicy")
        self._reply(200, json.dumps(policy, separators=(",", ":")).encode(), "application/json")

    def delete_bucket_policy(self, _query, _payload) -> None:
        self._bucket_dir()
        drop_policy(self.bucket)
        self._reply(204)

    def list_objects(self, query: dict[str, str], _payload) -> None:
        bucket_dir = self._bucket_dir()
        v2 = query.get("list-type") == "2"
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        try:
            max_keys = max(0, min(int(query.get("max-keys", "1000")), 1000))
        except ValueError:
            raise S3Error(400, "InvalidArgument", "max-keys must be an integer") from None
        if v2:
            token = query.get("continuation-token")
            try:
                start = base64.urlsafe_b64decode(token).decode() if token else ""
            except ValueError:
                raise S3Error(400, "InvalidArgument", "invalid continuation token") from None
            start = max(start, query.get("start-after", ""))
        else:
            start = query.get("marker", "")
        entries: dict[str, Path | None] = {}  # key -> file, or common prefix -> None
        for path in bucket_dir.rglob("*"):
            key = path.relative_to(bucket_dir).as_posix()
            if not path.is_file() or not key.startswith(prefix):
                continue
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            if cut >= 0:
                entries[key[: cut + len(delimiter)]] = None
            else:
                entries[key] = path
        names = [name for name in sorted(entries) if name > start]
        page, truncated = names[:max_keys], len(names) > max_keys
        encode = query.get("encoding-type") == "url"

        def out(text: str) -> str:
            return escape(quote_plus(text, safe="/") if encode else text)

        contents, prefixes = [], []
        for name in page:
            path = entries[name]
            if path is None:
                prefixes.append(f"<CommonPrefixes><Prefix>{out(name)}</Prefix></CommonPrefixes>")
                continue
            stat = path.stat()
            modified = datetime.fromtimestamp(stat.st_mtime, UTC)
            contents.append(
                f"<Contents><Key>{out(name)}</Key>"
                f"<LastModified>{_iso_date(modified)}</LastModified>"
                f"<ETag>{escape(_etag(path.read_bytes()))}</ETag><Size>{stat.st_size}</Size>"
                "<StorageClass>STANDARD</StorageClass></Contents>"
            )
        head = [
            f"<Name>{escape(self.bucket)}</Name><Prefix>{out(prefix)}</Prefix>",
            f"<MaxKeys>{max_keys}</MaxKeys>",
        ]
        if delimiter:
            head.append(f"<Delimiter>{out(delimiter)}</Delimiter>")
        if encode:
            head.append("<EncodingType>url</EncodingType>")
        head.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
        if v2:
            head.append(f"<KeyCount>{len(page)}</KeyCount>")
            if token := query.get("continuation-token"):
                head.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
            if "start-after" in query:
                head.append(f"<StartAfter>{out(query['start-after'])}</StartAfter>")
            if truncated:
                next_token = base64.urlsafe_b64encode(page[-1].encode()).decode()
                head.append(f"<NextContinuationToken>{next_token}</NextContinuationToken>")
        else:
            head.append(f"<Marker>{out(start)}</Marker>")
            if truncated and delimiter:
                head.append(f"<NextMarker>{out(page[-1])}</NextMarker>")
        self._reply(
            200,
            _xml(
                f'<ListBucketResult xmlns="{S3_NS}">'
                + "".join(head + contents + prefixes)
                + "</ListBucketResult>"
            ),
        )

    # --- objects -------------------------------------------------------------------------------

    def _object_path(self, bucket_dir: Path, key: str) -> Path:
        target = (bucket_dir / key).resolve()
        if bucket_dir.resolve() not in target.parents:
            raise S3Error(400, "InvalidKey")
        return target

    def _missing_object(self) -> S3Error:
        # As S3 and minio: an anonymous caller learns that a key is missing only if it may list.
        if self._allowed("s3:ListBucket"):
            return S3Error(404, "NoSuchKey")
        return S3Error(403, "AccessDenied")

    def put_object(self, _query, payload: bytes) -> None:
        target = self._object_path(self._bucket_dir(), self.key)
        self._write(target, payload)
        self._reply(200, extra={"ETag": _etag(payload)})

    @staticmethod
    def _write(target: Path, data: bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        scratch.write_bytes(data)
        os.replace(scratch, target)

    def copy_object(self, _query, _payload) -> None:
        target = self._object_path(self._bucket_dir(), self.key)
        source = unquote(self.headers["x-amz-copy-source"].split("?", 1)[0]).lstrip("/")
        source_bucket, _, source_key = source.partition("/")
        if not source_key:
            raise S3Error(400, "InvalidArgument", "Copy Source must mention the source bucket")
        if not self.authenticated:
            policy = load_policy(source_bucket) if bucket_exists(source_bucket) else None
            if not policy_allows_anonymous(policy, "s3:GetObject", source_bucket, source_key):
                raise S3Error(403, "AccessDenied")
        if not bucket_exists(source_bucket):
            raise S3Error(404, "NoSuchBucket")
        source_path = self._object_path(DATA / source_bucket, source_key)
        if not source_path.is_file():
            raise S3Error(404, "NoSuchKey")
        data = source_path.read_bytes()
        self._write(target, data)
        modified = datetime.fromtimestamp(target.stat().st_mtime, UTC)
        self._reply(
            200,
            _xml(
                f'<CopyObjectResult xmlns="{S3_NS}"><LastModified>{_iso_date(modified)}'
                f"</LastModified><ETag>{escape(_etag(data))}</ETag></CopyObjectResult>"
            ),
        )

    def delete_object(self, _query, _payload) -> None:
        bucket_dir = self._bucket_dir()
        target = self._object_path(bucket_dir, self.key)
        if target.is_file():
            target.unlink()
            # Drop the directories the key made, as minio leaves no empty prefixes behind.
            parent = target.parent
            while parent != bucket_dir.resolve() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent
        self._reply(204)

    def get_object(self, _query, _payload) -> None:
        target = self._object_path(self._bucket_dir(), self.key)
        if not target.is_file():
            raise self._missing_object()
        body = target.read_bytes()
        headers = {
            "ETag": _etag(body),
            "Last-Modified": _http_date(datetime.fromtimestamp(target.stat().st_mtime, UTC)),
            "Accept-Ranges": "bytes",
        }
        status = 200
        wanted = self.headers.get("Range")
        if wanted:
            first, last = self._byte_range(wanted, len(body))
            headers["Content-Range"] = f"bytes {first}-{last}/{len(body)}"
            body, status = body[first : last + 1], 206
        self._reply(status, body, "application/octet-stream", headers)

    @staticmethod
    def _byte_range(header: str, size: int) -> tuple[int, int]:
        """One `bytes=first-last`, `bytes=first-` or `bytes=-suffix` range, as S3 serves it."""
        match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
        if not match or match.groups() == ("", ""):
            raise S3Error(416, "InvalidRange")
        first, last = match.groups()
        if not first:
            first, last = max(0, size - int(last)), size - 1
        else:
            first, last = int(first), min(int(last) if last else size - 1, size - 1)
        if first >= size or first > last:
            raise S3Error(416, "InvalidRange")
        return first, last


if __name__ == "__main__":
    if sys.argv[1:2] != ["server"]:
        sys.exit("usage: s3_server.py server <dir> [--console-address :9001]")
    DATA.mkdir(parents=True, exist_ok=True)
    # minio shuts down on SIGTERM (docker stop); as PID 1 a process gets no default action
    # for it, so without this handler every stop would wait out the grace period.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ThreadingHTTPServer(("0.0.0.0", 9000), S3Handler).serve_forever()
