"""Stand-in configuration for the Dograh api stand-in (test only; not Dograh's code).

Like Dograh's api/constants.py, importing this fails (KeyError) when DATABASE_URL or REDIS_URL
is unset, so every process of the image (alembic, uvicorn, arq, the orchestrator, the ARI
manager) refuses to start without them. The release the image was built for is read from
/app/.standin-release (written by the Dockerfile from the DOGRAH_RELEASE build argument).
"""

import os
from pathlib import Path

RELEASE_FILE = Path(__file__).resolve().parent.parent / ".standin-release"
APP_VERSION = RELEASE_FILE.read_text().strip()
RELEASE = tuple(int(part) for part in APP_VERSION.split("."))


def since(version: str) -> bool:
    """True when the image's release is `version` or later."""
    return tuple(int(part) for part in version.split(".")) <= RELEASE


def _flag(name: str, default: str = "false") -> bool:
    return os.getenv(name, default).lower() == "true"


DATABASE_URL = os.environ["DATABASE_URL"]
REDIS_URL = os.environ["REDIS_URL"]

ENVIRONMENT = os.getenv("ENVIRONMENT", "local")
LOG_LEVEL = os.getenv("LOG_LEVEL", "DEBUG").upper()

# PUBLIC_BASE_URL (a fallback for the explicit endpoints) is read from 1.39.0 on.
PUBLIC_BASE_URL = (os.getenv("PUBLIC_BASE_URL") or None) if since("1.39.0") else None
BACKEND_API_ENDPOINT = (
    os.getenv("BACKEND_API_ENDPOINT") or PUBLIC_BASE_URL or "http://localhost:8000"
)
DEPLOYMENT_MODE = os.getenv("DEPLOYMENT_MODE", "oss")
AUTH_PROVIDER = os.getenv("AUTH_PROVIDER", "local")
STACK_AUTH_PROJECT_ID = os.getenv("STACK_AUTH_PROJECT_ID")
STACK_PUBLISHABLE_CLIENT_KEY = os.getenv("STACK_PUBLISHABLE_CLIENT_KEY")
# ENABLE_SIGNUP from 1.42.0; DOGRAH_DEVOPS_SECRET from 1.40.0; ENABLE_COTURN from 1.44.0.
ENABLE_SIGNUP = _flag("ENABLE_SIGNUP", "true")
DOGRAH_DEVOPS_SECRET = os.getenv("DOGRAH_DEVOPS_SECRET") or None
TURN_SECRET = os.getenv("TURN_SECRET")
ENABLE_COTURN = _flag("ENABLE_COTURN")
FORCE_TURN_RELAY = _flag("FORCE_TURN_RELAY")

ENABLE_AWS_S3 = _flag("ENABLE_AWS_S3")
MINIO_ENDPOINT = os.getenv("MINIO_ENDPOINT", "localhost:9000")
MINIO_PUBLIC_ENDPOINT = (
    os.getenv("MINIO_PUBLIC_ENDPOINT") or PUBLIC_BASE_URL or "http://localhost:9000"
)
MINIO_ACCESS_KEY = os.getenv("MINIO_ACCESS_KEY", "minioadmin")
MINIO_SECRET_KEY = os.getenv("MINIO_SECRET_KEY", "minioadmin")
MINIO_BUCKET = os.getenv("MINIO_BUCKET", "voice-audio")
MINIO_SECURE = _flag("MINIO_SECURE")
S3_BUCKET = os.getenv("S3_BUCKET")
S3_REGION = os.getenv("S3_REGION", "us-east-1")
# A custom S3 endpoint (and its signing/addressing options) is honoured from 1.38.0 on;
# earlier releases talk to AWS whatever S3_ENDPOINT_URL says.
S3_ENDPOINT_URL = os.getenv("S3_ENDPOINT_URL") if since("1.38.0") else None
S3_SIGNATURE_VERSION = os.getenv("S3_SIGNATURE_VERSION") if since("1.38.0") else None
S3_ADDRESSING_STYLE = os.getenv("S3_ADDRESSING_STYLE") if since("1.38.0") else None
