#!/usr/bin/env python3
"""The idgraph transform on Spark: the sources of one batch to the same Gremlin CSV graph batch
that `transform` (Rust) writes, from the same `schemas/sources.toml` and `schemas/graph.toml`.

Plain PySpark on `SparkSession` (no `GlueContext`), so it runs unchanged on AWS Glue 5.0, EMR,
`spark-submit` and a laptop's `pip install pyspark`. Arguments are `--NAME value` pairs, as Glue
passes them:

  --input URI           the data root holding datasets/sources/ (a folder or s3://bucket/prefix)
  --output URI          the root that receives datasets/graph/<batch>/
  --batch NAME          `initial` or an incremental batch timestamp
  --sources-schema URI  schemas/sources.toml
  --mapping URI         schemas/graph.toml
  --max-reject-rate F   fail when more than this fraction of rows is rejected (0.01)
  --max-file-bytes N    split a label's file after this many bytes of text (256000000)
  --gzip true|false     gzip the graph files
  --force true|false    transform a batch whose manifest exists again

What it shares with the Rust transform (and the parity test checks): CSV reading with the same
record rules and reject reasons, the same normalisation, the same ids (xxh3-128 shaped as RFC 9562
version-8 UUIDs), the same last-non-empty-wins merge in source order (dataset, file, line), the
same typed, quoted values, and the same manifest counts. Files may be split differently.

Work: the driver lists the batch's files; each file is decoded and cut into chunks at record
boundaries exactly as Rust cuts them; chunks are parsed and mapped in parallel; one shuffle,
partitioned by id range, groups each element's rows in id order, where they are merged and
written, partition by partition. Local paths are written with Python file I/O, s3:// with boto3
and server-side encryption.
"""
from __future__ import annotations

import gzip as gzip_module
import hashlib
import json
import marshal
from operator import itemgetter
import os
import re
import shutil
import sys
import time
import tomllib
from dataclasses import dataclass, field
from typing import Iterator, Optional

import xxhash

