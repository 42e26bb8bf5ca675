"""A small S3-compatible server standing in for minio: `s3_server.py server <dir> [...]`.

Buckets are directories under <dir>, objects are files. Every S3 request must carry an AWS
Signature Version 4 header signed with MINIO_ROOT_USER / MINIO_ROOT_PASSWORD, as minio checks.
Supported: ListBuckets, CreateBucket, HeadBucket, ListObjectsV2, Put/Get/Head/DeleteObject,
and GET /minio/health/live without credentials.
"""

import hashlib
import hmac
import os
import signal
import sys
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.sax.saxutils import escape

ACCESS_KEY = os.environ["MINIO_ROOT_USER"]
SECRET_KEY = os.environ["MINIO_ROOT_PASSWORD"]
DATA = Path(sys.argv[2] if len(sys.argv) > 2 else "/data")


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _xml(body: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>' + body).encode()


class S3Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args) -> None:
        pass

    def _reply(
        self, status: int, body: bytes = b"", content_type: str = "application/xml", extra=None
    ):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str) -> None:
        self._reply(status, _xml(f"<Error><Code>{code}</Code></Error>"))

    def _authorized(self, payload: bytes) -> str | None:
        """None when the SigV4 signature checks out; else the S3 error code."""
        header = self.headers.get("Authorization", "")
        if not header.startswith("AWS4-HMAC-SHA256 "):
            return "AccessDenied"
        fields = dict(
            part.strip().split("=", 1) for part in header[len("AWS4-HMAC-SHA256 ") :].split(",")
        )
        access_key, date, region, service, _ = fields["Credential"].split("/")
        if access_key != ACCESS_KEY:
            return "InvalidAccessKeyId"
        signed_headers = fields["SignedHeaders"].split(";")
        payload_hash = self.headers.get("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
        if (
            payload_hash != "UNSIGNED-PAYLOAD"
            and payload_hash != hashlib.sha256(payload).hexdigest()
        ):
            return "XAmzContentSHA256Mismatch"
        url = urlsplit(self.path)
        query = "&".join(
            f"{quote(key, safe='-_.~')}={quote(value, safe='-_.~')}"
            for key, value in sorted(parse_qsl(url.query, keep_blank_values=True))
        )
        headers = "".join(
            f"{name}:{' '.join((self.headers.get(name) or '').split())}\n"
            for name in signed_headers
        )
        canonical = "\n".join(
            [self.command, url.path or "/", query, headers, fields["SignedHeaders"], payload_hash]
        )
        scope = f"{date}/{region}/{service}/aws4_request"
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256",
                self.headers["x-amz-date"],
                scope,
                hashlib.sha256(canonical.encode()).hexdigest(),
            ]
        )
        key = _hmac(
            _hmac(_hmac(_hmac(("AWS4" + SECRET_KEY).encode(), date), region), service),
            "aws4_request",
        )
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        return (
            None if hmac.compare_digest(expected, fields["Signature"]) else "SignatureDoesNotMatch"
        )

    def _handle(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/minio/health/live":
            self._reply(200, b"", "text/plain")
            return
        length = int(self.headers.get("Content-Length", "0"))
        payload = self.rfile.read(length) if length else b""
        problem = self._authorized(payload)
        if problem:
            self._error(403, problem)
            return
        parts = unquote(url.path).lstrip("/").split("/", 1)
        bucket, key = parts[0], (parts[1] if len(parts) > 1 else "")
        if not bucket:
            names = sorted(p.name for p in DATA.iterdir() if p.is_dir())
            items = "".join(f"<Bucket><Name>{escape(n)}</Name></Bucket>" for n in names)
            self._reply(
                200,
                _xml(
                    f"<ListAllMyBucketsResult><Buckets>{items}</Buckets></ListAllMyBucketsResult>"
                ),
            )
            return
        bucket_dir = DATA / bucket
        if not key:
            if self.command == "PUT":
                if bucket_dir.exists():
                    self._error(409, "BucketAlreadyOwnedByYou")
                else:
                    bucket_dir.mkdir(parents=True)
                    self._reply(200, extra={"Location": f"/{bucket}"})
            elif not bucket_dir.is_dir():
                self._error(404, "NoSuchBucket")
            elif self.command == "HEAD":
                self._reply(200)
            else:
                keys = sorted(
                    str(p.relative_to(bucket_dir)) for p in bucket_dir.rglob("*") if p.is_file()
                )
                items = "".join(f"<Contents><Key>{escape(k)}</Key></Contents>" for k in keys)
                self._reply(
                    200,
                    _xml(
                        f"<ListBucketResult><Name>{escape(bucket)}</Name><KeyCount>{len(keys)}</KeyCount>{items}</ListBucketResult>"
                    ),
                )
            return
        if not bucket_dir.is_dir():
            self._error(404, "NoSuchBucket")
            return
        target = (bucket_dir / key).resolve()
        if bucket_dir.resolve() not in target.parents:
            self._error(400, "InvalidKey")
            return
        if self.command == "PUT":
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(payload)
            self._reply(200, extra={"ETag": f'"{hashlib.md5(payload).hexdigest()}"'})
        elif self.command == "DELETE":
            target.unlink(missing_ok=True)
            self._reply(204)
        elif not target.is_file():
            self._error(404, "NoSuchKey")
        else:
            body = target.read_bytes()
            modified = datetime.fromtimestamp(target.stat().st_mtime, UTC)
            self._reply(
                200,
                body,
                "application/octet-stream",
                {
                    "ETag": f'"{hashlib.md5(body).hexdigest()}"',
                    "Last-Modified": modified.strftime("%a, %d %b %Y %H:%M:%S GMT"),
                },
            )

    do_GET = do_PUT = do_HEAD = do_DELETE = _handle


if __name__ == "__main__":
    if sys.argv[1:2] != ["server"]:
        sys.exit("usage: s3_server.py server <dir> [--console-address :9001]")
    DATA.mkdir(parents=True, exist_ok=True)
    # minio shuts down on SIGTERM (docker stop); as PID 1 a process gets no default action
    # for it, so without this handler every stop would wait out the grace period.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ThreadingHTTPServer(("0.0.0.0", 9000), S3Handler).serve_forever()
