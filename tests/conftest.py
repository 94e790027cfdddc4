"""Shared pytest fixtures: the real-server fixtures live in tests/servers.py."""

from tests.servers import (  # noqa: F401 - imported to register the fixtures
    fresh_name,
    influxd_db,
    influxd_factory,
    influxd_server,
    vm_server,
)