DATASETS = ("first_party", "cookie", "clickstream", "transactional")
CHUNK_BYTES = 4 << 20
# Source bytes per id-range partition of the merge and write.
PARTITION_INPUT_BYTES = 32 << 20
MAX_FIELD_BYTES = 1 << 30
SEPARATOR = b"\x1f"
# Rust's `str::trim` removes Unicode White_Space; Python's `strip()` also removes \x1c-\x1f.
WHITE_SPACE = ("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
               "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
SPECIAL = re.compile(r'[,\n\r"]')
INT_RE = re.compile(r"[+-]?[0-9]+\Z")
I64 = (-(1 << 63), (1 << 63) - 1)
I32 = (-(1 << 31), (1 << 31) - 1)


class JobError(Exception):
    """A run that cannot go on; the message names the file, column or location concerned."""


# ---------------------------------------------------------------------------------------------
# Schemas and mapping (schemas/sources.toml, schemas/graph.toml), resolved to column positions.

@dataclass
class Column:
    name: str
    ty: str
    nullable: bool


@dataclass
class Prop:
    name: str
    ty: str  # String | Int | Long | Double | Date
    cardinality: Optional[str]  # single | set | None (edges)

    def header(self) -> str:
        return f"{self.name}:{self.ty}" + (f"({self.cardinality})" if self.cardinality else "")


@dataclass
class VertexLabel:
    name: str
    normalise: str
    key_property: str
    props: list = field(default_factory=list)


@dataclass
class EdgeLabel:
    name: str
    props: list = field(default_factory=list)


@dataclass
class Rules:
    """What one dataset's rows produce: (label, key column, [(column, property)]) per vertex
    rule; (label, from (label, column, when), to (label, column), key columns,
    [(column, property)]) per edge rule; columns that feed Int properties."""
    vertices: list = field(default_factory=list)
    edges: list = field(default_factory=list)
    int32: set = field(default_factory=set)


@dataclass
class Mapping:
    sha256: str
    columns: dict  # dataset -> [Column]
    vertices: list
    edges: list
    rules: dict  # dataset -> Rules


def load_sources(text: str) -> dict:
    parsed = tomllib.loads(text)
    columns = {}
    for entry in parsed.get("dataset", []):
        columns[entry["name"]] = [Column(c["name"], c["type"], bool(c.get("nullable", False)))
                                  for c in entry["columns"]]
    missing = [d for d in DATASETS if d not in columns]
    if missing:
        raise JobError(f"sources schema: no dataset {', '.join(missing)}")
    return columns


def load_mapping(text: str, columns: dict, origin: str) -> Mapping:
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise JobError(f"{origin}: {e}") from None

    def fail(message: str):
        raise JobError(f"{origin}: {message}")

    vertices = [VertexLabel(name, v["normalise"], v["key_property"])
                for name, v in sorted(parsed.get("vertex", {}).items())]
    for v in vertices:
        if v.normalise not in ("trim", "lower", "upper", "phone"):
            fail(f"vertex {v.name}: unknown normalise `{v.normalise}`")
    index = {v.name: i for i, v in enumerate(vertices)}
    rules = {d: Rules() for d in DATASETS}

    def position(dataset: str, column: str, owner: str) -> int:
        if dataset not in columns:
            fail(f"{owner}: unknown dataset `{dataset}`")
        for i, c in enumerate(columns[dataset]):
            if c.name == column:
                return i
        fail(f"{owner}: dataset {dataset} has no column `{column}`")

    def label_of(name: str, owner: str) -> int:
        if name not in index:
            fail(f"{owner}: unknown vertex label `{name}` (declare it as [vertex.{name}])")
        return index[name]

    def add_props(owner, plist, dataset, entries, is_edge):
        sources = []
        for e in entries:
            column = position(dataset, e["column"], owner)
            cardinality = None if is_edge else e.get("cardinality", "single")
            wanted = Prop(e["property"], e["type"], cardinality)
            found = [i for i, p in enumerate(plist) if p.name == wanted.name]
            if found and plist[found[0]] != wanted:
                fail(f"{owner}: property `{wanted.name}` is declared twice with different types")
            if not found:
                plist.append(wanted)
                found = [len(plist) - 1]
            sources.append((column, found[0]))
        return sources

    for entry in parsed.get("properties", []):
        owner = f"[[properties]] of {entry['vertex']} from {entry['dataset']}"
        label = label_of(entry["vertex"], owner)
        key = position(entry["dataset"], entry["key"], owner)
        props = add_props(owner, vertices[label].props, entry["dataset"], entry["columns"], False)
        rules[entry["dataset"]].vertices.append((label, key, props))

    edges: list = []
    for entry in parsed.get("edge", []):
        owner = f"[[edge]] {entry['label']} from {entry['dataset']}"
        d = entry["dataset"]
        frm, to = entry["from"], entry["to"]
        plist: list = []
        props = add_props(owner, plist, d, entry.get("properties", []), True)
        existing = [i for i, e in enumerate(edges) if e.name == entry["label"]]
        if existing and edges[existing[0]].props != plist:
            fail(f"{owner}: every [[edge]] with label {entry['label']} must declare the same properties")
        if not existing:
            edges.append(EdgeLabel(entry["label"], plist))
            existing = [len(edges) - 1]
        rules[d].edges.append((
            existing[0],
            (label_of(frm["vertex"], owner), position(d, frm["column"], owner), frm.get("when")),
            (label_of(to["vertex"], owner), position(d, to["column"], owner)),
            [position(d, k, owner) for k in entry.get("key", [])],
            props,
        ))
    for d, r in rules.items():
        for label, _, props in r.vertices:
            r.int32.update(c for c, p in props if vertices[label].props[p].ty == "Int")
        for label, _, _, _, props in r.edges:
            r.int32.update(c for c, p in props if edges[label].props[p].ty == "Int")
    return Mapping(hashlib.sha256(text.encode()).hexdigest(), columns, vertices, edges, rules)


# ---------------------------------------------------------------------------------------------
# Normalisation and ids (crates/transform/src/normalise.rs, ids.rs).

def normalise(how: str, value: str) -> str:
    trimmed = value.strip(WHITE_SPACE)
    if how == "trim":
        return trimmed
    if how == "lower":
        return trimmed.lower()
    if how == "upper":
        return trimmed.upper()
    lower = trimmed.translate(ASCII_LOWER)
    at = lower.find("ext")
    if at < 0:
        at = lower.find("x")
    number = lower if at < 0 else lower[:at]
    digits = "".join(c for c in number if "0" <= c <= "9")
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    if len(digits) == 13 and digits.startswith("001"):
        digits = digits[3:]
    return digits


# The RFC 9562 variant bits (10) over the hash's own two low bits of that nibble.
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def uuid_text(data: bytes) -> str:
    """The xxh3-128 hash of `data` shaped as an RFC 9562 version-8 UUID, in its text form: the
    version nibble set to 8, the variant bits to 10 (ids.rs: uuid::Builder::from_custom_bytes)."""
    h = xxhash.xxh3_128_hexdigest(data)
    return f"{h[:8]}-{h[8:12]}-8{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def vertex_id(label: str, key: str) -> str:
    return uuid_text(b"v" + SEPARATOR + label.encode() + SEPARATOR + key.encode())


def id_bytes(element_id: str) -> bytes:
    return bytes.fromhex(element_id.replace("-", ""))


def edge_id(label: str, frm: bytes, to: bytes, keys: list) -> str:
    """`frm` and `to` are the endpoint ids' 16 bytes."""
    data = b"e" + SEPARATOR + label.encode() + SEPARATOR + frm + to
    for k in keys:
        data += SEPARATOR + k.encode()
    return uuid_text(data)


# ---------------------------------------------------------------------------------------------
# Reading CSV exactly as gremlin_csv::Records does (crates/gremlin-csv/src/record.rs).

def records(text: str, line: int) -> Iterator[tuple]:
    """Yields (line, fields, None) or (line, None, reason) for each record of `text`, whose first
    line is `line`."""
    n, pos = len(text), 0
    while pos < n:
        start_line = line
        nl = text.find("\n", pos)
        end = n if nl < 0 else nl
        # The common record: no quote, no carriage return (but a CRLF ending).
        body_end = end - 1 if nl >= 0 and end > pos and text[end - 1] == "\r" else end
        segment = text[pos:body_end]
        if '"' not in segment and "\r" not in segment:
            pos = n if nl < 0 else end + 1
            if nl >= 0:
                line += 1
            yield start_line, segment.split(","), None
            continue
        fields: list = []
        error = None
        while True:
            field_no = len(fields) + 1
            if pos < n and text[pos] == '"':
                open_line = line
                i = pos + 1
                parts = []
                segment_start = i
                while True:
                    q = text.find('"', i)
                    if q < 0:
                        line = open_line
                        error = f"a quoted field that starts on line {open_line} is never closed"
                        err_line = open_line
                        break
                    line += text.count("\n", i, q)
                    if q + 1 < n and text[q + 1] == '"':
                        parts.append(text[segment_start:q + 1])
                        i = q + 2
                        segment_start = i
                        continue
                    i = q
                    break
                if error:
                    break
                parts.append(text[segment_start:i])
                fields.append("".join(parts))
                pos = i + 1
                c = text[pos] if pos < n else None
                if c == ",":
                    pos += 1
                    continue
                if c is None:
                    break
                if c == "\n":
                    pos += 1
                    line += 1
                    break
                if c == "\r" and text[pos + 1:pos + 2] == "\n":
                    pos += 2
                    line += 1
                    break
                error, err_line = f"field {field_no} has text after its closing quote", start_line
                break
            m = SPECIAL.search(text, pos)
            i = n if m is None else m.start()
            c = text[i] if i < n else None
            if c == "\r" and text[i + 1:i + 2] != "\n":
                pos = i
                error = f"field {field_no} holds a carriage return but is not quoted"
                err_line = start_line
                break
            if c == '"':
                pos = i
                error, err_line = f"field {field_no} holds a double quote but is not quoted", start_line
                break
            fields.append(text[pos:i])
            if c == ",":
                pos = i + 1
                continue
            pos = i if c is None else (i + 2 if c == "\r" else i + 1)
            if i < n:
                line += 1
            break
        if error is not None:
            # Recover: skip to the start of the next line.
            nl = text.find("\n", pos)
            if nl < 0:
                pos = n
            else:
                pos = nl + 1
                line += 1
            yield err_line, None, error
        else:
            yield start_line, fields, None


def split_chunks(data: bytes, start: int, start_line: int, target: int) -> list:
    """Byte ranges of about `target` bytes ending at a newline after an even number of quotes,
    each with its first line (crates/transform/src/source.rs: split_chunks)."""
    chunks = []
    chunk_start, chunk_line, line = start, start_line, start_line
    quotes = 0
    scanned = start  # quotes and lines are counted up to here
    n = len(data)
    while True:
        cut_at = chunk_start + target  # a cut needs i + 1 >= cut_at
        i = data.find(b"\n", max(cut_at - 1, scanned))
        while i >= 0:
            quotes += data.count(b'"', scanned, i + 1)
            line += data.count(b"\n", scanned, i + 1)
            scanned = i + 1
            if quotes % 2 == 0 and i + 1 < n:
                break
            i = data.find(b"\n", i + 1)
        if i < 0:
            break
        chunks.append((chunk_start, i + 1, chunk_line))
        chunk_start, chunk_line = i + 1, line
    if chunk_start < n:
        chunks.append((chunk_start, n, chunk_line))
    return chunks


def shorten(value: str) -> str:
    return value if len(value) <= 80 else value[:80] + "..."


_DAYS: dict = {}


def _valid_day(b: bytes) -> bool:
    """Whether yyyy-MM-dd (10 bytes) is a date of the proleptic Gregorian calendar, remembered.
    (A plain dict: functools' caches cannot travel to Spark's workers from a __main__ script.)"""
    valid = _DAYS.get(b)
    if valid is None:
        if len(_DAYS) > 100_000:
            _DAYS.clear()
        valid = _DAYS[b] = _is_valid_date(b)
    return valid


def is_valid_date(b: bytes) -> bool:
    """gremlin_csv::is_valid_date on yyyy-MM-dd[THH:mm[:ss[Z]]] bytes. Days repeat a lot
    (birthdays, event days): they are checked once."""
    if len(b) == 10:
        return _valid_day(b)
    return len(b) in (16, 19, 20) and _valid_day(b[:10]) and _TIME.fullmatch(b, 10) is not None


# The time of day after a valid day, as _is_valid_date checks it: THH:mm[:ss[Z]].
_TIME = re.compile(rb"T(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9]Z?)?")


def _is_valid_date(b: bytes) -> bool:
    if len(b) not in (10, 16, 19, 20) or b[4:5] != b"-" or b[7:8] != b"-":
        return False

    def two(at):
        s = b[at:at + 2]
        return int(s) if len(s) == 2 and s.isdigit() else None

    hi, lo, month, day = two(0), two(2), two(5), two(8)
    if None in (hi, lo, month, day):
        return False
    year = hi * 100 + lo
    if not 1 <= month <= 12 or day == 0:
        return False
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    if day > days:
        return False
    if len(b) == 10:
        return True
    if b[10:11] != b"T" or b[13:14] != b":":
        return False
    hour, minute = two(11), two(14)
    if hour is None or minute is None or hour > 23 or minute > 59:
        return False
    if len(b) == 16:
        return True
    second = two(17)
    return b[16:17] == b":" and second is not None and second <= 59 and (len(b) == 19 or b[19:20] == b"Z")


def timestamp(value: str) -> Optional[str]:
    b = value.encode()
    if len(b) < 19 or not b[:19].isascii() or b[10:11] not in (b" ", b"T"):
        return None
    rest = b[19:]
    if rest.endswith(b"Z"):
        rest = rest[:-1]
    if rest.startswith(b"."):
        if len(rest) == 1 or not rest[1:].isdigit() or not rest[1:].isascii():
            return None
    elif rest:
        return None
    out = (b[:10] + b"T" + b[11:19] + b"Z")
    return out.decode() if is_valid_date(out) else None


def convert(column: Column, raw: str, int32: bool):
    """(value or None, None) or (None, reason): source.rs `convert`."""
    if column.ty == "string" and raw and raw[0] not in WHITE_SPACE and raw[-1] not in WHITE_SPACE \
            and not (column.nullable and len(raw) == 4 and raw.lower() == "null"):
        return raw, None
    trimmed = raw.strip(WHITE_SPACE)
    if not trimmed or (column.nullable and trimmed.lower() == "null" and trimmed.isascii()):
        if column.nullable:
            return None, None
        return None, f"column {column.name} is empty"
    ty = column.ty
    if ty == "string":
        return raw, None
    if ty == "int":
        if INT_RE.match(trimmed) is None or not trimmed.isascii():
            return None, f"column {column.name}: `{shorten(raw)}` is not a whole number"
        number = int(trimmed)
        if not I64[0] <= number <= I64[1]:
            return None, f"column {column.name}: `{shorten(raw)}` is not a whole number"
        if int32 and not I32[0] <= number <= I32[1]:
            return None, f"column {column.name}: {number} does not fit an Int (32 bits) property"
        return str(number), None
    if ty == "date":
        b = trimmed.encode()
        if len(b) == 10 and is_valid_date(b):
            return trimmed, None
        return None, f"column {column.name}: `{shorten(raw)}` is not a date (yyyy-MM-dd)"
    converted = timestamp(trimmed)
    if converted is None:
        return None, (f"column {column.name}: `{shorten(raw)}` is not a timestamp "
                      "(yyyy-MM-dd HH:mm:ss[.ffffff])")
    return converted, None


# ---------------------------------------------------------------------------------------------
# Mapping one chunk (crates/transform/src/elements.rs: map_chunk).

def partition_of(element_id: str, partitions: int) -> int:
    """Ids are uniform hashes: their first 16 bits spread elements evenly over partitions."""
    return int(element_id[:4], 16) * partitions // 65536


def map_chunk(mapping: Mapping, dataset_index: int, file_index: int, file: str, text: str,
              first_line: int, lossy: bool, partitions: int) -> tuple:
    """Parses one chunk and maps its rows to graph elements (elements.rs: map_chunk).

    Returns (rejects, hashes, elements): rejects as (seq, (dataset, file, line, column,
    reason)); per partition, the hashes of the good rows as (dataset, hash) and the element rows
    as (label, id, seq, key or from, to, properties or None), vertex labels first, then edge
    labels. `seq` orders rows as the source does."""
    dataset = DATASETS[dataset_index]
    columns = mapping.columns[dataset]
    rules = mapping.rules[dataset]
    width = len(columns)
    vertices, edges = mapping.vertices, mapping.edges
    n_vertex_labels = len(vertices)
    base = (dataset_index << 60) | (file_index << 40)
    rejects: list = []
    hashes: list = [[] for _ in range(partitions)]
    elements: list = [[] for _ in range(partitions)]
    # Rows that carry no properties repeat a lot (every profile names its country): one per
    # chunk is enough (the merge would fold them anyway, after a costlier shuffle). Keys repeat
    # too: each is normalised and hashed once per chunk.
    plain_vertices: set = set()
    plain_edges: set = set()
    ids: dict = {}
    # (label, raw value) -> (key, id, id bytes): a value seen before in the chunk is neither
    # normalised nor hashed again.
    resolved: dict = {}

    def resolve(label: int, raw: Optional[str]):
        found = resolved.get((label, raw))
        if found is None:
            vertex = vertices[label]
            key = normalise(vertex.normalise, raw or "")
            vid = raw_id = None
            if key:
                cached = ids.get((label, key))
                if cached is None:
                    vid = vertex_id(vertex.name, key)
                    cached = ids[(label, key)] = (vid, id_bytes(vid))
                vid, raw_id = cached
            found = resolved[(label, raw)] = (key, vid, raw_id)
        return found

    # Most values are strings that need no conversion: told apart here without a call.
    plain_string = [c.ty == "string" for c in columns]
    nullable = [c.nullable for c in columns]
    for line, fields, error in records(text, first_line):
        seq = base | line
        if error is not None:
            rejects.append((seq, (dataset, file, line, "", error)))
            continue
        if len(fields) != width:
            rejects.append((seq, (dataset, file, line, "", f"expected {width} fields, found {len(fields)}")))
            continue
        values = []
        problem = None
        for i, raw in enumerate(fields):
            if plain_string[i] and raw and raw[0] not in WHITE_SPACE and raw[-1] not in WHITE_SPACE \
                    and not (nullable[i] and len(raw) == 4 and raw.lower() == "null") \
                    and len(raw) <= MAX_FIELD_BYTES // 4 and not (lossy and "\ufffd" in raw):
                values.append(raw)
                continue
            column = columns[i]
            if lossy and "\ufffd" in raw:
                problem = (column.name, f"column {column.name} is not valid UTF-8")
                break
            if len(raw) > MAX_FIELD_BYTES // 4 and len(raw.encode()) > MAX_FIELD_BYTES:
                problem = (column.name, f"column {column.name}: a value of {len(raw.encode())} bytes; "
                                        f"at most {MAX_FIELD_BYTES} are taken")
                break
            value, reason = convert(column, raw, i in rules.int32)
            if reason is not None:
                problem = (column.name, reason)
                break
            values.append(value)
        if problem is not None:
            rejects.append((seq, (dataset, file, line, problem[0], problem[1])))
            continue
        # Exact duplicates are counted by a hash of the row's values (repr is injective on a
        # list of strings and Nones).
        row_hash = xxhash.xxh3_128_intdigest(repr(values).encode())
        hashes[row_hash % partitions].append((dataset_index, row_hash))

        for label, key_column, props in rules.vertices:
            key, vid, _ = resolve(label, values[key_column])
            if vid is None:
                continue
            out = [None] * len(vertices[label].props)
            for column, p in props:
                out[p] = values[column]
            plain_vertices.add(vid)
            elements[partition_of(vid, partitions)].append((label, vid, seq, key, None, out))
        for label, (f_label, f_column, when), (t_label, t_column), key_columns, props in rules.edges:
            from_raw = values[f_column] or ""
            if when == "email" and "@" not in from_raw:
                continue
            if when == "not-email" and "@" in from_raw:
                continue
            f_key, f_id, f_raw = resolve(f_label, from_raw)
            if f_id is None:
                continue
            t_key, t_id, t_raw = resolve(t_label, values[t_column])
            if t_id is None:
                continue
            plain = not props and not key_columns
            if plain and (label, f_id, t_id) in plain_edges:
                continue
            if f_id not in plain_vertices:
                plain_vertices.add(f_id)
                elements[partition_of(f_id, partitions)].append((f_label, f_id, seq, f_key, None, None))
            if t_id not in plain_vertices:
                plain_vertices.add(t_id)
                elements[partition_of(t_id, partitions)].append((t_label, t_id, seq, t_key, None, None))
            if plain:
                plain_edges.add((label, f_id, t_id))
            eid = edge_id(edges[label].name, f_raw, t_raw, [values[c] or "" for c in key_columns])
            out = None
            if props:
                out = [None] * len(edges[label].props)
                for column, p in props:
                    out[p] = values[column]
            elements[partition_of(eid, partitions)].append((n_vertex_labels + label, eid, seq, f_id, t_id, out))
    return rejects, hashes, elements


def merge(rows: list) -> tuple:
    """One element's rows, in source order: the key or endpoints of the first, and per property
    the value of the last row that has one (frames.rs). Rows are (label, id, seq, a, b, values
    or None)."""
    first = rows[0]
    if len(rows) == 1:
        return first[3], first[4], first[5]
    with_values = [r[5] for r in rows if r[5] is not None]
    if not with_values:
        return first[3], first[4], None
    props = [None] * len(with_values[0])
    for p in range(len(props)):
        for values in reversed(with_values):
            if values[p] is not None:
                props[p] = values[p]
                break
    return first[3], first[4], props


# ---------------------------------------------------------------------------------------------
# Gremlin CSV values (crates/gremlin-csv/src/write.rs).

_SPECIAL = re.compile(r'[\x00,";\r\n]|^[ \t]|[ \t]\Z')


# Whether any value of a comma-joined row (without commas of their own) is not plain.
_SPECIAL_IN_ROW = re.compile(r'[\x00";\r\n]|(?:^|,)[ \t]|[ \t](?:,|\Z)')


def _plain(value: str) -> bool:
    return _SPECIAL.search(value) is None


def push_field(value: str) -> str:
    if _plain(value):
        return value
    value = value.replace("\0", "")
    if any(c in value for c in (",", '"', "\r", "\n")) or value[:1] in (" ", "\t") \
            or value[-1:] in (" ", "\t"):
        return '"' + value.replace('"', '""') + '"'
    return value


def push_string_value(value: str) -> str:
    if _plain(value):
        return value
    if ";" in value:
        return push_field(value.replace(";", "\\;"))
    return push_field(value)


def property_text(ty: str, value: Optional[str]) -> str:
    if value is None:
        return ""
    return push_string_value(value) if ty == "String" else push_field(value)


# ---------------------------------------------------------------------------------------------
# Storage: local paths and s3:// (boto3, every write encrypted).

def is_s3(uri: str) -> bool:
    return uri.startswith(("s3://", "s3a://"))


def join(root: str, relative: str) -> str:
    return root.rstrip("/") + "/" + relative if relative else root


def _s3_parts(uri: str) -> tuple:
    rest = uri.split("://", 1)[1]
    bucket, _, key = rest.partition("/")
    return bucket, key


def _s3_client():
    import boto3  # on Glue and EMR already; only needed for s3://
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return boto3.client("s3", endpoint_url=endpoint) if endpoint else boto3.client("s3")


def write_bytes(uri: str, data: bytes, encryption: str = "AES256") -> None:
    """Writes a whole object: locally to a temporary name, fsynced, then renamed."""
    if is_s3(uri):
        bucket, key = _s3_parts(uri)
        _s3_client().put_object(Bucket=bucket, Key=key, Body=data, ServerSideEncryption=encryption)
        return
    os.makedirs(os.path.dirname(uri) or ".", exist_ok=True)
    temporary = f"{uri}.tmp-{os.getpid()}"
    with open(temporary, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, uri)


def read_bytes(uri: str) -> bytes:
    if is_s3(uri):
        bucket, key = _s3_parts(uri)
        return _s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
    with open(uri, "rb") as f:
        return f.read()


def list_files(uri: str) -> list:
    """(relative path, size) of the objects under `uri`, sorted by path (as idgraph_storage
    lists them)."""
    if is_s3(uri):
        bucket, prefix = _s3_parts(uri)
        prefix = prefix.rstrip("/") + "/"
        out = []
        for page in _s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out.extend((o["Key"][len(prefix):], o["Size"]) for o in page.get("Contents", []))
        return sorted(out)
    out = []
    for folder, _, names in os.walk(uri):
        for name in names:
            path = os.path.join(folder, name)
            out.append((os.path.relpath(path, uri).replace(os.sep, "/"), os.path.getsize(path)))
    return sorted(out)


def exists(uri: str) -> bool:
    if is_s3(uri):
        bucket, key = _s3_parts(uri)
        try:
            _s3_client().head_object(Bucket=bucket, Key=key)
            return True
        except Exception as e:  # botocore's ClientError for 404
            if getattr(e, "response", {}).get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
    return os.path.exists(uri)


def remove(uri: str) -> None:
    if is_s3(uri):
        bucket, key = _s3_parts(uri)
        _s3_client().delete_object(Bucket=bucket, Key=key)
    elif os.path.exists(uri):
        os.remove(uri)


# ---------------------------------------------------------------------------------------------
# Reading a source file into chunks (source.rs: decode, check_header; lib.rs: file_chunks).

def decode(name: str, data: bytes) -> tuple:
    notes = []
    if name.endswith(".gz"):
        try:
            data = gzip_module.decompress(data)
        except (OSError, EOFError) as e:
            raise JobError(f"{name}: not a complete gzip file ({e})") from None
    if data.startswith(b"\xef\xbb\xbf"):
        notes.append(f"{name}: skipped a UTF-8 byte-order mark")
        data = data[3:]
    try:
        return data.decode("utf-8"), False, notes
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace"), True, notes


def check_header(name: str, dataset: str, expected: list, found: list) -> None:
    if found == expected:
        return
    if len(found) == 1:
        for delimiter, shown in ((";", ";"), ("\t", "tab"), ("|", "|")):
            if delimiter in found[0]:
                raise JobError(f"{name}: the header is one column; is the delimiter `{shown}`? "
                               "Fields must be separated by commas")
    for i, want in enumerate(expected):
        if i >= len(found):
            raise JobError(f"{name}: column `{want}` of the {dataset} schema is missing")
        got = found[i]
        if got != want:
            order = " (columns are out of order)" if got in expected else ""
            raise JobError(f"{name}: column {i + 1} is `{got}` where the {dataset} schema has `{want}`{order}")
    raise JobError(f"{name}: column {len(expected) + 1} `{found[len(expected)]}` is not in the {dataset} schema")


def file_chunks(mapping: Mapping, dataset_index: int, file_index: int, name: str,
                data: bytes) -> Iterator[tuple]:
    """("chunk", dataset, file index, name, text, first line, lossy) for each chunk of a file,
    ("note", text) for what is worth telling; a bad header raises JobError."""
    dataset = DATASETS[dataset_index]
    if not data:
        yield "note", f"{name}: empty file (no header, no rows)"
        return
    text, lossy, notes = decode(name, data)
    for note in notes:
        yield "note", note
    first = next(records(text, 1), None)
    if first is None:
        raise JobError(f"{name}: no header row")
    _, header, error = first
    if error is not None:
        raise JobError(f"{name}: line 1 (the header): {error}")
    check_header(name, dataset, [c.name for c in mapping.columns[dataset]], header)
    header_lines = 1 + sum(f.count("\n") for f in header)
    encoded = text.encode("utf-8")
    body = 0
    for _ in range(header_lines):
        nl = encoded.find(b"\n", body)
        body = len(encoded) if nl < 0 else nl + 1
    for start, end, line in split_chunks(encoded, body, header_lines + 1, CHUNK_BYTES):
        yield "chunk", dataset_index, file_index, name, encoded[start:end].decode("utf-8"), line, lossy


# ---------------------------------------------------------------------------------------------
# Writing one partition of merged elements.

def write_partition(index: int, blobs: Iterator, staging: str, mapping: Mapping, limit: int,
                    use_gzip: bool) -> Iterator[dict]:
    """The element rows of one id range (marshalled lists from every chunk): grouped by element
    in label, id and source order, merged, and written as files
    `<label>-<partition>-<part>.csv[.gz]` under staging. Yields one entry per file."""
    n_vertex = len(mapping.vertices)
    by_label: list = [[] for _ in range(n_vertex + len(mapping.edges))]
    for _, blob in blobs:
        for row in marshal.loads(blob):
            by_label[row[0]].append(row)
    parts: list = []
    state = {"label": None, "part": 0, "lines": [], "size": 0, "header": ""}

    def flush():
        lines = state["lines"]
        if not lines:
            return
        label = state["label"]
        folder, name = ("vertices", mapping.vertices[label].name) if label < n_vertex \
            else ("edges", mapping.edges[label - n_vertex].name)
        relative = f"{folder}/{name}-{index:05d}-{state['part']:03d}.{'csv.gz' if use_gzip else 'csv'}"
        parts.append(write_graph_file(staging, relative, "vertex" if label < n_vertex else "edge", name,
                                      state["header"] + "".join(lines), len(lines), use_gzip))
        state["part"] += 1
        state["lines"] = []
        state["size"] = len(state["header"].encode())

    # Per label: its name as written and its property types.
    labels = [(push_field(v.name), v.props) for v in mapping.vertices] + \
        [(push_field(e.name), e.props) for e in mapping.edges]
    for label, rows in enumerate(by_label):
        if not rows:
            continue
        # By id, then seq: each element's rows in source order (two stable sorts on single keys
        # cost half of one on (id, seq) tuples). A row's own repeats keep their place.
        rows.sort(key=itemgetter(2))
        rows.sort(key=itemgetter(1))
        flush()
        state.update(label=label, part=0, header=label_header(mapping, label) + "\n")
        state["size"] = len(state["header"].encode())
        name, types = labels[label]
        blank = [None] * len(types)
        i, n = 0, len(rows)
        while i < n:
            row = rows[i]
            element_id = row[1]
            j = i + 1
            while j < n and rows[j][1] == element_id:
                j += 1
            if j == i + 1:
                a, b, props = row[3], row[4], row[5]
            else:
                a, b, props = merge(rows[i:j])
            i = j
            if label < n_vertex:
                line = f"{element_id},{name},{a if _SPECIAL.search(a) is None else push_string_value(a)}"
            else:
                line = f"{element_id},{a},{b},{name}"
            if types:
                values = props or blank
                # One check for the whole row when every value is plain (the usual case).
                joined = ",".join(["" if v is None else v for v in values])
                if joined.count(",") != len(values) - 1 or _SPECIAL_IN_ROW.search(joined) is not None:
                    joined = ",".join([property_text(p.ty, v) for p, v in zip(types, values)])
                line += "," + joined
            line += "\n"
            length = len(line) if line.isascii() else len(line.encode())
            if state["lines"] and state["size"] + length > limit:
                flush()
            state["lines"].append(line)
            state["size"] += length
    flush()
    yield from parts


def write_graph_file(staging: str, relative: str, kind: str, label: str, text: str, rows: int,
                     use_gzip: bool) -> dict:
    """Writes one graph file (gzip with mtime 0, so the same rows give the same bytes) and
    returns its manifest entry."""
    data = text.encode("utf-8")
    if use_gzip:
        data = gzip_module.compress(data, 6, mtime=0)
    write_bytes(join(staging, relative), data)
    return {"path": relative, "kind": kind, "label": label, "rows": rows, "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest()}


def label_header(mapping: Mapping, label: int) -> str:
    n_vertex = len(mapping.vertices)
    if label < n_vertex:
        v = mapping.vertices[label]
        cols = ["~id", "~label", f"{v.key_property}:String(single)"] + [p.header() for p in v.props]
    else:
        e = mapping.edges[label - n_vertex]
        cols = ["~id", "~from", "~to", "~label"] + [p.header() for p in e.props]
    return ",".join(cols)


def rejects_csv(rejects: list) -> str:
    out = ["dataset,file,line,column,reason\n"]
    for dataset, file, line, column, reason in rejects:
        out.append(f"{push_field(dataset)},{push_field(file)},{line},{push_field(column)},{push_field(reason)}\n")
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# The job.

def parse_args(argv: list) -> dict:
    """`--NAME value` pairs, as Glue passes them (it adds its own, which are ignored)."""
    args = {}
    i = 0
    while i < len(argv):
        if argv[i].startswith("--") and i + 1 < len(argv):
            args[argv[i][2:].replace("-", "_")] = argv[i + 1]
            i += 2
        else:
            i += 1
    return args


def flag(value: Optional[str]) -> bool:
    return str(value).lower() in ("1", "true", "yes")


def run(spark, args: dict) -> dict:
    started = time.time()
    for required in ("input", "output", "batch", "sources_schema", "mapping"):
        if required not in args:
            raise JobError(f"missing argument --{required.replace('_', '-')}")
    batch = args["batch"]
    if batch != "initial" and not re.fullmatch(r"\d{8}_\d{6}", batch):
        raise JobError(f"--batch `{batch}` is neither `initial` nor a batch timestamp")
    max_rate = float(args.get("max_reject_rate", "0.01"))
    limit = int(args.get("max_file_bytes", "256000000"))
    use_gzip, force = flag(args.get("gzip")), flag(args.get("force"))
    columns = load_sources(read_bytes(args["sources_schema"]).decode())
    mapping = load_mapping(read_bytes(args["mapping"]).decode(), columns, args["mapping"])
    graph_dir = "datasets/graph/initial" if batch == "initial" else f"datasets/graph/incremental/{batch}"
    target = join(args["output"], graph_dir)
    if not force and exists(join(target, "manifest.json")):
        raise JobError(f"batch {batch} is already transformed (its manifest.json exists); "
                       "pass --force to transform it again")

    # The batch's files, in source order. Notes keep that order too: (place, text).
    timings = {}
    mark = time.time()
    files, notes, datasets = [], [], []
    input_bytes = 0
    for d, dataset in enumerate(DATASETS):
        folder = f"datasets/sources/initial/{dataset}" if batch == "initial" \
            else f"datasets/sources/incremental/{dataset}/{batch}"
        names = []
        for relative, size in list_files(join(args["input"], folder)):
            input_bytes += size
            path = f"{folder}/{relative}"
            place = len(files) + len(notes)
            hidden = any(part.startswith(".") for part in relative.split("/"))
            if hidden or not (relative.endswith(".csv") or relative.endswith(".csv.gz")):
                notes.append((place, f"{path}: skipped (not a .csv or .csv.gz file)"))
                continue
            files.append((d, place, path))
            names.append(path)
        datasets.append({"dataset": dataset, "files": names, "rows_read": 0, "rows_used": 0,
                         "duplicates": 0, "rejects": 0})
    if not files:
        raise JobError(f"no source files under {args['input']} for batch {batch} "
                       "(expected datasets/sources/.../<dataset>/...csv[.gz]; run datagen first)")

    sc = spark.sparkContext
    parallelism = max(sc.defaultParallelism, 2)
    root = args["input"]
    # Closures carry the mapping to the workers (cloudpickle; a broadcast's plain pickle cannot
    # carry classes defined in a script run as __main__, as Glue runs it).

    def read_file(entry):
        d, place, path = entry
        for piece in file_chunks(mapping, d, place, path, read_bytes(join(root, path))):
            yield ("N", place, piece[1]) if piece[0] == "note" else piece

    # Chunks are parsed and mapped in parallel; each yields its rejects and notes (few), and
    # for each id range (partition) one marshalled list of its element rows and one of its row
    # hashes: a few large records per chunk instead of millions of small ones, which is what
    # PySpark pays for (pickling each record, several times).
    # Enough partitions to keep every core busy, and more as the input grows, so that one
    # partition's element rows (about 10 times its share of source bytes, as Python objects)
    # stay well within a worker's memory.
    partitions = max(parallelism * 2, -(-input_bytes // PARTITION_INPUT_BYTES))

    def map_piece(piece):
        if piece[0] == "N":
            return [piece]
        _, d, place, name, text, line, lossy = piece
        rejects, hashes, elements = map_chunk(mapping, d, place, name, text, line, lossy, partitions)
        out = [("R", r) for r in rejects]
        out += [("H", p, marshal.dumps(h)) for p, h in enumerate(hashes) if h]
        out += [("E", p, marshal.dumps(e)) for p, e in enumerate(elements) if e]
        return out

    mapped = (sc.parallelize(files, max(1, min(len(files), partitions)))
              .flatMap(read_file)
              .repartition(partitions)
              .flatMap(map_piece)
              .persist())

    # Reconciliation: every reject and note, then rows used and exact duplicates per dataset.
    small = mapped.filter(lambda t: t[0] in ("R", "N")).collect()
    rejects = [r for _, r in sorted(t[1] for t in small if t[0] == "R")]
    notes = [text for _, text in sorted(notes + [(t[1], t[2]) for t in small if t[0] == "N"])]
    timings["read_parse_map"] = round(time.time() - mark, 3)
    mark = time.time()

    def count_distinct(blobs):
        seen: dict = {}
        good: dict = {}
        for _, blob in blobs:
            for d, h in marshal.loads(blob):
                seen.setdefault(d, set()).add(h)
                good[d] = good.get(d, 0) + 1
        return [(d, (len(seen[d]), good[d])) for d in seen]

    hashes: dict = {}
    for d, (distinct, good) in (mapped.filter(lambda t: t[0] == "H").map(lambda t: (t[1], t[2]))
                                .partitionBy(partitions, lambda p: p)
                                .mapPartitions(count_distinct).collect()):
        previous = hashes.get(d, (0, 0))
        hashes[d] = (previous[0] + distinct, previous[1] + good)
    for d, counts in enumerate(datasets):
        distinct, good = hashes.get(d, (0, 0))
        counts["rows_used"] = distinct
        counts["duplicates"] = good - distinct
        counts["rejects"] = sum(1 for r in rejects if r[0] == DATASETS[d])
        counts["rows_read"] = good + counts["rejects"]
    timings["reconcile"] = round(time.time() - mark, 3)
    mark = time.time()
    rows = sum(c["rows_read"] for c in datasets)
    rejects_text = rejects_csv(rejects)
    if rows > 0 and len(rejects) > max_rate * rows:
        write_bytes(join(target, "rejects.csv"), rejects_text.encode())
        first = rejects[0]
        raise JobError(f"batch {batch}: {len(rejects)} of {rows} rows rejected "
                       f"({100 * len(rejects) / rows:.2f}%), more than --max-reject-rate {100 * max_rate:.2f}%; "
                       f"the graph was not written. Every reject is in {join(target, 'rejects.csv')}; "
                       f"the first: {first[1]}:{first[2]}: {first[4]}")

    # Staging: a folder beside the target locally (published by one rename), the target itself
    # on S3 (published by writing the manifest last).
    if is_s3(target):
        staging = target
    else:
        staging = join(args["output"], f"datasets/graph/.staging-{batch}-{os.getpid()}-{int(time.time())}")

    try:
        written = (mapped.filter(lambda t: t[0] == "E").map(lambda t: (t[1], t[2]))
                   .partitionBy(partitions, lambda p: p)
                   .mapPartitionsWithIndex(lambda i, blobs: write_partition(i, blobs, staging, mapping,
                                                                           limit, use_gzip))
                   .collect())
        mapped.unpersist()
        timings["merge_and_write"] = round(time.time() - mark, 3)
        mark = time.time()

        # Labels without rows still get a (header-only) file, as in Rust.
        have = {(f["kind"], f["label"]) for f in written}
        n_vertex = len(mapping.vertices)
        for label in range(n_vertex + len(mapping.edges)):
            kind, name = ("vertex", mapping.vertices[label].name) if label < n_vertex \
                else ("edge", mapping.edges[label - n_vertex].name)
            if (kind, name) in have:
                continue
            folder = "vertices" if kind == "vertex" else "edges"
            relative = f"{folder}/{name}-00000-000.{'csv.gz' if use_gzip else 'csv'}"
            written.append(write_graph_file(staging, relative, kind, name,
                                            label_header(mapping, label) + "\n", 0, use_gzip))
        written.sort(key=lambda f: f["path"])
        vertex_counts, edge_counts = {}, {}
        for f in written:
            counts = vertex_counts if f["kind"] == "vertex" else edge_counts
            counts[f["label"]] = counts.get(f["label"], 0) + f["rows"]
        manifest = {
            "format": 1,
            "batch": batch,
            "mapping_sha256": mapping.sha256,
            "files": written,
            "vertices": dict(sorted(vertex_counts.items())),
            "edges": dict(sorted(edge_counts.items())),
            "datasets": datasets,
            "rejects_file": "rejects.csv",
            "notes": notes,
        }
        write_bytes(join(staging, "rejects.csv"), rejects_text.encode())
        write_bytes(join(staging, "manifest.json"), (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode())
        publish(staging, target, {f["path"] for f in written} | {"rejects.csv", "manifest.json"})
    except BaseException:
        # A failed run leaves no half-written folder behind (the graph's target is untouched).
        if not is_s3(staging) and os.path.isdir(staging):
            shutil.rmtree(staging, ignore_errors=True)
        raise
    timings["publish"] = round(time.time() - mark, 3)
    return {"output": target, "manifest": manifest, "seconds": round(time.time() - started, 3),
            "timings": timings}


def publish(staging: str, target: str, keep: set) -> None:
    """Locally: the staged folder replaces the target by rename. On S3 the files were written in
    place with the manifest last; files of an earlier run that this one lacks are removed."""
    if is_s3(target):
        for relative, _ in list_files(target):
            if relative not in keep:
                remove(join(target, relative))
        return
    old = f"{target}.replaced-{os.getpid()}"
    if os.path.exists(target):
        os.replace(target, old)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.replace(staging, target)
    if os.path.exists(old):
        shutil.rmtree(old)


def main(argv: list) -> int:
    args = parse_args(argv)
    from pyspark.sql import SparkSession
    builder = SparkSession.builder.appName(f"idgraph-transform {args.get('batch', '')}")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    try:
        report = run(spark, args)
    except JobError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        spark.stop()
    m = report["manifest"]
    print(json.dumps({"output": report["output"], "seconds": report["seconds"], "timings": report["timings"],
                      "vertices": sum(m["vertices"].values()), "edges": sum(m["edges"].values()),
                      "datasets": m["datasets"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
