# The compiled JSON Lines parser (_ndjson.c).
from typing import Any

# per column: (validity, values, offsets, null count, length, [children, same shape])
Column = tuple[bytes | None, bytes | None, bytes | None, int, int, list[Any]]

def parse(data: Any, rows: int, specs: tuple[tuple[Any, ...], ...], /) -> list[Column] | None: ...
