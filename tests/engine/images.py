"""Build the stand-in images locally (no registry here), cached by a hash of their files.

The base is a Debian bookworm root filesystem made with debootstrap and imported with
`docker import`; each stand-in is then a `docker build` on top of it, tagged with the image
references the program declares, so the program's own RemoteImage names resolve locally.
An image whose `dograh.standin.hash` label matches its files' hash is not rebuilt.
"""

from __future__ import annotations

import hashlib
import io
import os
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

# The api stand-in is built once per Dograh release it imitates (build arg DOGRAH_RELEASE):
# the default, a next one for image-change tests, and older ones whose start script ignores
# the singleton switches (1.44.0) or has no active-calls endpoint (1.39.0).
NEXT_API_TAG = "dograhai/dograh-api:1.46.0"
SWITCHES_IGNORED_API_TAG = "dograhai/dograh-api:1.44.0"
NO_DRAIN_API_TAG = "dograhai/dograh-api:1.39.0"
# Dograh also tags each build with its short commit sha: such a reference needs apiRelease.
COMMIT_API_TAG = "dograhai/dograh-api:0a1b2c3d"
# Test only: the next release's stand-in built never to get healthy (a rollout that fails).
UNHEALTHY_API_TAG = "dograhai/dograh-api:1.46.1"
# A second reference for every other service, the same stand-in, for image-change tests.
NEXT_TAGS = {
    "uiImage": "dograhai/dograh-ui:1.46.0",
    "postgresImage": "pgvector/pgvector:0.8.1-pg17",
    "redisImage": "redis:7.4.3",
    "minioImage": "minio/minio:RELEASE.2025-05-24T17-08-30Z",
    "nginxImage": "nginx:1.28.0-alpine",
    "coturnImage": "coturn/coturn:4.8.1-r0",
    "acmeClientImage": "certbot/certbot:v5.5.0",
}


def _defaults() -> StackSettings:
    return StackSettings()


@dataclass(frozen=True)
class StandinBuild:
    directory: str
    tags: list[str]
    build_args: dict[str, str]


def _release_of(tag: str) -> str:
    return tag.rsplit(":", 1)[1]


def standin_builds() -> list[StandinBuild]:
    """What to build, in order (a stand-in built FROM another comes after it)."""
    defaults = _defaults()
    api_releases = [
        [defaults.api_image],
        [NEXT_API_TAG, COMMIT_API_TAG],
        [SWITCHES_IGNORED_API_TAG],
        [NO_DRAIN_API_TAG],
    ]
    return [
        StandinBuild("postgres", [defaults.postgres_image, NEXT_TAGS["postgresImage"]], {}),
        StandinBuild("redis", [defaults.redis_image, NEXT_TAGS["redisImage"]], {}),
        StandinBuild("minio", [defaults.minio_image, NEXT_TAGS["minioImage"]], {}),
        *(
            StandinBuild("api", tags, {"DOGRAH_RELEASE": _release_of(tags[0])})
            for tags in api_releases
        ),
        StandinBuild("api-unhealthy", [UNHEALTHY_API_TAG], {}),
        StandinBuild("ui", [defaults.ui_image, NEXT_TAGS["uiImage"]], {}),
        StandinBuild("nginx", [defaults.nginx_image, NEXT_TAGS["nginxImage"]], {}),
        StandinBuild("coturn", [defaults.coturn_image, NEXT_TAGS["coturnImage"]], {}),
        StandinBuild("certbot", [defaults.acme_client_image, NEXT_TAGS["acmeClientImage"]], {}),
    ]


def standin_tags() -> dict[str, list[str]]:
    """Stand-in directory -> the references the program uses for that service."""
    tags: dict[str, list[str]] = {}
    for build in standin_builds():
        tags.setdefault(build.directory, []).extend(build.tags)
    return tags


# Images to test instead of the stand-ins (Dograh's real ones, loaded in the engine), as
# settings: the harness declares the stack with them, and they are never overwritten here.
REAL_IMAGES = {
    key: value
    for key, value in (
        ("apiImage", os.environ.get("DOGRAH_TEST_API_IMAGE")),
        ("apiRelease", os.environ.get("DOGRAH_TEST_API_RELEASE")),
        ("uiImage", os.environ.get("DOGRAH_TEST_UI_IMAGE")),
    )
    if value
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
    real = {REAL_IMAGES.get("apiImage"), REAL_IMAGES.get("uiImage")}
    for build in standin_builds():
        directory = IMAGES_DIR / build.directory
        tags = [tag for tag in build.tags if tag not in real]
        # A stand-in built FROM another one is rebuilt when that one is.
        dockerfile = (directory / "Dockerfile").read_text()
        parent = next(
            line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM ")
        )
        salt = hashes.get(parent, parent) + repr(sorted(build.build_args.items()))
        wanted = _files_hash(directory, salt)
        hashes.update(dict.fromkeys(build.tags, wanted))
        label = f"{build.directory} {' '.join(build.tags)}"
        if not tags or all(_label(client, tag) == wanted for tag in tags):
            cached.append(label)
            continue
        image, _logs = client.images.build(
            path=str(directory),
            tag=tags[0],
            buildargs=build.build_args or None,
            labels={HASH_LABEL: wanted},
            rm=True,
            forcerm=True,
        )
        for tag in tags[1:]:
            image.tag(*tag.rsplit(":", 1))
        built.append(label)
    return BuildReport(built=built, cached=cached, seconds=time.monotonic() - started)
