# The compiled JSON Lines parser (_ndjson.c).
from typing import Any

def parse(
    data: Any, rows: int, names: tuple[str, ...], kinds: tuple[int, ...], /
) -> tuple[int, list[tuple[bytes | None, bytes | None, bytes | None, int]]] | None: ...
