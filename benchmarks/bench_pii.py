"""PII detection (issue 16): ``lk.Pii`` throughput and accuracy against named baselines.

1. Throughput on mixed text columns (sentences, addresses, notes with a few percent of PII,
   contacts): ``lk.check(parquet_dir, checks=[lk.Pii(sample=None)])`` (every row, read
   through lakekit's loaders, all six kinds) in MB/s of string data, beside
   - a per-row Python ``re`` loop with the same patterns and the same validation (Luhn and
     issuer prefixes, mod-97, SSN rules), run on a slice of the rows;
   - Presidio's ``AnalyzerEngine`` (the six matching entities) if it is installed in
     ``--presidio-python`` (a separate venv), on a smaller slice. Presidio needs a spaCy
     model; offline none can be downloaded, so it runs on ``spacy.blank("en")``: its
     pattern recognizers (all six kinds here) work, its NER recognizers are not used.
2. Recall and precision per kind on the labelled Faker set (tests/_support/pii_data.py):
   recall on the kind's own column, precision over every column (other kinds' columns
   and text without PII).

MB/s is linear in rows for all three (no per-dataset setup is timed), so the baselines'
slices give their rates; the ratio is what to read on a shared machine.

Run: ``python benchmarks/bench_pii.py [--mb 1000] [--presidio-python PYTHON]`` (Presidio's
venv; default /tmp/presidio-venv/bin/python).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

import lakekit as lk
from lakekit.quality.pii_detect import KINDS, PATTERNS, detect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _support.pii_data import Labelled, labelled, luhn_ok

# -- the per-row Python baseline: the same patterns, validated in Python -------------------

_CARD_PREFIX = re.compile(
    r"^(?:4\d{12}(?:\d{3}){0,2}|(?:5[1-5]\d{2}|222[1-9]|22[3-9]\d|2[3-6]\d{2}|27[01]\d|2720)"
    r"\d{12}|3[47]\d{13}|(?:30[0-5]\d|3[689]\d{2})\d{10,15}|35\d{14,17}|(?:2131|1800)\d{11}"
    r"|(?:6011|65\d{2}|64[4-9]\d)\d{12,15}|62\d{14,17}"
    r"|(?:50\d{2}|5[6-8]\d{2}|6304|6390|6759|676[1-3]|0604)\d{8,15}|220[0-4]\d{12,15})$")


def _iban_ok(value: str) -> bool:
    s = value.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _card_ok(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    return bool(_CARD_PREFIX.match(digits)) and luhn_ok(digits)


def _ssn_ok(v: str) -> bool:
    return v[:3] not in ("000", "666") and v[0] != "9" and v[4:6] != "00" and v[7:] != "0000"


def _phone_ok(v: str) -> bool:
    return 8 <= len(re.sub(r"\D", "", re.sub(r"x\d{1,6}$", "", v))) <= 15


PY_VALIDATE: dict[str, Callable[[str], bool]] = {
    "credit_card": _card_ok, "iban": _iban_ok, "ssn": _ssn_ok, "phone": _phone_ok,
}
PY_PATTERNS = {k: re.compile(p.replace("(?-u:\\b)", r"\b"), re.ASCII)
               for k, p in PATTERNS.items()}


def python_loop(texts: list[str | None]) -> dict[str, list[bool]]:
    """Per row, per kind: does the row hold a valid value (the way a hand-written scan does)."""
    out: dict[str, list[bool]] = {k: [] for k in KINDS}
    for text in texts:
        for kind in KINDS:
            ok = False
            if text is not None:
                check = PY_VALIDATE.get(kind)
                scanned = PY_PATTERNS["iban"].sub(" ", text) if kind == "credit_card" else text
                for m in PY_PATTERNS[kind].finditer(scanned):
                    if check is None or check(m.group(0)):
                        ok = True
                        break
            out[kind].append(ok)
    return out


# -- Presidio, in its own venv --------------------------------------------------------------

PRESIDIO = r'''
import json, sys, time, spacy
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
from presidio_analyzer.nlp_engine import SpacyNlpEngine

class Blank(SpacyNlpEngine):  # no spaCy model can be downloaded offline
    def __init__(self):
        super().__init__(models=[{"lang_code": "en", "model_name": "blank"}])
    def load(self):
        self.nlp = {"en": spacy.blank("en")}

KINDS = {"EMAIL_ADDRESS": "email", "PHONE_NUMBER": "phone", "CREDIT_CARD": "credit_card",
         "IBAN_CODE": "iban", "IP_ADDRESS": "ipv4", "US_SSN": "ssn"}
engine = Blank(); engine.load()
registry = RecognizerRegistry(); registry.load_predefined_recognizers(nlp_engine=engine)
analyzer = AnalyzerEngine(nlp_engine=engine, registry=registry, supported_languages=["en"])
texts = json.load(open(sys.argv[1]))
analyzer.analyze("warm up a@b.com", language="en", entities=list(KINDS))
start = time.perf_counter()
found = [sorted({KINDS[r.entity_type] for r in analyzer.analyze(t, language="en",
                                                               entities=list(KINDS))})
         for t in texts]
json.dump({"seconds": time.perf_counter() - start, "found": found}, open(sys.argv[2], "w"))
'''


def presidio(python: str, texts: list[str]) -> tuple[float, list[list[str]]] | str:
    """Presidio's seconds and kinds found per text, or why it could not run."""
    if not Path(python).exists():
        return f"not installed ({python} missing)"
    with tempfile.TemporaryDirectory() as tmp:
        src, dst, script = (Path(tmp) / n for n in ("in.json", "out.json", "run.py"))
        src.write_text(json.dumps(texts))
        script.write_text(PRESIDIO)
        env = dict(os.environ, TLDEXTRACT_CACHE=tmp)
        done = subprocess.run([python, str(script), str(src), str(dst)], capture_output=True,
                              text=True, timeout=1800, env=env)
        if done.returncode != 0:
            return "failed: " + done.stderr.strip().splitlines()[-1][:200]
        out = json.loads(dst.read_text())
    return float(out["seconds"]), out["found"]


