"""The gateway's TLS certificate: self-signed once by pulumi-tls, or the operator's own."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

# Ten years: a self-signed certificate is for first boot and private use; replace it with a
# real one (tlsMode=provided) for public traffic.
SELF_SIGNED_VALIDITY_HOURS = 10 * 365 * 24


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


@dataclass(frozen=True, kw_only=True)
class GatewayCertificateArgs:
    public_host: str
    # Both set for tlsMode=provided; both None for a generated self-signed certificate.
    provided_certificate: pulumi.Input[str] | None = None
    provided_private_key: pulumi.Input[str] | None = None


class GatewayCertificate(pulumi.ComponentResource):
    certificate_pem: pulumi.Output[str]
    private_key_pem: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: GatewayCertificateArgs,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("dograh:index:GatewayCertificate", name, None, opts)
        # Declared whatever tlsMode says, like the generated passwords: switching to a provided
        # certificate and back serves the same self-signed one, not a new one.
        key = tls.PrivateKey(
            f"{name}-key",
            algorithm="ECDSA",
            ecdsa_curve="P256",
            opts=pulumi.ResourceOptions(parent=self),
        )
        host_is_ip = _is_ip(args.public_host)
        certificate = tls.SelfSignedCert(
            f"{name}-self-signed",
            private_key_pem=key.private_key_pem,
            subject=tls.SelfSignedCertSubjectArgs(common_name=args.public_host),
            dns_names=None if host_is_ip else [args.public_host],
            ip_addresses=[args.public_host] if host_is_ip else None,
            validity_period_hours=SELF_SIGNED_VALIDITY_HOURS,
            allowed_uses=["key_encipherment", "digital_signature", "server_auth"],
            opts=pulumi.ResourceOptions(parent=self),
        )
        if args.provided_certificate is not None and args.provided_private_key is not None:
            self.certificate_pem = pulumi.Output.from_input(args.provided_certificate)
            self.private_key_pem = pulumi.Output.secret(args.provided_private_key)
        else:
            self.certificate_pem = certificate.cert_pem
            self.private_key_pem = pulumi.Output.secret(key.private_key_pem)
        self.register_outputs(
            {
                "certificate_pem": self.certificate_pem,
                "private_key_pem": self.private_key_pem,
            }
        )
