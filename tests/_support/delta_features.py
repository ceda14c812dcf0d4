"""Delta tables with deletion vectors and column mapping, built for the reader tests.

deltalake writes the data files; what it cannot write is added by hand, following the Delta
protocol (delta-io/delta PROTOCOL.md):

* :func:`dv_table`: a commit that removes data files and adds them back with a deletion
  vector (DV), inline (``storageType "i"``: Z85 of the serialized bitmap in the log) or
  in a DV file (``storageType "u"``: ``<table>/<prefix>/deletion_vector_<uuid>.bin``, several
  DVs per file at their offsets). deltalake's ``delete()`` never writes DVs: it rewrites
  the files.
* :func:`column_mapping_table`: deltalake's own ``delta.columnMapping.mode`` tables
  (physical names ``col-<uuid>`` in the files, reader version 2 without a feature list),
  optionally with columns renamed by a hand-written ``metaData`` commit (deltalake has no
  rename), then more rows appended under the new names.

Every builder returns the table's logical rows as a ``pyarrow.Table``, computed from the
rows written and the rows deleted (never by lakekit); :func:`deltalake_rows` reads a
table through deltalake's own engine, the independent check of what was built.

The DV bitmap format (PROTOCOL.md, "Deletion Vector Format"): magic number 1681511377 as
a little-endian uint32, then a 64-bit roaring bitmap in the portable format (uint64 count
of 32-bit buckets; per bucket a uint32 key and a 32-bit roaring bitmap in the
RoaringFormatSpec layout). An inline DV is these bytes alone; in a DV file each DV is
framed as a big-endian int32 size, the bytes, and a big-endian CRC-32 of the bytes, after
a one-byte format version (1) at the start of the file.
"""

from __future__ import annotations

import json
import struct
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable, WriterProperties, write_deltalake

from lakekit.storage import Location, resolve

__all__ = [
    "DV_MAGIC",
    "column_mapping_table",
    "commit",
    "deltalake_rows",
    "dv_bytes",
    "dv_table",
    "sort_rows",
    "source_rows",
    "z85_decode",
    "z85_encode",
]

DV_MAGIC = 1681511377
_ROARING_NO_RUN = 12346  # SERIAL_COOKIE_NO_RUNCONTAINER
_ARRAY_MAX = 4096  # a container with more values is a bitmap container
_Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
REGIONS = ("north west", "süd/ost", "a=b%c")  # partition values that paths must escape
# nested columns: column mapping gives their fields physical names too
INFO = pa.struct([("code", pa.int32()),
                  ("items", pa.list_(pa.field(  # "element": Delta's (and parquet's) name
                      "element", pa.struct([("sku", pa.string()), ("qty", pa.int64())]))))])
ATTRS = pa.map_(pa.string(), pa.struct([("v", pa.float64())]))
_T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)


# -- encodings -----------------------------------------------------------------------------

def z85_encode(data: bytes) -> str:
    """Z85 (ZeroMQ Base85), zero-padded to a multiple of 4 bytes as Delta's codec does;
    the reader trims to ``sizeInBytes``."""
    padded = data + b"\0" * (-len(data) % 4)
    out = []
    for (word,) in struct.iter_unpack(">I", padded):
        chars = []
        for _ in range(5):
            word, r = divmod(word, 85)
            chars.append(_Z85[r])
        out.append("".join(reversed(chars)))
    return "".join(out)


def z85_decode(text: str) -> bytes:
    """The bytes of a Z85 string (a multiple of 5 characters)."""
    out = bytearray()
    for i in range(0, len(text), 5):
        word = 0
        for c in text[i:i + 5]:
            word = word * 85 + _Z85.index(c)
        out += struct.pack(">I", word)
    return bytes(out)


def _roaring32(values: np.ndarray) -> bytes:
    """A 32-bit roaring bitmap, RoaringFormatSpec without run containers: cookie, container
    count, (key, cardinality - 1) per container, their offsets, then the containers (sorted
    uint16 arrays up to 4096 values, else 8 KiB bitsets)."""
    keys = np.unique(values >> 16)
    bodies = []
    for key in keys:
        low = (values[(values >> 16) == key] & 0xFFFF).astype(np.uint16)
        if len(low) <= _ARRAY_MAX:
            bodies.append((int(key), len(low), low.astype("<u2").tobytes()))
        else:
            bits = np.zeros(1 << 16, dtype=bool)
            bits[low] = True
            bodies.append((int(key), len(low), np.packbits(bits, bitorder="little").tobytes()))
    n = len(bodies)
    head = struct.pack("<II", _ROARING_NO_RUN, n)
    head += b"".join(struct.pack("<HH", key, card - 1) for key, card, _ in bodies)
    offset = len(head) + 4 * n
    offsets = []
    for _, _, body in bodies:
        offsets.append(struct.pack("<I", offset))
        offset += len(body)
    return head + b"".join(offsets) + b"".join(body for _, _, body in bodies)


