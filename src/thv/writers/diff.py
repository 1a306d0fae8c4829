"""Does the live object already hold what thv wants? (So a resync writes nothing.)

thv applies only the fields it owns; the server adds defaults (``protocol: TCP``,
``imagePullPolicy``, ``terminationMessagePath`` …). ``desired`` is therefore compared as a
*subset* of ``live``: every field thv sets must be present and equal, extra live fields are
ignored. Resource quantities compare by value ("0.5" equals "500m").
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

_SUFFIX = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_QTY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")


def quantity(value: str) -> Decimal | None:
    """Parse a Kubernetes resource quantity; ``None`` if it is not one."""
    m = _QTY.match(value.strip())
    if not m:
        return None
    try:
        return Decimal(m.group(1)) * _SUFFIX[m.group(2) or ""]
    except InvalidOperation:
        return None


def _scalar_equal(want: Any, have: Any, quantities: bool) -> bool:
    if want == have:
        return True
    if quantities and isinstance(want, str | int | float) and isinstance(have, str | int | float):
        a, b = quantity(str(want)), quantity(str(have))
        return a is not None and a == b
    return False


def _is_empty(value: Any) -> bool:
    return value is None or value is False or value in ("", {}, [])


def is_subset(want: Any, have: Any, *, _quantities: bool = False) -> bool:
    """True when every field of ``want`` is present in ``have`` with an equal value."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return False
        for k, v in want.items():
            if k not in have:
                if _is_empty(v):
                    continue  # an empty value thv sets reads back as absent
                return False
            if not is_subset(v, have[k], _quantities=_quantities or k in ("limits", "requests")):
                return False
        return True
    if isinstance(want, list):
        if not isinstance(have, list) or len(want) != len(have):
            return False
        return all(is_subset(w, h, _quantities=_quantities) for w, h in zip(want, have, strict=True))
    return _scalar_equal(want, have, _quantities)
