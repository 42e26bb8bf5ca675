"""Object storage as the Dograh api stand-in sees it (test only; not Dograh's code).

Importing it validates the configuration the way the real api does at import (so uvicorn
fails to start): with ENABLE_AWS_S3=true S3_BUCKET is required; otherwise MINIO_PUBLIC_ENDPOINT
must carry an http:// or https:// scheme. ENVIRONMENT=test uses no storage at all.

`prepare_minio_bucket()` does what the real MinIO backend does when it starts: make sure the
bucket exists and open GET/PUT/DELETE on its objects and listing of it to anonymous users.
Any failure there is only logged.
"""

import json
import logging

import boto3
from botocore.config import Config

from api import constants as c

log = logging.getLogger("api.storage")

if c.ENVIRONMENT == "test":
    BACKEND = None
elif c.ENABLE_AWS_S3:
    if not c.S3_BUCKET:
        raise ValueError("S3_BUCKET environment variable is required when using S3 storage")
    BACKEND = "s3"
else:
    if not c.MINIO_PUBLIC_ENDPOINT.startswith(("http://", "https://")):
        raise ValueError(
            "MINIO_PUBLIC_ENDPOINT must include a scheme (http:// or https://), "
            f"got: {c.MINIO_PUBLIC_ENDPOINT!r}"
        )
    BACKEND = "minio"

BUCKET = {"s3": c.S3_BUCKET, "minio": c.MINIO_BUCKET}.get(BACKEND)


def s3_client(timeout: float = 10.0, attempts: int = 3):
    """A client for the storage in use, with the container's own credentials."""
    if BACKEND == "minio":
        scheme = "https" if c.MINIO_SECURE else "http"
        return boto3.client(
            "s3",
            endpoint_url=f"{scheme}://{c.MINIO_ENDPOINT}",
            aws_access_key_id=c.MINIO_ACCESS_KEY,
            aws_secret_access_key=c.MINIO_SECRET_KEY,
            region_name="us-east-1",
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"max_attempts": attempts},
            ),
        )
    options = {"connect_timeout": timeout, "read_timeout": timeout}
    options["retries"] = {"max_attempts": attempts}
    if c.S3_SIGNATURE_VERSION:
        options["signature_version"] = c.S3_SIGNATURE_VERSION
    if c.S3_ADDRESSING_STYLE:
        options["s3"] = {"addressing_style": c.S3_ADDRESSING_STYLE}
    # AWS credentials come from boto's usual chain (AWS_ACCESS_KEY_ID, ...).
    return boto3.client(
        "s3", region_name=c.S3_REGION, endpoint_url=c.S3_ENDPOINT_URL, config=Config(**options)
    )


def anonymous_policy(bucket: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": "*"},
                    "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                    "Resource": [f"arn:aws:s3:::{bucket}/*"],
                },
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": "*"},
                    "Action": ["s3:ListBucket"],
                    "Resource": [f"arn:aws:s3:::{bucket}"],
                },
            ],
        }
    )


def prepare_minio_bucket() -> None:
    if BACKEND != "minio":
        return
    log.info(
        "Initializing minio storage at %s (public: %s) with bucket '%s'",
        c.MINIO_ENDPOINT,
        c.MINIO_PUBLIC_ENDPOINT,
        BUCKET,
    )
    try:
        client = s3_client(timeout=5.0, attempts=2)
        try:
            client.head_bucket(Bucket=BUCKET)
        except client.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                raise
            client.create_bucket(Bucket=BUCKET)
        client.put_bucket_policy(Bucket=BUCKET, Policy=anonymous_policy(BUCKET))
    except Exception as error:  # the real api only logs this too
        log.debug("Bucket setup note: %s: %s", type(error).__name__, error)
