"""A labelled PII set made with Faker: text columns that hold one known value of a kind per
row (bare, in a sentence, formatted as people write it), and text columns that hold none.

Shared by tests/quality/test_pii.py (recall, false positives, no value in any output) and
benchmarks/bench_pii.py (recall / precision beside the throughput figures).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["KINDS", "Labelled", "labelled", "luhn_ok"]

KINDS = ("email", "phone", "credit_card", "iban", "ipv4", "ssn")


@dataclass(frozen=True)
class Labelled:
    """``positives[kind]``: texts each holding one value of ``kind``; ``values[kind]``: the
    raw values (what no report may show); ``negatives[name]``: texts holding no PII."""

    positives: dict[str, list[str]]
    values: dict[str, list[str]]
    negatives: dict[str, list[str]]


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum, the plain way (to label the data, not to detect)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d >= 5 else d * 2
        total += d
    return total % 10 == 0


def _card(fake: object, rng: random.Random) -> str:
    number: str = fake.credit_card_number()  # type: ignore[attr-defined]
    style = rng.randrange(3)
    if style == 0 or len(number) not in (16, 19):
        return number
    sep = " " if style == 1 else "-"
    return sep.join(number[i:i + 4] for i in range(0, len(number), 4))


def _iban(fake: object, rng: random.Random) -> str:
    iban: str = fake.iban()  # type: ignore[attr-defined]
    if rng.random() < 0.5:
        return iban
    return " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))


def _not_luhn(rng: random.Random) -> str:
    while True:
        digits = str(rng.randrange(10 ** 7, 10 ** 19))
        if not luhn_ok(digits):
            return digits


def labelled(n: int, *, seed: int = 16) -> Labelled:
    """``n`` rows per kind and per negative column, the same for the same seed."""
    from faker import Faker

    fake = Faker(["en_US", "en_GB", "de_DE", "fr_FR", "nl_NL", "es_ES"])
    fake.seed_instance(seed)
    us = fake["en_US"]
    rng = random.Random(seed)
    makers = {
        "email": lambda: fake.email(),
        "phone": lambda: us.phone_number(),
        "credit_card": lambda: _card(fake, rng),
        "iban": lambda: _iban(fake, rng),
        "ipv4": lambda: fake.ipv4(),
        "ssn": lambda: us.ssn(),
    }
    templates = ("{v}", "contact: {v}", "{s} {v} {w}", "{w}={v};", "{s} ({v})")
    positives: dict[str, list[str]] = {}
    values: dict[str, list[str]] = {}
    for kind, make in makers.items():
        vals = [make() for _ in range(n)]
        values[kind] = vals
        positives[kind] = [
            rng.choice(templates).format(v=v, s=fake.sentence(), w=fake.word()) for v in vals
        ]
    negatives = {
        "sentence": [fake.sentence() for _ in range(n)],
        "paragraph": [fake.paragraph() for _ in range(n)],
        "name": [fake.name() for _ in range(n)],
        "address": [fake.address() for _ in range(n)],
        "company": [fake.company() for _ in range(n)],
        "product_code": [fake.bothify(rng.choice(("??-####-??##", "SKU ########", "#####-???")))
                         .upper() for _ in range(n)],
        "isbn": [fake.isbn13() for _ in range(n)],
        "number": [_not_luhn(rng) for _ in range(n)],
        "date": [f"{fake.date()} {fake.time()}" for _ in range(n)],
        "url": [fake.uri() for _ in range(n)],
        "uuid": [fake.uuid4() for _ in range(n)],
    }
    return Labelled(positives, values, negatives)
