"""OPC UA security for the simulator: certificates, trust list, user names and passwords.

A plant network typically runs Basic256Sha256 (or the newer Aes128Sha256RsaOaep /
Aes256Sha256RsaPss) with SignAndEncrypt, trusts only client certificates an engineer put
on the server's trust list, and asks for a user name and password on top. The simulator
does the same, so the service's acquisition is tested against a server as strict as a
real one. :func:`generate_certificate` makes self-signed application certificates for
tests and demos.
"""

from __future__ import annotations

import datetime as _dt
import hmac
import ipaddress
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asyncua import ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.common.utils import ServiceError
from asyncua.crypto import uacrypto
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

if TYPE_CHECKING:
    from asyncua import Server
    from asyncua.server.internal_server import InternalServer

# the policies a user may name; the older Basic128Rsa15 / Basic256 are deprecated by the spec
POLICY_NAMES: tuple[str, ...] = (
    "None",
    "Basic256Sha256_Sign",
    "Basic256Sha256_SignAndEncrypt",
    "Aes128Sha256RsaOaep_Sign",
    "Aes128Sha256RsaOaep_SignAndEncrypt",
    "Aes256Sha256RsaPss_Sign",
    "Aes256Sha256RsaPss_SignAndEncrypt",
)


@dataclass(frozen=True)
class SecurityConfig:
    """How an endpoint is secured.

    ``policies`` are names from :data:`POLICY_NAMES` (``"None"`` adds an unsecured
    endpoint next to the secure ones). ``trusted_client_certificates`` are certificate
    files (PEM or DER) or folders of them; a client whose certificate is not among them
    is refused at session creation. ``users`` maps user name to password; when it is
    non-empty anonymous sessions are refused unless ``allow_anonymous`` is set.
    """

    certificate: Path
    private_key: Path
    policies: tuple[str, ...] = ("Basic256Sha256_SignAndEncrypt",)
    trusted_client_certificates: tuple[Path, ...] = ()
    users: Mapping[str, str] = field(default_factory=dict)
    allow_anonymous: bool | None = None  # None: allowed only when no users are configured

    def __post_init__(self) -> None:
        unknown = [p for p in self.policies if p not in POLICY_NAMES]
        if unknown or not self.policies:
            raise ValueError(f"unknown security policies {unknown or self.policies}; allowed: {', '.join(POLICY_NAMES)}")

    @property
    def anonymous_allowed(self) -> bool:
        return (not self.users) if self.allow_anonymous is None else self.allow_anonymous


class _PasswordUserManager:
    """asyncua user manager: fixed user/password table, anonymous optional."""

    def __init__(self, users: Mapping[str, str], allow_anonymous: bool) -> None:
        self._users = dict(users)
        self._allow_anonymous = allow_anonymous

    def get_user(
        self,
        iserver: InternalServer,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username is None:
            return User(role=UserRole.User) if self._allow_anonymous else None
        expected = self._users.get(username)
        # compare_digest even for unknown users so timing does not reveal which names exist
        ok = hmac.compare_digest((expected or "\0").encode(), (password or "").encode())
        return User(role=UserRole.User, name=username) if ok and expected is not None else None


async def apply_security(server: Server, config: SecurityConfig) -> None:
    """Configure an initialised (not yet started) asyncua ``Server`` from ``config``."""
    await server.load_certificate(str(config.certificate), format=_file_format(config.certificate))
    await server.load_private_key(str(config.private_key), format=_file_format(config.private_key))
    server.set_security_policy([ua.SecurityPolicyType[_policy_enum_name(p)] for p in config.policies])
    tokens: list[type] = [ua.UserNameIdentityToken] if config.users else []
    if config.anonymous_allowed:
        tokens.append(ua.AnonymousIdentityToken)
    server.set_identity_tokens(tokens)
    server.iserver.set_user_manager(_PasswordUserManager(config.users, config.anonymous_allowed))
    server.set_certificate_validator(await _TrustList.load(config.trusted_client_certificates))  # type: ignore[arg-type]


class _TrustList:
    """Certificate validator: the client's certificate itself must be on the trust list.

    OPC UA deployments mostly use self-signed application certificates that an engineer
    copies into the server's trusted folder; trust therefore means "this exact
    certificate", and an empty list refuses every client. Validity period and the
    application URI (SubjectAltName vs. the session's ApplicationUri) are checked too.
    """

    def __init__(self, trusted_der: frozenset[bytes]) -> None:
        self._trusted_der = trusted_der

    @classmethod
    async def load(cls, locations: Sequence[Path]) -> _TrustList:
        trusted: set[bytes] = set()
        for location in map(Path, locations):
            files = sorted(location.iterdir()) if location.is_dir() else [location]
            for file in files:
                if file.suffix.lower() in (".pem", ".der", ".crt", ".cer"):
                    cert = await uacrypto.load_certificate(file, _file_format(file))
                    trusted.add(cert.public_bytes(serialization.Encoding.DER))
        return cls(frozenset(trusted))

    async def __call__(self, cert: x509.Certificate, app_description: ua.ApplicationDescription) -> None:
        if cert.public_bytes(serialization.Encoding.DER) not in self._trusted_der:
            raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)
        now = _dt.datetime.now(_dt.timezone.utc)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise ServiceError(ua.StatusCodes.BadCertificateTimeInvalid)
        try:
            uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            cert_uris = uris.get_values_for_type(x509.UniformResourceIdentifier)
        except x509.ExtensionNotFound:
            cert_uris = []
        if app_description.ApplicationUri not in cert_uris:
            raise ServiceError(ua.StatusCodes.BadCertificateUriInvalid)


def _file_format(path: Path) -> str:
    """asyncua guesses PEM vs DER from the file suffix; look at the content instead."""
    with open(path, "rb") as f:
        return "pem" if f.read(64).lstrip().startswith(b"-----BEGIN") else "der"


def _policy_enum_name(name: str) -> str:
    return "NoSecurity" if name == "None" else name


def generate_certificate(
    path_cert: str | Path,
    path_key: str | Path,
    common_name: str,
    application_uri: str,
    *,
    hostnames: Sequence[str] = ("localhost",),
    days: int = 365,
) -> None:
    """Write a self-signed OPC UA application certificate (PEM) and its RSA-2048 key (PEM).

    The certificate carries what OPC UA Part 6 6.2.2 asks for: the application URI as
    a SubjectAltName URI (servers compare it with the ApplicationUri of the session),
    DNS names and loopback IPs, key usages for signing and key encipherment, and both
    client and server authentication, so one helper serves either side.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Fermentry")])
    alt_names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri)]
    alt_names += [x509.DNSName(h) for h in dict.fromkeys([*hostnames, socket.gethostname()])]
    alt_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    now = _dt.datetime.now(_dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))  # tolerate small clock skew
        .not_valid_after(now + _dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=True, key_encipherment=True,
                data_encipherment=True, key_agreement=False, key_cert_sign=True,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    Path(path_cert).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    Path(path_key).write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