# -- data ------------------------------------------------------------------------------------

def mixed_columns(data: Labelled, rows: int, seed: int = 16) -> pl.DataFrame:
    """Four text columns drawn from the labelled set: mostly text without PII, some PII."""
    rng = np.random.default_rng(seed)
    clean = pl.Series([t for v in data.negatives.values() for t in v])
    pii = pl.Series([t for v in data.positives.values() for t in v])

    def column(share: float) -> pl.Series:
        take_pii = rng.random(rows) < share
        a = clean.gather(rng.integers(0, clean.len(), rows))
        b = pii.gather(rng.integers(0, pii.len(), rows))
        return pl.select(pl.when(pl.Series(take_pii)).then(b).otherwise(a)).to_series()

    return pl.DataFrame({"note": column(0.05), "comment": column(0.01),
                         "address": pl.Series(data.negatives["address"]).gather(
                             rng.integers(0, len(data.negatives["address"]), rows)),
                         "contact": column(0.5)})


def text_mb(df: pl.DataFrame) -> float:
    return sum(int(df.get_column(c).str.len_bytes().sum() or 0) for c in df.columns) / 1e6


def accuracy(found: Callable[[list[str]], dict[str, list[bool]]], data: Labelled
             ) -> dict[str, tuple[float, float]]:
    """Recall and precision per kind over the labelled columns."""
    columns = {**{f"pos:{k}": v for k, v in data.positives.items()},
               **{f"neg:{k}": v for k, v in data.negatives.items()}}
    together = found([t for texts in columns.values() for t in texts])  # one call
    hits, at = {}, 0
    for name, texts in columns.items():
        hits[name] = {k: v[at:at + len(texts)] for k, v in together.items()}
        at += len(texts)
    out = {}
    for kind in KINDS:
        tp = sum(hits[f"pos:{kind}"][kind])
        fp = sum(sum(h[kind]) for name, h in hits.items() if name != f"pos:{kind}")
        out[kind] = (tp / len(data.positives[kind]), tp / (tp + fp) if tp + fp else 1.0)
    return out


def lakekit_found(texts: list[str]) -> dict[str, list[bool]]:
    s = pl.Series(texts)
    return {k: detect(s, k).rows.to_list() for k in KINDS}


