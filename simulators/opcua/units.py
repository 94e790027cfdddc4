"""Plant unit strings -> OPC UA ``EUInformation`` with UNECE Rec. 20 common codes.

OPC UA (Part 8, 5.6.3) identifies units by the UNECE common code packed into an Int32
``UnitId``; clients such as historians and HMIs convert on that id, not on display text.
Units with no UNECE code (pH, mmol/(L h), 1e6 cells/mL) get ``UnitId = -1`` as the spec
requires, with the display name still telling a human what it is.
"""

from __future__ import annotations

from asyncua import ua

UNECE_NAMESPACE_URI = "http://www.opcfoundation.org/UA/units/un/cefact"

# unit string as plants spell it -> (UNECE common code or "", display name, description)
_UNITS: dict[str, tuple[str, str, str]] = {
    "%": ("P1", "%", "percent"),
    "% air saturation": ("P1", "%", "percent of air saturation"),
    "%as": ("P1", "%", "percent of air saturation"),
    "pH": ("", "pH", "pH"),
    "degC": ("CEL", "°C", "degree Celsius"),
    "°C": ("CEL", "°C", "degree Celsius"),
    "C": ("CEL", "°C", "degree Celsius"),
    "bar": ("BAR", "bar", "bar (absolute)"),
    "bar(a)": ("BAR", "bar", "bar (absolute)"),
    "bara": ("BAR", "bar", "bar (absolute)"),
    "L": ("LTR", "L", "litre"),
    "l": ("LTR", "L", "litre"),
    "L/h": ("E32", "L/h", "litre per hour"),
    "l/h": ("E32", "L/h", "litre per hour"),
    "g/L": ("GL", "g/L", "gram per litre"),
    "g/l": ("GL", "g/L", "gram per litre"),
    "mmol/L": ("M33", "mmol/L", "millimole per litre"),
    "mmol/l": ("M33", "mmol/L", "millimole per litre"),
    "mM": ("M33", "mmol/L", "millimole per litre"),
    "mmol/L/h": ("", "mmol/(L·h)", "millimole per litre and hour"),
    "mmol/(L h)": ("", "mmol/(L·h)", "millimole per litre and hour"),
    "mmol/(L*h)": ("", "mmol/(L·h)", "millimole per litre and hour"),
    "mmol/L·h": ("", "mmol/(L·h)", "millimole per litre and hour"),
    "rpm": ("RPM", "rpm", "revolutions per minute"),
    "1/min": ("RPM", "rpm", "revolutions per minute"),
    # standard litres per minute: litre per minute at standard conditions
    "slpm": ("L2", "slpm", "standard litre per minute"),
    "SLPM": ("L2", "slpm", "standard litre per minute"),
    "L/min": ("L2", "L/min", "litre per minute"),
    "s": ("SEC", "s", "second"),
    "h": ("HUR", "h", "hour"),
    "1": ("C62", "1", "dimensionless"),
    "-": ("C62", "1", "dimensionless"),
    "": ("C62", "1", "dimensionless"),
    "mol/mol": ("C62", "1", "dimensionless (mol/mol)"),
    "AU": ("C62", "AU", "absorbance units"),
    "OD": ("C62", "OD", "optical density"),
    "OD600": ("C62", "OD", "optical density at 600 nm"),
    "1e6 cells/mL": ("", "1e6 cells/mL", "million cells per millilitre"),
    "1e6/mL": ("", "1e6 cells/mL", "million cells per millilitre"),
    "e6 cells/mL": ("", "1e6 cells/mL", "million cells per millilitre"),
    "bool": ("C62", "1", "on/off (0 or 1)"),
    "0/1": ("C62", "1", "on/off (0 or 1)"),
}


def unece_unit_id(common_code: str) -> int:
    """Pack a UNECE common code (up to 3 ASCII characters) into an OPC UA ``UnitId``.

    Part 8 5.6.3: each character's ASCII value fills one byte, the last character in the
    lowest byte, e.g. ``"CEL"`` -> ``0x43454C`` = 4408652. ``""`` (no code) -> -1.
    """
    if not common_code:
        return -1
    if len(common_code) > 3 or not common_code.isascii():
        raise ValueError(f"not a UNECE common code: {common_code!r}")
    unit_id = 0
    for char in common_code:
        unit_id = (unit_id << 8) | ord(char)
    return unit_id


def eu_information(unit: str) -> ua.EUInformation:
    """The ``EngineeringUnits`` value for a plant unit string (unknown units: ``UnitId=-1``)."""
    code, display, description = _UNITS.get(unit, _UNITS.get(unit.strip(), ("", unit, unit)))
    return ua.EUInformation(
        NamespaceUri=UNECE_NAMESPACE_URI,
        UnitId=unece_unit_id(code),
        DisplayName=ua.LocalizedText(display, "en"),
        Description=ua.LocalizedText(description, "en"),
    )
