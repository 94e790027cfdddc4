"""Client-side OPC UA security: our certificate, the server trust list, user name and password.

Trust is never implicit. With a secure policy the server's certificate must be on the
endpoint's trust list (the exact certificate, as OPC UA deployments with self-signed
application certificates do it) or be issued by a CA certificate on it; otherwise the
session is refused in CreateSession, *before* ActivateSession sends our password.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from pathlib import Path

from asyncua import Client, ua
from asyncua.common.utils import ServiceError
from asyncua.crypto import security_policies, uacrypto
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from telemetry.acquisition.spec import EndpointSpec

_CERT_SUFFIXES = (".pem", ".der", ".crt", ".cer")


class ServerTrustList:
    """Validator for the server certificate, installed as ``Client.certificate_validator``.

    Accepts a certificate that is on the list, or that a certificate on the list issued
    (signature verified), and that is inside its validity period. Anything else raises
    ``ServiceError(BadCertificateUntrusted)`` (or ``...TimeInvalid``).
    """

    def __init__(self, certificates: Sequence[x509.Certificate]) -> None:
        self._trusted = {c.public_bytes(serialization.Encoding.DER): c for c in certificates}

    @classmethod
    async def load(cls, locations: Sequence[Path]) -> ServerTrustList:
        """Read every certificate file given, or found directly inside a folder given."""
        certs: list[x509.Certificate] = []
        for location in map(Path, locations):
            files = sorted(location.iterdir()) if location.is_dir() else [location]
            for file in files:
                if file.suffix.lower() in _CERT_SUFFIXES:
                    certs.append(await uacrypto.load_certificate(file))
        return cls(certs)

    def __len__(self) -> int:
        return len(self._trusted)

    def is_trusted(self, cert: x509.Certificate) -> bool:
        if cert.public_bytes(serialization.Encoding.DER) in self._trusted:
            return True
        for ca in self._trusted.values():
            if ca.subject != cert.issuer:
                continue
            try:
                cert.verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return True
        return False

    async def __call__(self, cert: x509.Certificate, app_description: ua.ApplicationDescription) -> None:
        if not self.is_trusted(cert):
            raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)
        now = _dt.datetime.now(_dt.timezone.utc)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise ServiceError(ua.StatusCodes.BadCertificateTimeInvalid)


def _policy_class(name: str) -> type[security_policies.SecurityPolicy]:
    policy = getattr(security_policies, f"SecurityPolicy{name}", None)
    if policy is None:
        raise ValueError(f"unknown OPC UA security policy {name!r}")
    return policy  # type: ignore[no-any-return]


async def apply_security(client: Client, spec: EndpointSpec) -> None:
    """Configure a fresh, unconnected ``client`` for ``spec``: policy, certificates, trust, user.

    With a secure policy this opens one short unsecured channel to fetch the server's
    endpoints (that is how OPC UA learns the server certificate); the certificate is then
    checked against the trust list during CreateSession.
    """
    client.application_uri = spec.application_uri
    client.name = client.description = f"Fermentry acquisition ({spec.name})"
    if spec.username is not None:
        client.set_user(spec.username)
        client.set_password(spec.password or "")
    if spec.security_policy == "None":
        return
    assert spec.client_cert is not None and spec.client_key is not None  # checked by EndpointSpec
    client.certificate_validator = await ServerTrustList.load(spec.trusted_server_certs)
    await client.set_security(
        _policy_class(spec.security_policy),
        str(spec.client_cert),
        str(spec.client_key),
        mode=getattr(ua.MessageSecurityMode, spec.security_mode),
    )
