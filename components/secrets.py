"""Generated secrets: created once by pulumi-random, kept in state, never regenerated.

A value set with `pulumi config set --secret <key>` wins over the generated one. The random
resources are declared whether or not an override is set, so removing an override later falls
back to the same generated value instead of minting a new one.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_random as random

from components.config import SecretSettings

# config key -> the child resource's role. Alphanumeric only: these go into URLs and env files.
GENERATED_SECRETS = {
    "postgresPassword": "postgres-password",
    "redisPassword": "redis-password",
    "minioRootPassword": "minio-root-password",
    "ossJwtSecret": "oss-jwt-secret",
    "turnSecret": "turn-secret",
    "devopsSecret": "devops-secret",
    "telephonyWsTokenSecret": "telephony-ws-token-secret",
}
SECRET_LENGTH = 40


@dataclass(frozen=True, kw_only=True)
class StackCredentialsArgs:
    overrides: SecretSettings


class StackCredentials(pulumi.ComponentResource):
    postgres_password: pulumi.Output[str]
    redis_password: pulumi.Output[str]
    minio_root_password: pulumi.Output[str]
    oss_jwt_secret: pulumi.Output[str]
    turn_secret: pulumi.Output[str]
    devops_secret: pulumi.Output[str]
    telephony_ws_token_secret: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: StackCredentialsArgs,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("dograh:index:StackCredentials", name, None, opts)
        values: dict[str, pulumi.Output[str]] = {}
        for key, role in GENERATED_SECRETS.items():
            generated = random.RandomPassword(
                f"{name}-{role}",
                length=SECRET_LENGTH,
                special=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            override = args.overrides.get(key)
            values[key] = pulumi.Output.secret(
                override if override is not None else generated.result
            )
        self.postgres_password = values["postgresPassword"]
        self.redis_password = values["redisPassword"]
        self.minio_root_password = values["minioRootPassword"]
        self.oss_jwt_secret = values["ossJwtSecret"]
        self.turn_secret = values["turnSecret"]
        self.devops_secret = values["devopsSecret"]
        self.telephony_ws_token_secret = values["telephonyWsTokenSecret"]
        self.register_outputs(
            {
                "postgres_password": self.postgres_password,
                "redis_password": self.redis_password,
                "minio_root_password": self.minio_root_password,
                "oss_jwt_secret": self.oss_jwt_secret,
                "turn_secret": self.turn_secret,
                "devops_secret": self.devops_secret,
                "telephony_ws_token_secret": self.telephony_ws_token_secret,
            }
        )