def dv_bytes(rows: Iterable[int]) -> bytes:
    """The DV of the row indexes ``rows``: magic, then the portable 64-bit roaring bitmap."""
    values = np.unique(np.asarray(list(rows), dtype=np.uint64))
    highs = np.unique(values >> np.uint64(32))
    out = struct.pack("<IQ", DV_MAGIC, len(highs))
    for high in highs:
        low = (values[(values >> np.uint64(32)) == high] & np.uint64(0xFFFFFFFF)).astype(np.int64)
        out += struct.pack("<I", int(high)) + _roaring32(low)
    return out


# -- storage -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Table:
    loc: Location

    @property
    def root(self) -> str:
        return self.loc.path.rstrip("/")

    @property
    def uri(self) -> str:
        return self.loc.delta_uri()

    @property
    def options(self) -> dict[str, str] | None:
        return self.loc.delta_storage_options() or None

    def write(self, rel: str, body: bytes) -> None:
        path = f"{self.root}/{rel}"
        if self.loc.is_local:
            self.loc.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        self.loc.fs.pipe_file(path, body)

    def read(self, rel: str) -> bytes:
        return bytes(self.loc.fs.cat_file(f"{self.root}/{rel}"))

    def commits(self) -> list[tuple[int, list[dict[str, Any]]]]:
        """(version, actions) of every JSON commit, in order (the tables here have no
        checkpoints)."""
        out = []
        for path in sorted(self.loc.fs.ls(f"{self.root}/_delta_log", detail=False)):
            name = path.rsplit("/", 1)[-1]
            if name.endswith(".json") and name[:20].isdigit():
                text = self.read(f"_delta_log/{name}").decode()
                out.append((int(name[:20]), [json.loads(x) for x in text.splitlines() if x]))
        return out

    def state(self) -> tuple[int, dict[str, Any], dict[str, Any], dict[str, dict[str, Any]]]:
        """Latest version, protocol, metaData and live add actions (by path)."""
        version, protocol, meta = -1, {}, {}
        adds: dict[str, dict[str, Any]] = {}
        for version, actions in self.commits():  # noqa: B007 (the last one is returned)
            for a in actions:
                if "protocol" in a:
                    protocol = a["protocol"]
                elif "metaData" in a:
                    meta = a["metaData"]
                elif "add" in a:
                    adds[a["add"]["path"]] = a["add"]
                elif "remove" in a:
                    adds.pop(a["remove"]["path"], None)
        return version, protocol, meta, adds

    def commit(self, version: int, actions: Sequence[dict[str, Any]]) -> None:
        info = {"commitInfo": {"timestamp": int(time.time() * 1000),
                               "operation": "TEST HAND-WRITTEN COMMIT",
                               "engineInfo": "lakekit tests/_support/delta_features.py"}}
        body = "\n".join(json.dumps(a) for a in [info, *actions]) + "\n"
        rel = f"_delta_log/{version:020d}.json"
        if self.loc.fs.exists(f"{self.root}/{rel}"):
            raise FileExistsError(rel)
        self.write(rel, body.encode())


def _open(uri: str, storage_options: dict[str, Any] | None) -> _Table:
    return _Table(resolve(uri, storage_options=storage_options))


def commit(uri: str, actions: Sequence[dict[str, Any]], *,
           storage_options: dict[str, Any] | None = None) -> int:
    """Write ``actions`` as the table's next version (after a commitInfo); returns it."""
    t = _open(uri, storage_options)
    version = t.state()[0] + 1
    t.commit(version, actions)
    return version


# -- data ----------------------------------------------------------------------------------

