"""PII detectors: vectorised over a polars string Series, validated where a checksum exists.

Each kind is a regular expression (Rust ``regex``, run by polars on whole columns; ASCII
classes and word boundaries, which keep it on its fast DFA) and, where the kind has one, a
validation of all candidates at once: the issuer prefixes (polars) and the Luhn checksum
(numpy, on a matrix of digits) for card numbers, ISO 7064 mod-97 for IBANs (numpy, 9
digits at a time), the never-issued area / group / serial numbers for US SSNs, the digit
count for phone numbers. :func:`detect_all` runs one pass of the union of the kinds'
patterns first, then each kind over the rows that matched. No Python code runs per row;
only the few examples kept are masked in Python (:func:`mask`), and no unmasked value
ever leaves this module.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

__all__ = [
    "KINDS", "PATTERNS", "Detection", "detect", "detect_all", "luhn_valid", "mask", "mod97_valid",
]

# ASCII word boundaries and [0-9]: Unicode \b and \d keep Rust's regex off its fast DFA
_B = r"(?-u:\b)"
_D = "[0-9]"
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_PHONE = (  # North American with separators, or international with a leading +
    rf"(?:{_B}(?:001|1)[ .-]?|\+1[ .-]?)?(?:\({_D}{{3}}\) ?|{_B}{_D}{{3}}[.-])"
    rf"{_D}{{3}}[.-]{_D}{{4}}(?:x{_D}{{1,6}})?{_B}"
    rf"|\+{_D}{{1,3}}[ .-]?\(?{_D}{{1,4}}\)?(?:[ .-]?{_D}{{2,5}}){{1,5}}{_B}"
)

#: The regular expression of each kind (polars / Rust regex syntax).
PATTERNS: dict[str, str] = {
    "email": rf"{_B}[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{{2,24}}{_B}",
    "phone": _PHONE,
    "credit_card": rf"{_B}(?:{_D}[ -]?){{11,18}}{_D}{_B}",
    "iban": rf"{_B}[A-Z]{{2}}{_D}{{2}}(?:[A-Z0-9]{{11,30}}|(?: [A-Z0-9]{{4}}){{2,7}}"
            rf"(?: [A-Z0-9]{{1,3}})?){_B}",
    "ipv4": rf"{_B}{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}{_B}",
    "ssn": rf"{_B}{_D}{{3}}-{_D}{{2}}-{_D}{{4}}{_B}",
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


def detect(series: pl.Series, kind: str, *, hit: pl.Series | None = None) -> Detection:
    """Find ``kind`` in a string Series: which rows hold one, and masked examples.

    Parameters
    ----------
    series
        A polars ``String`` Series.
    kind
        One of :data:`KINDS`.
    hit
        ``series.str.contains(PATTERNS[kind])`` when the caller has it already (computed
        for many columns and kinds in one parallel ``select``, say).

    Examples
    --------
    >>> import polars as pl
    >>> found = detect(pl.Series(["mail jane.doe@example.com", "none"]), "email")
    >>> found.count, found.examples
    (1, ['j***@e***.com'])
    """
    import polars as pl

    pattern = PATTERNS[kind]
    if kind == "credit_card":  # the digits of an IBAN written in groups are no card number
        series = series.str.replace_all(PATTERNS["iban"], " ")
    hit = (series.str.contains(pattern) if hit is None else hit).fill_null(False)
    validator = _VALIDATORS.get(kind)
    if validator is None or not hit.any():
        rows = hit
        found = series.filter(hit).head(_EXAMPLES).str.extract(pattern, 0)
    else:
        candidates = pl.DataFrame({
            "row": pl.arange(0, series.len(), eager=True, dtype=pl.Int64).filter(hit),
            "value": series.filter(hit).str.extract_all(pattern),
        }).explode("value").drop_nulls("value")
        candidates = candidates.filter(validator(candidates.get_column("value")))
        rows = pl.arange(0, series.len(), eager=True, dtype=pl.Int64).is_in(
            candidates.get_column("row").implode())
        found = candidates.unique("row", keep="first", maintain_order=True).head(
            _EXAMPLES).get_column("value")
    return Detection(rows.alias(series.name),
                     [mask(kind, v) for v in found.to_list() if v is not None])


def detect_all(series: pl.Series, kinds: Sequence[str]) -> dict[str, Detection]:
    """:func:`detect` for several kinds: one pass of the union of their patterns over the
    column, then each kind's pattern over the rows that matched the union only (in text
    that is mostly free of PII, one pass instead of one per kind).

    Examples
    --------
    >>> import polars as pl
    >>> s = pl.Series(["ip 10.0.0.1", "nothing", "x@example.org or 10.0.0.2"])
    >>> {k: d.rows.to_list() for k, d in detect_all(s, ["email", "ipv4"]).items()}
    {'email': [False, False, True], 'ipv4': [True, False, True]}
    """
    import polars as pl

    union = "|".join(f"(?:{PATTERNS[k]})" for k in kinds)
    candidate = series.str.contains(union).fill_null(False)
    where = pl.arange(0, series.len(), eager=True, dtype=pl.Int64).filter(candidate)
    rows = series.filter(candidate)
    hits = rows.to_frame("s").select(  # polars runs these in parallel
        pl.col("s").str.contains(PATTERNS[k]).alias(k) for k in kinds)
    out = {}
    for kind in kinds:
        found = detect(rows, kind, hit=hits.get_column(kind))
        full = pl.repeat(False, series.len(), eager=True, dtype=pl.Boolean)
        if found.count:
            full = full.scatter(where.filter(found.rows), True)
        out[kind] = Detection(full.alias(series.name), found.examples)
    return out


# -- validation of candidates: all candidates at once, as polars columns / numpy matrices ----

def _digit_matrix(strings: pl.Series, width: int) -> np.ndarray:
    """Strings of at most ``width`` ASCII digits as an ``(n, width)`` matrix of digits,
    right-aligned (zeros on the left): one copy of the bytes, no Python per row."""
    import numpy as np
    import polars as pl

    padded = strings.fill_null("").str.pad_start(width, "0").cast(pl.Binary)
    arrow = padded.to_arrow(compat_level=pl.CompatLevel.oldest())  # large_binary
    arrow = arrow.combine_chunks() if hasattr(arrow, "combine_chunks") else arrow
    offsets = np.frombuffer(arrow.buffers()[1], dtype=np.int64)[
        arrow.offset:arrow.offset + len(arrow) + 1]
    data = np.frombuffer(arrow.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
    return (data.reshape(len(arrow), width) - ord("0")).astype(np.int64)


def luhn_valid(digits: pl.Series) -> pl.Series:
    """True where a string of 1 to 19 digits passes the Luhn checksum.

    Examples
    --------
    >>> import polars as pl
    >>> luhn_valid(pl.Series(["4242424242424242", "4242424242424241"])).to_list()
    [True, False]
    """
    import polars as pl

    d = _digit_matrix(digits, 19)
    doubled = d[:, 1::2] * 2  # positions 1, 3, ... counted from the right of 19
    total = d[:, 0::2].sum(axis=1) + doubled.sum(axis=1) - 9 * (doubled > 9).sum(axis=1)
    return pl.Series(digits.name, total % 10 == 0)


# issuer prefixes of the card networks and the lengths they issue: Visa, Mastercard, Amex,
# Diners, JCB, Discover, UnionPay, Maestro, Mir
_CARD_PREFIX = (
    r"^(?:4[0-9]{12}(?:[0-9]{3}){0,2}"
    r"|(?:5[1-5][0-9]{2}|222[1-9]|22[3-9][0-9]|2[3-6][0-9]{2}|27[01][0-9]|2720)[0-9]{12}"
    r"|3[47][0-9]{13}|(?:30[0-5][0-9]|3[689][0-9]{2})[0-9]{10,15}|35[0-9]{14,17}"
    r"|(?:2131|1800)[0-9]{11}|(?:6011|65[0-9]{2}|64[4-9][0-9])[0-9]{12,15}|62[0-9]{14,17}"
    r"|(?:50[0-9]{2}|5[6-8][0-9]{2}|6304|6390|6759|676[1-3]|0604)[0-9]{8,15}"
    r"|220[0-4][0-9]{12,15})$"
)


def _card_valid(values: pl.Series) -> pl.Series:
    digits = values.str.replace_all(r"[^0-9]", "")
    issued = digits.str.contains(_CARD_PREFIX)
    return issued & luhn_valid(digits.zip_with(issued, _zeros(digits)))


def _zeros(like: pl.Series) -> pl.Series:
    """"0" in place of what a checksum need not see (longer than its width, say)."""
    import polars as pl

    return pl.repeat("0", like.len(), eager=True, dtype=pl.String)


def mod97_valid(iban: pl.Series) -> pl.Series:
    """True where an IBAN (no spaces, upper case, 15 to 34 characters) passes ISO 7064
    mod-97.

    Examples
    --------
    >>> import polars as pl
    >>> mod97_valid(pl.Series(["GB82WEST12345698765432", "GB82WEST12345698765433"])).to_list()
    [True, False]
    """
    import numpy as np
    import polars as pl

    moved = iban.str.slice(4) + iban.str.slice(0, 4)
    numeric = moved.str.replace_many(  # A = 10 ... Z = 35: at most 68 digits
        [chr(c) for c in range(ord("A"), ord("Z") + 1)], [str(v) for v in range(10, 36)])
    d = _digit_matrix(numeric, 72)
    weights = np.array([10 ** k for k in range(8, -1, -1)], dtype=np.int64)
    rest: np.ndarray = np.zeros(len(d), dtype=np.int64)
    for i in range(0, 72, 9):  # 9 digits at a time: rest * 1e9 + chunk stays in int64
        rest = (rest * 1_000_000_000 + d[:, i:i + 9] @ weights) % 97
    return pl.Series(iban.name, rest == 1)


def _iban_valid(values: pl.Series) -> pl.Series:
    compact = values.str.replace_all(" ", "")
    sized = compact.str.len_bytes().is_between(15, 34)
    return sized & mod97_valid(compact.zip_with(sized, _zeros(compact)))


def _ssn_valid(values: pl.Series) -> pl.Series:
    area, group, serial = values.str.slice(0, 3), values.str.slice(4, 2), values.str.slice(7, 4)
    return ((area != "000") & (area != "666") & ~area.str.starts_with("9")
            & (group != "00") & (serial != "0000"))


def _phone_valid(values: pl.Series) -> pl.Series:
    digits = values.str.replace(r"x[0-9]{1,6}$", "").str.replace_all(r"[^0-9]", "")
    return digits.str.len_bytes().is_between(8, 15)


_VALIDATORS: dict[str, Callable[[pl.Series], pl.Series]] = {
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
