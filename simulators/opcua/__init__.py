"""Simulated fermenters served over OPC UA (asyncua server, loopback or LAN).

Public API: :class:`SimulatorServer`, the clocks, :class:`SecurityConfig` and
:func:`generate_certificate`. Naming contract relied on by the service's configuration:
reactors ``R1..RN``, namespace ``urn:fermentry:simulator`` at index 2, NodeIds
``ns=2;s=R1.do_pct``, browse paths ``R1/Sensors/do_pct``.
"""

from simulators.opcua.address_space import FOLDER_OF_KIND, NAMESPACE_URI, NS, signal_nodeid
from simulators.opcua.clock import Clock, ManualClock, RealTimeClock
from simulators.opcua.security import POLICY_NAMES, SecurityConfig, generate_certificate
from simulators.opcua.server import APPLICATION_URI, SimulatorServer

__all__ = [
    "APPLICATION_URI",
    "FOLDER_OF_KIND",
    "NAMESPACE_URI",
    "NS",
    "POLICY_NAMES",
    "Clock",
    "ManualClock",
    "RealTimeClock",
    "SecurityConfig",
    "SimulatorServer",
    "generate_certificate",
    "signal_nodeid",
]