def source_rows(start: int, n: int) -> pa.Table:
    """Rows ``start .. start + n - 1``: id, label, region (the partition column of the
    partitioned variants), amount (with nulls), ts (UTC microseconds), info (a struct with a
    list of structs; null every 13th row) and attrs (a map to structs). Built column-wise:
    the large tables have 70 000 rows per write."""
    ids = np.arange(start, start + n, dtype=np.int64)
    micros = int(_T0.timestamp()) * 1_000_000 + ids * 60_000_000
    # info.items: i % 3 structs {sku: "s<i>", qty: 0, 1, ...}
    counts = ids % 3
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    owner = np.repeat(ids, counts)
    qty = np.arange(len(owner), dtype=np.int64) - np.repeat(offsets[:-1], counts)
    item_type = INFO.field("items").type
    items = pa.ListArray.from_arrays(
        pa.array(offsets), pa.StructArray.from_arrays(
            [pa.array([f"s{i}" for i in owner], pa.string()), pa.array(qty)],
            fields=list(item_type.value_type)),
        type=item_type)
    info = pa.StructArray.from_arrays(
        [pa.array(ids % 5, pa.int32()), items], fields=list(INFO),
        mask=pa.array(ids % 13 == 0))
    # attrs: {"n": {v: i}} on odd rows, empty on even ones
    odd = ids[ids % 2 == 1]
    attr_offsets = np.concatenate([[0], np.cumsum(ids % 2)]).astype(np.int32)
    attrs = pa.MapArray.from_arrays(
        pa.array(attr_offsets), pa.array(["n"] * len(odd), pa.string()),
        pa.StructArray.from_arrays([pa.array(odd.astype(np.float64))],
                                   fields=list(ATTRS.item_type)),
        type=ATTRS)
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "label": pa.array([f"row-{i}" for i in ids], pa.string()),
        "region": pa.array(np.array(REGIONS, dtype=object)[ids % 3], pa.string()),
        "amount": pa.array(ids * 0.5, pa.float64(), mask=ids % 11 == 0),
        "ts": pa.array(micros, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "info": info,
        "attrs": attrs,
    })


def _plain_field(field: pa.Field) -> pa.Field:
    return pa.field(field.name, _plain_type(field.type), field.nullable)


def _plain_type(typ: pa.DataType) -> pa.DataType:
    """``typ`` with view types made plain (string_view -> string, ...) at every level."""
    if pa.types.is_string_view(typ):
        return pa.string()
    if pa.types.is_binary_view(typ):
        return pa.binary()
    if pa.types.is_struct(typ):
        return pa.struct([_plain_field(typ.field(i)) for i in range(typ.num_fields)])
    if pa.types.is_map(typ):
        return pa.map_(_plain_type(typ.key_type), _plain_field(typ.item_field))
    if pa.types.is_list(typ) or pa.types.is_list_view(typ):
        return pa.list_(_plain_field(typ.value_field))
    if pa.types.is_large_list(typ) or pa.types.is_large_list_view(typ):
        return pa.large_list(_plain_field(typ.value_field))
    return typ


def sort_rows(table: pa.Table, key: str = "id") -> pa.Table:
    """``table`` sorted by ``key``, view types cast to plain ones at every level (deltalake's
    engine returns ``string_view``), field metadata dropped."""
    table = table.cast(pa.schema([_plain_field(f) for f in table.schema]))
    return table.take(pc.sort_indices(table, [(key, "ascending")]))


def deltalake_rows(uri: str, *, storage_options: dict[str, Any] | None = None,
                   version: int | None = None) -> pa.Table:
    """The table read by deltalake's own engine (DataFusion; applies DVs and column
    mapping), sorted by id."""
    t = _open(uri, storage_options)
    dt = DeltaTable(t.uri, version=version, storage_options=t.options)
    return sort_rows(pa.table(dt.scan()))


# -- deletion vectors ----------------------------------------------------------------------

DeleteRule = Callable[[pa.Table], np.ndarray]


