"""OpenLineage (issue 16): what emitting events adds to a Table write and to lk.check.

Small appends (1,000 rows) to a Delta table on local disk and on moto S3, and
``lk.check(table, volume=...)``, each timed with lineage

- off (the baseline: not configured),
- on, to a local HTTP backend answering 200,
- on, to a backend that is down (closed port; openlineage's default HTTP transport: 5
  retries with backoff, about 9 s per event),
- on, to a backend that hangs (accepts connections, never answers; 5 s timeout).

Configurations run in alternating blocks (order reversed every round) in one process, so
noise on a shared machine hits all alike. Target: lineage adds well under 2 s to a write
whatever the backend does (events are sent from a bounded background queue); the figure
reported is the median time per operation and its ratio to lineage off.

Run: ``python benchmarks/bench_lineage.py [--quick]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pyarrow as pa
from openlineage.client import OpenLineageClient
from openlineage.client.transport.http import HttpConfig, HttpTransport

import lakekit as lk
from lakekit import lineage
from lakekit.local_servers import moto_s3_server


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def backends() -> Iterator[dict[str, Any]]:
    """Clients for: an answering backend, a closed port, a backend that never answers."""
    ok = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=ok.serve_forever, daemon=True).start()
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(1024)  # connections complete in the backlog; nothing ever answers
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]

    def client(url: str) -> OpenLineageClient:
        return OpenLineageClient(transport=HttpTransport(HttpConfig(url=url)))

    try:
        yield {"off": None,
               "HTTP backend": client(f"http://127.0.0.1:{ok.server_address[1]}"),
               "backend down": client(f"http://127.0.0.1:{closed}"),
               "backend hangs": client(f"http://127.0.0.1:{hang.getsockname()[1]}")}
    finally:
        ok.shutdown()
        hang.close()


def per_op(configs: dict[str, Any], op: Callable[[], Any], *, rounds: int, block: int
           ) -> dict[str, float]:
    """Median seconds per ``op`` under each configuration (alternating blocks)."""
    times: dict[str, list[float]] = {name: [] for name in configs}
    names = list(configs)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            lineage.set_client(configs[name])
            op()  # the first operation of a block pays for the new emitter
            for _ in range(block):
                start = time.perf_counter()
                op()
                times[name].append(time.perf_counter() - start)
    lineage.set_client(None)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, block = (2, 5) if args.quick else (4, 10)
    rows = pa.table({"id": pa.array(range(1000), pa.int64()),
                     "name": pa.array([f"n{i}" for i in range(1000)])})
    print(f"python {sys.version.split()[0]}, {platform.machine()}, lakekit {lk.__version__}; "
          f"{rounds} rounds x {block} operations per configuration\n")
    results: dict[str, dict[str, float]] = {}
    with backends() as configs, tempfile.TemporaryDirectory() as tmp, moto_s3_server() as s3:
        local = lk.Table(f"{tmp}/t")
        local.write(rows)
        s3.create_bucket("bench")
        remote = lk.Table("s3://bench/t", storage_options=s3.storage_options)
        remote.write(rows)
        results["append, local disk"] = per_op(configs, lambda: local.write(rows),
                                               rounds=rounds, block=block)
        results["append, moto S3"] = per_op(configs, lambda: remote.write(rows),
                                            rounds=rounds, block=block)
        results["lk.check(volume), local"] = per_op(
            configs, lambda: lk.check(local, volume=lk.Volume(min_rows=1)),
            rounds=rounds, block=block)
    names = list(next(iter(results.values())))
    print("| operation | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for op, by_name in results.items():
        base = by_name["off"]
        cells = [f"{by_name[n] * 1000:.1f} ms" + ("" if n == "off" else
                                                  f" ({by_name[n] / base:.2f}x)")
                 for n in names]
        print(f"| {op} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
