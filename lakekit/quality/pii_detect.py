"""PII detectors: vectorised over a polars string Series, validated where a checksum exists.

Each kind is a regular expression (Rust ``regex``, run by polars on whole columns) and,
where the kind has one, a validation of each candidate done with polars expressions on
all candidates at once: the Luhn checksum and the issuer prefixes for card numbers, ISO
7064 mod-97 for IBANs, the invalid area / group / serial numbers for US SSNs, the digit
count for phone numbers. No Python code runs per row; only the few examples kept are
masked in Python (:func:`mask`), and no unmasked value ever leaves this module.

Examples
--------
>>> import polars as pl
>>> s = pl.Series(["card 4242 4242 4242 4242", "card 4242 4242 4242 4241", None])
>>> detect(s, "credit_card").rows.to_list()
[True, False, False]
>>> detect(s, "credit_card").examples
['**** 4242']
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

__all__ = ["KINDS", "PATTERNS", "Detection", "detect", "luhn_valid", "mask", "mod97_valid"]

_CARD = r"\b(?:\d[ -]?){11,18}\d\b"
_IBAN = (r"\b[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)\b")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_PHONE = (  # North American with separators, or international with a leading +
    r"(?:\b(?:001|1)[ .-]?|\+1[ .-]?)?(?:\(\d{3}\) ?|\b\d{3}[.-])\d{3}[.-]\d{4}(?:x\d{1,6})?\b"
    r"|\+\d{1,3}[ .-]?\(?\d{1,4}\)?(?:[ .-]?\d{2,5}){1,5}\b"
)

#: The regular expression of each kind (polars / Rust regex syntax).
PATTERNS: dict[str, str] = {
    "email": r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b",
    "phone": _PHONE,
    "credit_card": _CARD,
    "iban": _IBAN,
    "ipv4": rf"\b{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}\b",
    "ssn": r"\b\d{3}-\d{2}-\d{4}\b",
}

#: The kinds :func:`detect` knows.
KINDS: tuple[str, ...] = tuple(PATTERNS)

_EXAMPLES = 3


@dataclass(frozen=True)
class Detection:
    """What one detector found in one Series.

    ``rows``: a boolean Series, True where the row holds at least one value of the kind
    (False for nulls). ``examples``: up to three masked values, never the values.
    """

    rows: pl.Series
    examples: list[str]

    @property
    def count(self) -> int:
        """The number of rows holding the kind."""
        return int(self.rows.sum())


def detect(series: pl.Series, kind: str) -> Detection:
    """Find ``kind`` in a string Series: which rows hold one, and masked examples.

    Parameters
    ----------
    series
        A polars ``String`` Series.
    kind
        One of :data:`KINDS`.

    Examples
    --------
    >>> import polars as pl
    >>> found = detect(pl.Series(["mail jane.doe@example.com", "none"]), "email")
    >>> found.count, found.examples
    (1, ['j***@e***.com'])
    """
    import polars as pl

    pattern = PATTERNS[kind]
    hit = series.str.contains(pattern).fill_null(False)
    validator = _VALIDATORS.get(kind)
    if validator is None or not hit.any():
        rows = hit
        found = series.filter(hit).head(_EXAMPLES).str.extract(pattern, 0)
    else:
        candidates = (
            pl.DataFrame({"row": pl.arange(0, series.len(), eager=True, dtype=pl.Int64)
                          .filter(hit),
                          "value": series.filter(hit).str.extract_all(pattern)})
            .explode("value")
            .filter(validator(pl.col("value")))
        )
        rows = pl.arange(0, series.len(), eager=True, dtype=pl.Int64).is_in(
            candidates.get_column("row").implode())
        found = candidates.unique("row", keep="first", maintain_order=True).head(
            _EXAMPLES).get_column("value")
    return Detection(rows.alias(series.name),
                     [mask(kind, v) for v in found.to_list() if v is not None])


# -- validation of candidates (polars expressions over all candidates at once) -----------

def _digits(value: pl.Expr) -> pl.Expr:
    return value.str.replace_all(r"[^0-9]", "")


def luhn_valid(digits: pl.Expr, *, width: int = 19) -> pl.Expr:
    """True where a string of at most ``width`` digits passes the Luhn checksum.

    Examples
    --------
    >>> import polars as pl
    >>> cards = pl.Series(["4242424242424242", "4242424242424241"])
    >>> pl.select(luhn_valid(pl.lit(cards))).to_series().to_list()
    [True, False]
    """
    import polars as pl

    padded = digits.str.pad_start(width, "0")
    total: pl.Expr = pl.lit(0, dtype=pl.Int32)
    for i in range(width):
        d = padded.str.slice(i, 1).cast(pl.Int32)
        if (width - 1 - i) % 2 == 1:
            d = d * 2 - (d >= 5).cast(pl.Int32) * 9
        total = total + d
    return total % 10 == 0


# issuer prefixes of the card networks and the lengths they issue: Visa, Mastercard, Amex,
# Diners, JCB, Discover, UnionPay, Maestro, Mir
_CARD_PREFIX = (
    r"^(?:4\d{12}(?:\d{3}){0,2}"
    r"|(?:5[1-5]\d{2}|222[1-9]|22[3-9]\d|2[3-6]\d{2}|27[01]\d|2720)\d{12}"
    r"|3[47]\d{13}|(?:30[0-5]\d|3[689]\d{2})\d{10,15}|35\d{14,17}|(?:2131|1800)\d{11}"
    r"|(?:6011|65\d{2}|64[4-9]\d)\d{12,15}|62\d{14,17}"
    r"|(?:50\d{2}|5[6-8]\d{2}|6304|6390|6759|676[1-3]|0604)\d{8,15}|220[0-4]\d{12,15})$"
)


def _card_valid(value: pl.Expr) -> pl.Expr:
    digits = _digits(value)
    return digits.str.contains(_CARD_PREFIX) & luhn_valid(digits)


def mod97_valid(iban: pl.Expr) -> pl.Expr:
    """True where an IBAN (no spaces, upper case) passes the ISO 7064 mod-97 check.

    Examples
    --------
    >>> import polars as pl
    >>> ibans = pl.Series(["GB82WEST12345698765432", "GB82WEST12345698765433"])
    >>> pl.select(mod97_valid(pl.lit(ibans))).to_series().to_list()
    [True, False]
    """
    import polars as pl

    moved = iban.str.slice(4) + iban.str.slice(0, 4)
    numeric = moved.str.replace_many(
        [chr(c) for c in range(ord("A"), ord("Z") + 1)], [str(v) for v in range(10, 36)]
    ).str.pad_start(72, "0")  # at most 34 characters, 2 digits each
    rest: pl.Expr = pl.lit(0, dtype=pl.Int64)
    for i in range(0, 72, 9):
        rest = (rest * 1_000_000_000 + numeric.str.slice(i, 9).cast(pl.Int64)) % 97
    return rest == 1


def _iban_valid(value: pl.Expr) -> pl.Expr:
    compact = value.str.replace_all(" ", "")
    return compact.str.len_chars().is_between(15, 34) & mod97_valid(compact)


def _ssn_valid(value: pl.Expr) -> pl.Expr:
    area, group, serial = value.str.slice(0, 3), value.str.slice(4, 2), value.str.slice(7, 4)
    return ((area != "000") & (area != "666") & ~area.str.starts_with("9")
            & (group != "00") & (serial != "0000"))


def _phone_valid(value: pl.Expr) -> pl.Expr:
    n = _digits(value.str.replace(r"x\d{1,6}$", "")).str.len_chars()
    return n.is_between(8, 15)


_VALIDATORS: dict[str, Callable[[pl.Expr], pl.Expr]] = {
    "credit_card": _card_valid,
    "iban": _iban_valid,
    "ssn": _ssn_valid,
    "phone": _phone_valid,
}


# -- masking (a few examples only) ---------------------------------------------------------

_DIGIT = re.compile(r"\d")


def mask(kind: str, value: str) -> str:
    """``value`` with all but a hint hidden: ``j***@e***.com``, ``**** 4242``.

    Examples
    --------
    >>> mask("email", "jane.doe@example.com"), mask("credit_card", "4242-4242-4242-4242")
    ('j***@e***.com', '**** 4242')
    >>> mask("iban", "GB82 WEST 1234 5698 7654 32"), mask("ipv4", "192.168.10.7")
    ('GB** **** 5432', '192.***.***.***')
    >>> mask("ssn", "123-45-6789"), mask("phone", "+1-512-641-5868")
    ('***-**-6789', '+*-***-***-**68')
    """
    if kind == "email":
        local, _, domain = value.partition("@")
        tld = domain.rsplit(".", 1)[-1]
        return f"{local[:1]}***@{domain[:1]}***.{tld}"
    if kind == "credit_card":
        return "**** " + re.sub(r"\D", "", value)[-4:]
    if kind == "iban":
        compact = value.replace(" ", "")
        return f"{compact[:2]}** **** {compact[-4:]}"
    if kind == "ipv4":
        return value.split(".", 1)[0] + ".***.***.***"
    if kind == "ssn":
        return "***-**-" + value[-4:]
    keep = 2  # phone: every digit but the last two
    digits = len(_DIGIT.findall(value))
    seen = 0
    out = []
    for ch in value:
        if ch.isdigit():
            seen += 1
            out.append(ch if seen > digits - keep else "*")
        else:
            out.append(ch)
    return "".join(out)