def presidio_found(python: str) -> Callable[[list[str]], dict[str, list[bool]]]:
    def run(texts: list[str]) -> dict[str, list[bool]]:
        got = presidio(python, texts)
        if isinstance(got, str):
            raise RuntimeError(got)
        return {k: [k in f for f in got[1]] for k in KINDS}
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=1000, help="MB of string data for lk.Pii")
    parser.add_argument("--python-rows", type=int, default=40_000,
                        help="rows for the per-row Python loop")
    parser.add_argument("--presidio-rows", type=int, default=4_000, help="rows for Presidio")
    parser.add_argument("--presidio-python", default="/tmp/presidio-venv/bin/python")
    parser.add_argument("--labelled", type=int, default=2_000, help="labelled rows per column")
    args = parser.parse_args()

    data = labelled(args.labelled)
    sample = mixed_columns(data, 100_000)
    per_row_mb = text_mb(sample) / sample.height
    rows = int(args.mb / per_row_mb)
    print(f"# PII detection: {platform.node()}, {os.cpu_count()} CPUs, polars {pl.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "text"
        folder.mkdir()
        written = 0
        for i, start in enumerate(range(0, rows, 1_000_000)):
            part = mixed_columns(data, min(1_000_000, rows - start), seed=16 + i)
            part.write_parquet(folder / f"part-{i:04d}.parquet")
            written += part.height
        mb = args.mb
        started = time.perf_counter()
        report = lk.check(str(folder), checks=[lk.Pii(sample=None, max_ratio=1.0)])
        lk_s = time.perf_counter() - started
        scanned = report.results[0].details["rows_scanned"]
        assert scanned == written, (scanned, written)
        found = {r.details["column"]: {k: round(v["ratio"], 4)
                                       for k, v in r.details["kinds"].items()}
                 for r in report.results}
        started = time.perf_counter()
        lk.check(str(folder), checks=[lk.Pii(max_ratio=1.0)])  # the default: 100,000 rows
        sampled_s = time.perf_counter() - started
    print(f"\n{written:,} rows x 4 text columns, {mb:,.0f} MB of strings (parquet on local disk)")
    print("share of rows found per column:", json.dumps(found))

    texts = pl.concat([sample.get_column(c).head(args.python_rows // 4)
                       for c in sample.columns]).to_list()
    texts_mb = sum(len(t.encode()) for t in texts) / 1e6
    in_memory = pl.DataFrame({"text": texts})
    pii = lk.Pii(sample=None, max_ratio=1.0)
    rounds: dict[str, list[float]] = {"lk": [], "py": []}
    for i in range(3):  # alternately, so that load on the shared machine hits both alike
        for name in (("lk", "py") if i % 2 == 0 else ("py", "lk")):
            started = time.perf_counter()
            lk.check(in_memory, checks=[pii]) if name == "lk" else python_loop(texts)
            rounds[name].append(time.perf_counter() - started)
    mem_s, py_s = statistics.median(rounds["lk"]), statistics.median(rounds["py"])
    lk_rate, py_rate = mb / lk_s, texts_mb / py_s
    print("\n| tool | rows | MB | seconds | MB/s | vs lk.Pii |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| lk.Pii (sample=None, 6 kinds, read + scan) | {written:,} | {mb:,.0f} | "
          f"{lk_s:.1f} | {lk_rate:.1f} | 1 |")
    print(f"| lk.Pii() default sample=100,000 (reads every row into a reservoir, scans the "
          f"sample) | {written:,} | {mb:,.0f} | {sampled_s:.1f} | {mb / sampled_s:.1f} | "
          f"{lk_s / sampled_s:.1f}x faster |")
    print(f"| lk.Pii on those rows in memory (no read; median of 3, alternating with the "
          f"loop) | {len(texts):,} | {texts_mb:.1f} | {mem_s:.2f} | {texts_mb / mem_s:.1f} | "
          f"{lk_rate / (texts_mb / mem_s):.2f} |")
    print(f"| per-row Python `re` loop (same patterns + validation; median of 3) | "
          f"{len(texts):,} | {texts_mb:.1f} | {py_s:.2f} | {py_rate:.2f} | "
          f"{lk_rate / py_rate:.0f}x slower ({mem_s and py_s / mem_s:.0f}x slower than in "
          f"memory) |")
    pres_texts = texts[: args.presidio_rows // 4] + texts[len(texts) // 2:][: args.presidio_rows
                                                                            // 4 * 3]
    got = presidio(args.presidio_python, pres_texts)
    if isinstance(got, str):
        print(f"| Presidio AnalyzerEngine | - | - | - | - | {got} |")
    else:
        pres_mb = sum(len(t.encode()) for t in pres_texts) / 1e6
        rate = pres_mb / got[0]
        print(f"| Presidio AnalyzerEngine (blank spaCy, 6 entities) | {len(pres_texts):,} | "
              f"{pres_mb:.2f} | {got[0]:.1f} | {rate:.3f} | {lk_rate / rate:.0f}x slower |")

    print(f"\nRecall / precision per kind on the labelled set ({args.labelled:,} rows per "
          f"kind, {len(data.negatives)} columns of text without PII):\n")
    tools: dict[str, Callable[[list[str]], dict[str, list[bool]]]] = {
        "lk.Pii": lakekit_found, "Python re loop": python_loop}
    if not isinstance(got, str):
        tools["Presidio"] = presidio_found(args.presidio_python)
    scores = {name: accuracy(fn, data) for name, fn in tools.items()}
    print("| kind | " + " | ".join(f"{t} recall | {t} precision" for t in tools) + " |")
    print("| --- " * (1 + 2 * len(tools)) + "|")
    for kind in KINDS:
        cells = " | ".join(f"{scores[t][kind][0]:.3f} | {scores[t][kind][1]:.3f}" for t in tools)
        print(f"| {kind} | {cells} |")
    ean = pl.Series([labelled_ean(i) for i in range(20_000)])
    print(f"\nEAN-13 product codes taken for cards by lk.Pii: "
          f"{detect(ean, 'credit_card').count / ean.len():.2%} (a 13-digit Visa number is "
          f"an EAN-13 with a valid Luhn digit)")


def labelled_ean(i: int) -> str:
    """Deterministic EAN-13 codes (valid EAN check digit) to show the card detector's limit."""
    rng = np.random.default_rng(i)
    body = "".join(str(d) for d in rng.integers(0, 10, 12))
    check = (10 - sum(int(d) * (3 if j % 2 else 1) for j, d in enumerate(body)) % 10) % 10
    return body + str(check)


if __name__ == "__main__":
    main()
