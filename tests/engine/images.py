"""Build the stand-in images locally (no registry here), cached by a hash of their files.

The base is a Debian bookworm root filesystem made with debootstrap and imported with
`docker import`; each stand-in is then a `docker build` on top of it, tagged with the image
references the program declares, so the program's own RemoteImage names resolve locally.
An image whose `dograh.standin.hash` label matches its files' hash is not rebuilt.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker

from components.settings import StackSettings

IMAGES_DIR = Path(__file__).parent / "images"
BASE_TAG = "dograh-standin/base:bookworm"
HASH_LABEL = "dograh.standin.hash"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ["python3", "ca-certificates"]

# A second api tag, for tests that change the api image, and one that never gets healthy.
NEXT_API_TAG = "dograhai/dograh-api:v1.30.0"
UNHEALTHY_API_TAG = "dograhai/dograh-api:v1.31.0-unhealthy"
# A second reference for every other service, the same stand-in, for image-change tests.
NEXT_TAGS = {
    "uiImage": "dograhai/dograh-ui:v1.30.0",
    "postgresImage": "pgvector/pgvector:0.8.1-pg17",
    "redisImage": "redis:7.4.3",
    "minioImage": "minio/minio:RELEASE.2025-05-24T17-08-30Z",
    "nginxImage": "nginx:1.28.0-alpine",
    "coturnImage": "coturn/coturn:4.8.1",
}


def _defaults() -> StackSettings:
    return StackSettings()


def standin_tags() -> dict[str, list[str]]:
    """Stand-in directory -> the references the program uses for that service."""
    defaults = _defaults()
    return {
        "postgres": [defaults.postgres_image, NEXT_TAGS["postgresImage"]],
        "redis": [defaults.redis_image, NEXT_TAGS["redisImage"]],
        "minio": [defaults.minio_image, NEXT_TAGS["minioImage"]],
        "api": [defaults.api_image, NEXT_API_TAG],
        "api-unhealthy": [UNHEALTHY_API_TAG],
        "ui": [defaults.ui_image, NEXT_TAGS["uiImage"]],
        "nginx": [defaults.nginx_image, NEXT_TAGS["nginxImage"]],
        "coturn": [defaults.coturn_image, NEXT_TAGS["coturnImage"]],
    }


def _files_hash(directory: Path, salt: str) -> str:
    digest = hashlib.sha256(salt.encode())
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(directory)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _base_hash() -> str:
    return hashlib.sha256(
        f"{DEBIAN_SUITE} {DEBIAN_MIRROR} {' '.join(BASE_PACKAGES)} minbase".encode()
    ).hexdigest()[:16]


def _label(client: docker.DockerClient, tag: str) -> str | None:
    try:
        return (client.images.get(tag).labels or {}).get(HASH_LABEL)
    except docker.errors.ImageNotFound:
        return None


@dataclass
class BuildReport:
    built: list[str]
    cached: list[str]
    seconds: float


def build_base(client: docker.DockerClient) -> bool:
    """Make the Debian base image unless it exists with this recipe; True when built."""
    wanted = _base_hash()
    if _label(client, BASE_TAG) == wanted:
        return False
    if not shutil.which("debootstrap"):
        raise RuntimeError("debootstrap is missing: scripts/test.sh engine installs it")
    with tempfile.TemporaryDirectory(prefix="dograh-rootfs-") as rootfs:
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                DEBIAN_SUITE,
                rootfs,
                DEBIAN_MIRROR,
            ],
            check=True,
            capture_output=True,
        )
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            tar.add(rootfs, arcname=".")
        archive.seek(0)
        client.api.import_image_from_data(
            archive.read(),
            repository=BASE_TAG.split(":")[0],
            tag=BASE_TAG.split(":")[1],
            changes=[f"LABEL {HASH_LABEL}={wanted}", 'CMD ["bash"]'],
        )
    return True


def build_standins(client: docker.DockerClient) -> BuildReport:
    started = time.monotonic()
    built, cached = [], []
    if build_base(client):
        built.append(BASE_TAG)
    hashes = {BASE_TAG: _base_hash()}
    for name, tags in standin_tags().items():
        directory = IMAGES_DIR / name
        # A stand-in built FROM another one is rebuilt when that one is.
        parent = (directory / "Dockerfile").read_text().split("FROM ", 1)[1].split()[0]
        wanted = _files_hash(directory, hashes[parent])
        hashes.update(dict.fromkeys(tags, wanted))
        if all(_label(client, tag) == wanted for tag in tags):
            cached.append(name)
            continue
        image, _logs = client.images.build(
            path=str(directory), tag=tags[0], labels={HASH_LABEL: wanted}, rm=True, forcerm=True
        )
        for tag in tags[1:]:
            image.tag(*tag.rsplit(":", 1))
        built.append(name)
    return BuildReport(built=built, cached=cached, seconds=time.monotonic() - started)
