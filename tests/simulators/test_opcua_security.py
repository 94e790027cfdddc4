"""Secured endpoint: trust list, SignAndEncrypt policies, user name and password."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from asyncua import Client, ua

from simulators.opcua import APPLICATION_URI, ManualClock, SecurityConfig, SimulatorServer, generate_certificate
from tests.simulators.conftest import make_ecoli

pytestmark = pytest.mark.asyncio(loop_scope="module")

CLIENT_URI = "urn:fermentry:test-client"
POLICIES = ("Basic256Sha256_SignAndEncrypt", "Aes128Sha256RsaOaep_SignAndEncrypt", "Aes256Sha256RsaPss_Sign")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    generate_certificate(d / "server.pem", d / "server_key.pem", "fermentry simulator", APPLICATION_URI)
    generate_certificate(d / "client.pem", d / "client_key.pem", "trusted client", CLIENT_URI)
    generate_certificate(d / "stranger.pem", d / "stranger_key.pem", "untrusted client", CLIENT_URI)
    (d / "trusted").mkdir()
    (d / "trusted" / "client.pem").write_bytes((d / "client.pem").read_bytes())
    return d


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def secure_url(pki: Path) -> AsyncIterator[str]:
    security = SecurityConfig(pki / "server.pem", pki / "server_key.pem", policies=POLICIES,
                              trusted_client_certificates=(pki / "trusted",), users={"operator": "s3cret"})
    async with SimulatorServer(make_ecoli(1), port=0, clock=ManualClock(), security=security) as srv:
        yield srv.endpoints[0]


async def _client(url: str, pki: Path, policy: str, who: str, password: str) -> Client:
    c = Client(url, timeout=5)
    c.application_uri = CLIENT_URI
    c.set_user("operator")
    c.set_password(password)
    name, mode = policy.split("_")
    await c.set_security_string(f"{name},{mode},{pki / f'{who}.pem'},{pki / f'{who}_key.pem'},{pki / 'server.pem'}")
    return c


@pytest.mark.parametrize("policy", POLICIES)
async def test_trusted_client_with_password_reads_values(secure_url: str, pki: Path, policy: str) -> None:
    async with await _client(secure_url, pki, policy, "client", "s3cret") as c:
        dv = await c.get_node("ns=2;s=R1.do_pct").read_data_value()
        assert dv.StatusCode.is_good()
        await c.get_node("ns=2;s=R1.do_sp_pct").write_value(ua.DataValue(ua.Variant(40.0, ua.VariantType.Double)))
        assert await c.get_node("ns=2;s=R1.do_sp_pct").read_value() == 40.0


async def test_untrusted_certificate_is_refused(secure_url: str, pki: Path) -> None:
    with pytest.raises(ua.UaStatusCodeError) as err:
        async with await _client(secure_url, pki, POLICIES[0], "stranger", "s3cret"):
            pass
    assert err.value.code == ua.StatusCodes.BadCertificateUntrusted


async def test_wrong_password_is_refused(secure_url: str, pki: Path) -> None:
    with pytest.raises(ua.UaStatusCodeError) as err:
        async with await _client(secure_url, pki, POLICIES[0], "client", "guess"):
            pass
    assert err.value.code == ua.StatusCodes.BadUserAccessDenied


async def test_unsecured_client_finds_no_endpoint(secure_url: str) -> None:
    with pytest.raises(ua.UaError):
        async with Client(secure_url, timeout=5):
            pass
