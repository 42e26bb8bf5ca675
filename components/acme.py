"""The ACME client beside nginx (tlsMode=letsEncrypt).

certbot, in its own container, gets the gateway's certificate over HTTP-01 (nginx serves the
challenge files from the shared webroot volume) and renews it when due; nginx's start script
installs each new certificate with a graceful reload (components/gateway.py). The account and
the certificates live on the gateway's protected certificate volume, so a new client or a new
gateway never asks the CA again for a certificate that is still valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_command as command
import pulumi_docker as docker

from components.container import ContainerSpec, Placement, declare_container, mounted
from components.gateway import ACME_WEBROOT, ISSUED_CERTIFICATES_PATH
from components.rollout import docker_cli_environment

# certbot's configuration directory (account, certificates, renewal settings), mounted where
# the gateway reads it too: certbot's live/ links are relative, but the paths must agree.
CERTIFICATES_PATH = ISSUED_CERTIFICATES_PATH
CLIENT_SCRIPT_PATH = "/usr/local/bin/dograh-acme-client"
CLIENT_SCRIPT = (Path(__file__).parent / "templates" / "acme-client.sh").read_text()
SERVER_CA_PATH = "/etc/dograh/acme-server-ca.pem"
# certbot's own advice: check twice a day; a certificate is renewed only when due.
CHECK_SECONDS = 12 * 60 * 60
REPORT_PREFIX = "dograh-acme: "
NOT_ISSUED = "not issued"
# How long pulumi up waits for the client's first outcome before it goes on without it.
FIRST_REPORT_TIMEOUT_SECONDS = 180

# Runs where `pulumi up` runs: the client's first outcome, from its log, as this step's stdout.
FIRST_REPORT_SCRIPT = f"""set -u
waited=0
while [ "$waited" -lt {FIRST_REPORT_TIMEOUT_SECONDS} ]; do
  line=$(docker logs "$ACME_CONTAINER" 2>&1 | grep '^{REPORT_PREFIX}' | head -n 1)
  if [ -n "$line" ]; then
    echo "${{line#{REPORT_PREFIX}}}"
    exit 0
  fi
  sleep 1
  waited=$((waited + 1))
done
echo "no outcome from the ACME client within {FIRST_REPORT_TIMEOUT_SECONDS}s: see" \\
  "docker logs $ACME_CONTAINER"
"""


def issued_certificate_dir(domain: str) -> str:
    """Where certbot keeps the current certificate for `domain` (its `live/` lineage)."""
    return f"{CERTIFICATES_PATH}/live/{domain}"


def first_report_needs_attention(report: str | None) -> bool:
    """True when the client's first outcome is a failure, or there was none in time."""
    return report is not None and (NOT_ISSUED in report or report.startswith("no outcome"))


@dataclass(frozen=True, kw_only=True)
class AcmeClientArgs:
    placement: Placement
    image: str
    domain: str
    email: str
    server: str
    # A private ACME server's HTTPS CA, trusted through REQUESTS_CA_BUNDLE.
    server_ca_certificate: str | None
    retry_seconds: int
    webroot: docker.Volume
    certificates: docker.Volume
    # The gateway: the challenge is answered through it, so it runs first.
    gateway: pulumi.Resource
    docker_host: str | None = None


class AcmeClient(pulumi.ComponentResource):
    """certbot in a loop, and the first outcome reported by `pulumi up`."""

    first_report: pulumi.Output[str]

    def __init__(self, name: str, args: AcmeClientArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dograh:index:AcmeClient", name, None, opts)
        envs: dict[str, pulumi.Input[str]] = {
            "ACME_DOMAIN": args.domain,
            "ACME_EMAIL": args.email,
            "ACME_SERVER": args.server,
            "ACME_WEBROOT": ACME_WEBROOT,
            "ACME_CHECK_SECONDS": str(CHECK_SECONDS),
            "ACME_RETRY_SECONDS": str(args.retry_seconds),
        }
        uploads = [
            docker.ContainerUploadArgs(
                file=CLIENT_SCRIPT_PATH, content=CLIENT_SCRIPT, executable=True
            )
        ]
        if args.server_ca_certificate is not None:
            envs["REQUESTS_CA_BUNDLE"] = SERVER_CA_PATH
            uploads.append(
                docker.ContainerUploadArgs(file=SERVER_CA_PATH, content=args.server_ca_certificate)
            )
        client = declare_container(
            self,
            name,
            ContainerSpec(
                service="acme",
                image=args.image,
                alias="acme",
                # certbot's image runs `certbot` as its entrypoint; the loop is a shell script.
                entrypoint=["sh"],
                command=[CLIENT_SCRIPT_PATH],
                envs=envs,
                uploads=uploads,
                volumes=[
                    mounted(args.certificates, CERTIFICATES_PATH),
                    mounted(args.webroot, ACME_WEBROOT),
                ],
            ),
            args.placement,
            depends_on=[args.gateway],
        )
        report = command.local.Command(
            f"{name}-first-report",
            create=FIRST_REPORT_SCRIPT,
            environment={"ACME_CONTAINER": client.name, **docker_cli_environment(args.docker_host)},
            triggers=[client.id],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.first_report = report.stdout
        self.first_report.apply(self._warn_when_not_issued)
        self.register_outputs({"first_report": self.first_report})

    def _warn_when_not_issued(self, report: str | None) -> None:
        if first_report_needs_attention(report):
            pulumi.log.warn(f"Let's Encrypt: {report}", resource=self)
