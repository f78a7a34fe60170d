"""Reading offers, shared by lichen's frameworks."""

from __future__ import annotations

from typing import Any

from lichen.errors import InvalidRequest
from lichen.resources import Resources


def attribute_text(attr: dict[str, Any]) -> str:
    """An agent attribute's value as text, the way constraints compare it:
    scalars `3`, ranges `[1-2,5-6]`, sets `{a,b}`."""
    kind = attr.get("type")
    if kind == "SCALAR":
        return f"{float(attr.get('scalar', {}).get('value', 0)):g}"
    if kind == "RANGES":
        return "[" + ",".join(f"{r['begin']}-{r['end']}" for r in attr.get("ranges", {}).get("range", [])) + "]"
    if kind == "SET":
        return "{" + ",".join(attr.get("set", {}).get("item", [])) + "}"
    return str(attr.get("text", {}).get("value", ""))


def offer_attributes(offer: dict[str, Any]) -> dict[str, str]:
    return {str(a.get("name")): attribute_text(a) for a in offer.get("attributes", [])}


def offer_resources(offer: dict[str, Any]) -> Resources:
    """An offer's resources; none when the master sent something unreadable."""
    try:
        return Resources.from_json(offer.get("resources", []))
    except InvalidRequest:
        return Resources.empty()
