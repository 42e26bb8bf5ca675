"""Dograh on a Docker host. Wiring only: settings in, one stack component, exports out."""

import pulumi

from components.config import load_settings
from components.stack import DograhStack, DograhStackArgs

loaded = load_settings()
stack = DograhStack(
    "dograh",
    DograhStackArgs(loaded=loaded, name_prefix=f"dograh-{pulumi.get_stack()}"),
)

pulumi.export("publicUrl", stack.public_url)
pulumi.export("fastapiWorkers", stack.fastapi_workers)
pulumi.export("apiUpstream", stack.api_upstream)
pulumi.export("nginxConfig", stack.nginx_config)
if stack.certificate_status is not None:
    # tlsMode=letsEncrypt: issued (by whom, until when), or why not yet.
    pulumi.export("certificateStatus", stack.certificate_status)
# Secrets: shown only with `pulumi stack output --show-secrets`.
pulumi.export("ossJwtSecret", stack.credentials.oss_jwt_secret)
pulumi.export("devopsSecret", stack.credentials.devops_secret)
pulumi.export("postgresPassword", stack.credentials.postgres_password)
pulumi.export("redisPassword", stack.credentials.redis_password)
pulumi.export("minioRootPassword", stack.credentials.minio_root_password)
pulumi.export("turnSecret", stack.credentials.turn_secret)