def dv_table(
    uri: str,
    *,
    storage_options: dict[str, Any] | None = None,
    partitioned: bool = False,
    storage: str = "inline",
    writes: int = 3,
    rows_per_write: int = 40,
    row_group_rows: int = 16,
    column_mapping: bool = False,
    delete: DeleteRule | None = None,
) -> pa.Table:
    """A Delta table with deletion vectors; returns its rows after the deletes.

    ``writes`` appends of ``rows_per_write`` rows each (ids from 0; partitioned by
    ``region`` with ``partitioned``; row groups of ``row_group_rows``), then one
    hand-written commit: protocol 3 / 7 with ``deletionVectors``, and each data file with
    rows to delete removed and added back with a DV of those rows. ``storage`` is
    ``"inline"`` (``i``) or ``"file"`` (``u``: one DV file under a random prefix holding
    every DV at its offset). ``delete(rows of one data file)`` gives the keep-nothing mask;
    by default the rows with ``id % 4 == 1`` outside the first write, and the last id
    written (the last row of its file), so that the first write's files get no DV.

    The version before the DV commit (``writes - 1``) holds every row written.
    """
    if storage not in ("inline", "file"):
        raise ValueError(f"storage must be 'inline' or 'file', got {storage!r}")
    t = _open(uri, storage_options)
    last = writes * rows_per_write - 1
    if delete is None:
        def delete(rows: pa.Table) -> np.ndarray:
            ids = rows.column("id").to_numpy()
            return ((ids % 4 == 1) & (ids >= rows_per_write)) | (ids == last)

    config = {"delta.columnMapping.mode": "name"} if column_mapping else None
    props = WriterProperties(max_row_group_size=row_group_rows)
    written = []
    for w in range(writes):
        rows = source_rows(w * rows_per_write, rows_per_write)
        written.append(rows)
        write_deltalake(
            t.uri, rows, mode="append", storage_options=t.options,
            partition_by=["region"] if partitioned else None,
            writer_properties=props, configuration=config if w == 0 else None,
        )
    version, protocol, meta, adds = t.state()
    names = _physical_names(meta)  # logical -> physical (identity without column mapping)
    logical = {v: k for k, v in names.items()}

    deleted_ids: list[int] = []
    dvs: list[tuple[dict[str, Any], np.ndarray]] = []
    for add in adds.values():
        data = pq.read_table(t.loc.fs.open(f"{t.root}/{unquote(add['path'])}", "rb"))
        data = data.rename_columns([logical.get(c, c) for c in data.column_names])
        for key, raw in add["partitionValues"].items():  # partition columns are not in files
            name = logical.get(key, key)
            data = data.append_column(name, pa.array([raw] * data.num_rows, pa.string()))
        mask = np.asarray(delete(data), dtype=bool)
        if mask.any():
            rows = np.flatnonzero(mask)
            dvs.append((add, rows))
            deleted_ids.extend(data.column("id").to_numpy()[rows].tolist())

    now = int(time.time() * 1000)
    actions: list[dict[str, Any]] = []
    features = ["deletionVectors", *(["columnMapping"] if column_mapping else [])]
    actions.append({"protocol": {
        "minReaderVersion": 3, "minWriterVersion": 7,
        "readerFeatures": sorted(set(features) | set(protocol.get("readerFeatures") or [])),
        "writerFeatures": sorted(set(features) | set(protocol.get("writerFeatures") or [])),
    }})
    new_meta = dict(meta)
    new_meta["configuration"] = {**(meta.get("configuration") or {}),
                                 "delta.enableDeletionVectors": "true"}
    actions.append({"metaData": new_meta})
    descriptors = _dv_descriptors(t, [rows for _, rows in dvs], storage)
    for (add, _), descriptor in zip(dvs, descriptors, strict=True):
        actions.append({"remove": {
            "path": add["path"], "deletionTimestamp": now, "dataChange": True,
            "extendedFileMetadata": True, "partitionValues": add["partitionValues"],
            "size": add["size"],
        }})
        stats = json.loads(add["stats"])
        stats["tightBounds"] = False  # numRecords stays the file's row count (protocol)
        new_add = {k: v for k, v in add.items() if v is not None}
        new_add.update({"modificationTime": now, "dataChange": True, "stats": json.dumps(stats),
                        "deletionVector": descriptor})
        actions.append({"add": new_add})
    t.commit(version + 1, actions)

    everything = pa.concat_tables(written)
    keep = pc.invert(pc.is_in(everything.column("id"), pa.array(deleted_ids, pa.int64())))
    return _table_order(everything.filter(keep), meta)


