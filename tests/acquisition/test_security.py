"""OPC UA security against the simulator: encrypted sessions with trusted certificates, and refusals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from simulators.opcua import APPLICATION_URI, ManualClock, SecurityConfig, SimulatorServer, generate_certificate
from telemetry.acquisition import EndpointLost, EndpointRefused, EndpointSupervisor, SampleBuffer, TagSpec
from telemetry.tags import TagTable

from .conftest import WAIT_S, EventLog, endpoint, make_plant

CLIENT_URI = "urn:fermentry:service"
POLICIES = ("Basic256Sha256_SignAndEncrypt", "Aes128Sha256RsaOaep_SignAndEncrypt", "Aes256Sha256RsaPss_Sign")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    generate_certificate(d / "server.pem", d / "server_key.pem", "fermentry simulator", APPLICATION_URI)
    generate_certificate(d / "impostor.pem", d / "impostor_key.pem", "impostor server", APPLICATION_URI)
    generate_certificate(d / "client.pem", d / "client_key.pem", "fermentry service", CLIENT_URI)
    generate_certificate(d / "stranger.pem", d / "stranger_key.pem", "stranger", CLIENT_URI)
    return d


@pytest_asyncio.fixture
async def secure_server(pki: Path) -> AsyncIterator[SimulatorServer]:
    security = SecurityConfig(
        pki / "server.pem", pki / "server_key.pem", policies=POLICIES,
        trusted_client_certificates=(pki / "client.pem",), users={"operator": "s3cret"},
    )
    async with SimulatorServer(make_plant(1), port=0, clock=ManualClock(), speed=60.0, security=security) as srv:
        yield srv


def _spec(srv: SimulatorServer, pki: Path, *, policy: str = "Basic256Sha256", mode: str = "SignAndEncrypt",
          client: str = "client", trusted: str = "server", password: str = "s3cret"):  # type: ignore[no-untyped-def]
    return endpoint(
        srv.endpoints[0], (TagSpec(0, node_id="ns=2;s=R1.do_pct"),),
        security_policy=policy, security_mode=mode,
        client_cert=pki / f"{client}.pem", client_key=pki / f"{client}_key.pem",
        trusted_server_certs=(pki / f"{trusted}.pem",), username="operator", password=password,
        application_uri=CLIENT_URI, reconnect_initial_s=5.0, reconnect_max_s=5.0,
    )


@pytest.mark.parametrize(
    ("policy", "mode"),
    [("Basic256Sha256", "SignAndEncrypt"), ("Aes128Sha256RsaOaep", "SignAndEncrypt"), ("Aes256Sha256RsaPss", "Sign")],
)
async def test_trusted_certificates_and_password_give_a_secure_session(
    secure_server: SimulatorServer, pki: Path, policy: str, mode: str
) -> None:
    table = TagTable(["R1.do_pct"])
    samples = SampleBuffer()
    async with EndpointSupervisor(_spec(secure_server, pki, policy=policy, mode=mode), table, samples) as sup:
        await sup.wait_connected(WAIT_S)
        await asyncio.wait_for(samples.wait_total(1), WAIT_S)
        assert sup.client is not None
        assert sup.client.security_policy.Mode.name == mode
        assert sup.client.security_policy.URI.replace("_", "").endswith(policy)
    assert table.status[0] == 0 and table.value[0] > 0


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (dict(trusted="impostor"), "BadCertificateUntrusted"),  # we refuse the server
        (dict(client="stranger"), "BadCertificate"),  # the server refuses us
        (dict(password="wrong"), "Bad"),  # the server refuses the user
    ],
    ids=["untrusted-server", "untrusted-client", "wrong-password"],
)
async def test_refusals_are_reported_and_never_connect(
    secure_server: SimulatorServer, pki: Path, change: dict[str, str], expected: str
) -> None:
    events = EventLog()
    table = TagTable(["R1.do_pct"])
    async with EndpointSupervisor(_spec(secure_server, pki, **change), table, on_event=events) as sup:
        lost = await events.wait_count(EndpointLost, 1)
        assert isinstance(sup.last_error, EndpointRefused), sup.last_error
        assert not sup.last_error.retryable
        assert sup.client is None and sup.state == "lost"
    assert expected in lost.reason
    assert table.disconnected.all() and not (table.status[0] == 0)
