"""Plant unit strings -> OPC UA EUInformation (pure, no server)."""

from __future__ import annotations

import pytest

from simulators.opcua.units import UNECE_NAMESPACE_URI, eu_information, unece_unit_id


@pytest.mark.parametrize(("code", "unit_id"), [("CEL", 4408652), ("P1", 20529), ("LTR", 5002322), ("", -1)])
def test_unece_unit_id_packs_ascii_bytes(code: str, unit_id: int) -> None:
    assert unece_unit_id(code) == unit_id


@pytest.mark.parametrize("bad", ["ABCD", "é"])
def test_unece_unit_id_rejects_non_codes(bad: str) -> None:
    with pytest.raises(ValueError):
        unece_unit_id(bad)


def test_unknown_unit_keeps_its_text_and_has_no_code() -> None:
    eu = eu_information("furlong/fortnight")
    assert (eu.UnitId, eu.DisplayName.Text, eu.NamespaceUri) == (-1, "furlong/fortnight", UNECE_NAMESPACE_URI)