def _dv_descriptors(t: _Table, deletes: list[np.ndarray], storage: str) -> list[dict[str, Any]]:
    encoded = [dv_bytes(rows.tolist()) for rows in deletes]
    if storage == "inline":
        return [
            {"storageType": "i", "pathOrInlineDv": z85_encode(b), "sizeInBytes": len(b),
             "cardinality": len(rows)}
            for b, rows in zip(encoded, deletes, strict=True)
        ]
    file_id = uuid.uuid4()
    prefix = "dv"  # a random prefix, as Delta writers may use: <prefix><z85 of the uuid>
    body = bytearray(b"\x01")  # format version 1
    out = []
    for b, rows in zip(encoded, deletes, strict=True):
        out.append({"storageType": "u", "pathOrInlineDv": prefix + z85_encode(file_id.bytes),
                    "offset": len(body), "sizeInBytes": len(b), "cardinality": len(rows)})
        body += struct.pack(">i", len(b)) + b + struct.pack(">I", zlib.crc32(b))
    t.write(f"{prefix}/deletion_vector_{file_id}.bin", bytes(body))
    return out


# -- column mapping ------------------------------------------------------------------------

def _physical_names(meta: dict[str, Any]) -> dict[str, str]:
    fields = json.loads(meta["schemaString"])["fields"]
    return {
        f["name"]: f.get("metadata", {}).get("delta.columnMapping.physicalName", f["name"])
        for f in fields
    }


def _table_order(table: pa.Table, meta: dict[str, Any]) -> pa.Table:
    """``table``'s columns in the order of the table schema in ``meta``."""
    names = [f["name"] for f in json.loads(meta["schemaString"])["fields"]]
    return sort_rows(table.select(names))


def _rename_fields(fields: list[dict[str, Any]], renamed: dict[str, str], prefix: str) -> None:
    """Rename, in place, the Delta schema ``fields`` named in ``renamed`` (dotted paths for
    fields of structs)."""
    for f in fields:
        path = prefix + f["name"]
        typ = f["type"]
        if isinstance(typ, dict) and typ.get("type") == "struct":
            _rename_fields(typ["fields"], renamed, path + ".")
        f["name"] = renamed.get(path, f["name"])


def _renamed_type(typ: pa.DataType, renamed: dict[str, str], prefix: str) -> pa.DataType:
    if not pa.types.is_struct(typ):
        return typ
    return pa.struct([
        pa.field(renamed.get(prefix + f.name, f.name).rsplit(".", 1)[-1],
                 _renamed_type(f.type, renamed, prefix + f.name + "."), f.nullable)
        for f in typ
    ])


def _rename(table: pa.Table, renamed: dict[str, str]) -> pa.Table:
    """``table`` with the columns and struct fields of ``renamed`` renamed (same data)."""
    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        typ = _renamed_type(column.type, renamed, name + ".")
        columns.append(pa.chunked_array([c.view(typ) for c in column.chunks], typ))
    return pa.table(columns, names=[renamed.get(c, c) for c in table.column_names])


def column_mapping_table(
    uri: str,
    *,
    storage_options: dict[str, Any] | None = None,
    mode: str = "name",
    partitioned: bool = False,
    renamed: dict[str, str] | None = None,
    rows: int = 60,
) -> pa.Table:
    """A column-mapped table written by deltalake; returns its rows.

    deltalake writes physical names ``col-<uuid>`` into the files (for the fields of
    nested structs too), partition values under physical names in the log, and protocol
    reader 2 / writer 5 (no feature lists). With ``renamed`` (logical old -> new name;
    ``"info.code"`` for a struct's field), a hand-written ``metaData`` commit renames them
    (physical names unchanged; a partition column in ``partitionColumns`` too), then
    deltalake appends ``rows // 2`` more rows under the new names.
    """
    t = _open(uri, storage_options)
    first = source_rows(0, rows)
    write_deltalake(
        t.uri, first, storage_options=t.options,
        partition_by=["region"] if partitioned else None,
        configuration={"delta.columnMapping.mode": mode},
    )
    if not renamed:
        _, _, meta, _ = t.state()
        return _table_order(first, meta)
    version, _, meta, _ = t.state()
    schema = json.loads(meta["schemaString"])
    _rename_fields(schema["fields"], renamed, "")
    new_meta = dict(meta)
    new_meta["schemaString"] = json.dumps(schema)
    new_meta["partitionColumns"] = [renamed.get(c, c) for c in meta["partitionColumns"]]
    t.commit(version + 1, [{"metaData": new_meta}])
    more = _rename(source_rows(rows, rows // 2), renamed)
    write_deltalake(
        t.uri, more, mode="append", storage_options=t.options,
        partition_by=new_meta["partitionColumns"] or None,
    )
    return _table_order(pa.concat_tables([_rename(first, renamed), more]), new_meta)
