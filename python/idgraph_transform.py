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
  --encryption ALG      server-side encryption of every s3:// write: AES256 (default), aws:kms
                        or none; S3's answer must confirm it
  --kms-key-id KEY      the KMS key of aws:kms (its id or ARN); S3's answer must name it
  --show-values true|false  quote a reject's value in the error message (off: file, line,
                        column and rule only)

What it shares with the Rust transform (and the parity test checks): CSV reading with the same
record rules and reject reasons, the same normalisation, the same ids (xxh3-128 shaped as RFC 9562
version-8 UUIDs), the same last-non-empty-wins merge in source order (dataset, file, line), the
same typed, quoted values, and the same manifest counts. Files may be split differently.

Work: the driver lists the batch's files; a task per file decodes it and cuts it into chunks at
record boundaries exactly as Rust cuts them, and the chunks are dealt round-robin to a few
mapping tasks per core (a small batch is read and cut by the driver, which hands each mapping
task its chunks). A chunk is parsed and mapped a column at a time; its rejects, notes and row
counts go to the driver by accumulator, its element rows into one shuffle, partitioned by label
group (and by id range too when the input is large). Each partition merges its elements' rows in
source order and writes them; the driver checks the reject rate before the batch is published
(locally, files are written to a staging folder that one rename publishes; on S3, where they are
written in place, the mapping runs first and the check comes before any graph file). Local paths
are written with Python file I/O, s3:// with boto3 and server-side encryption. Spark settings:
`spark.idgraph.partitionInputBytes` (source bytes per merge partition, at most; 32 MiB) splits
label groups by id range sooner; `spark.idgraph.chunkBytes` (2 MiB) is the size of a chunk;
`spark.idgraph.driverReadBytes` (64 MiB) is the largest batch the driver reads itself.
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
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
import gc
from itertools import compress, groupby, repeat
from typing import Iterator, Optional

import xxhash

DATASETS = ("first_party", "cookie", "clickstream", "transactional")
CHUNK_BYTES = 2 << 20
CHUNK_BYTES_CONF = "spark.idgraph.chunkBytes"
# Source bytes per mapping task, as the input grows (at least three tasks per core are made).
MAP_TASK_INPUT_BYTES = 16 << 20
# Source bytes per partition of the merge and write (at most; a Spark conf can lower it).
PARTITION_INPUT_BYTES = 32 << 20
PARTITION_BYTES_CONF = "spark.idgraph.partitionInputBytes"
# A batch of at most this many source bytes is read by the driver rather than by a stage of tasks.
DRIVER_READ_BYTES = 64 << 20
DRIVER_READ_BYTES_CONF = "spark.idgraph.driverReadBytes"
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


@contextmanager
def gc_paused():
    """Python's cycle collector paused: mapping and writing make millions of tuples and no
    cycles, and every full collection walks all of them (it took 40% of the mapping's time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class ListParam:
    """A Spark accumulator of lists (pyspark.AccumulatorParam's two methods), which tasks
    extend."""

    def zero(self, value: list) -> list:
        return []

    def addInPlace(self, a: list, b: list) -> list:
        a.extend(b)
        return a


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
    digits = _NOT_A_DIGIT.sub("", number)
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    if len(digits) == 13 and digits.startswith("001"):
        digits = digits[3:]
    return digits


_NOT_A_DIGIT = re.compile("[^0-9]")


def normalise_all(how: str, values: list) -> list:
    """normalise() of each of `values` (None as empty), the usual kinds without a call each."""
    if how == "trim":
        return [(v or "").strip(WHITE_SPACE) for v in values]
    if how == "lower":
        return [(v or "").strip(WHITE_SPACE).lower() for v in values]
    if how == "upper":
        return [(v or "").strip(WHITE_SPACE).upper() for v in values]
    texts = [v or "" for v in values]
    joined = COLUMN_SEPARATOR.join(texts)
    if joined.count(COLUMN_SEPARATOR) != len(texts) - 1:
        return [normalise(how, v) for v in texts]
    # A phone number without an extension (no `x`): its digits are all its digits (white space
    # is not a digit, so trimming changes nothing), found for the whole column at once.
    keys = [d[1:] if len(d) == 11 and d[0] == "1" else d[3:] if len(d) == 13 and d[:3] == "001" else d
            for d in _NOT_A_DIGIT_OR_SEPARATOR.sub("", joined).split(COLUMN_SEPARATOR)]
    if "x" in joined or "X" in joined:
        for i, v in enumerate(texts):
            if "x" in v or "X" in v:
                keys[i] = normalise(how, v)
    return keys


# The RFC 9562 variant bits (10) over the hash's own two low bits of that nibble.
_VARIANT = bytes.maketrans(b"0123456789abcdef", b"89ab89ab89ab89ab")


def _uuid_hex(datas: list) -> bytearray:
    """The xxh3-128 hashes of `datas` as one run of 32 hex digits each, shaped as RFC 9562
    version-8 UUIDs (ids.rs: uuid::Builder::from_custom_bytes): the version nibble set to 8,
    the variant bits to 10. Done for all at once by strided slices, not per id."""
    n = len(datas)
    hexes = bytearray(b"".join(map(xxhash.xxh3_128_digest, datas)).hex().encode())
    hexes[12::32] = b"8" * n
    hexes[16::32] = bytes(hexes[16::32]).translate(_VARIANT)
    return hexes


def uuid_texts(datas: list, hexes: Optional[bytearray] = None) -> list:
    """The ids of `datas` in their text form, 8-4-4-4-12 hex digits."""
    n = len(datas)
    if n == 0:
        return []
    if hexes is None:
        hexes = _uuid_hex(datas)
    # 37 bytes per id: the text, then a newline to split them at.
    out = bytearray(37 * n)
    at = 0
    for start, length in ((0, 8), (8, 4), (12, 4), (16, 4), (20, 12)):
        for j in range(length):
            out[at + j::37] = hexes[start + j::32]
        at += length
        out[at::37] = (b"-" if at < 36 else b"\n") * n
        at += 1
    texts = out.decode().split("\n")
    texts.pop()
    return texts


def uuid_texts_and_bytes(datas: list) -> tuple:
    """The ids of `datas` as text and as their 16 bytes (what an edge id hashes)."""
    if not datas:
        return [], []
    hexes = _uuid_hex(datas)
    raw = bytes.fromhex(hexes.decode())
    return uuid_texts(datas, hexes), [raw[i:i + 16] for i in range(0, len(raw), 16)]


def vertex_prefix(label: str) -> bytes:
    """What a vertex id hashes before its key (ids.rs: vertex_id)."""
    return b"v" + SEPARATOR + label.encode() + SEPARATOR


def edge_prefix(label: str) -> bytes:
    """What an edge id hashes before its endpoints' 16 bytes each, then SEPARATOR and each
    key column's value (ids.rs: edge_id)."""
    return b"e" + SEPARATOR + label.encode() + SEPARATOR


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


def _valid_days(days: set) -> bool:
    """Whether every one of `days` (yyyy-MM-dd strings of ASCII digits) is a valid day, as
    _valid_day says, checked at once by the C date parser. It takes exactly the days that
    _is_valid_date takes but for the year 0 (which it refuses): on a refusal the days are
    checked one by one."""
    try:
        for _ in map(date.fromisoformat, days):
            pass
        return True
    except ValueError:
        return all(_valid_day(day.encode()) for day in days)


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
# Mapping chunks (crates/transform/src/elements.rs: map_chunk), column by column: a chunk's
# rows are converted, resolved to ids and turned into element rows a column at a time, so that
# most of the work runs in Python's C loops (join, map, zip, set) rather than once per value.

# Separates a column's values when the whole column is checked at once. A value that holds it
# only adds boundaries, which can only make a check find something (the slow path then decides).
COLUMN_SEPARATOR = "\x1f"
_NOT_A_DIGIT_OR_SEPARATOR = re.compile(f"[^0-9{COLUMN_SEPARATOR}]")
# A row with no id: its key normalised to nothing.
_NO_ID = ("", None, None)


# Every white space character as a blank, so that a column's values can be checked for white
# space at either end by looking for a blank next to COLUMN_SEPARATOR.
_WHITE_SPACE_TO_BLANK = str.maketrans({c: " " for c in WHITE_SPACE})


_DAY = "[0-9]{4}-[0-9]{2}-[0-9]{2}"
_TIMESTAMP = _DAY + "[ T](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]+)?Z?"
# Whole columns of well-formed values, joined by COLUMN_SEPARATOR (checked to hold one per
# value): what convert_value takes with no change but the form of a timestamp.
_COLUMN_FORMS = {
    "date": re.compile(f"{_DAY}(?:\x1f{_DAY})*"),
    "timestamp": re.compile(f"{_TIMESTAMP}(?:\x1f{_TIMESTAMP})*"),
}
# Whole numbers already written as convert_value writes them (no sign but a minus, no leading
# zero, not -0), short enough to fit a Long (18 digits) or an Int (9 digits).
_LONG = "(?:-?[1-9][0-9]{0,17}|0)"
_INT = "(?:-?[1-9][0-9]{0,8}|0)"
_WHOLE_NUMBER_COLUMNS = {
    False: re.compile(f"{_LONG}(?:\x1f{_LONG})*"),
    True: re.compile(f"{_INT}(?:\x1f{_INT})*"),
}


def convert_column(column: Column, raw_values: tuple, int32: bool, lossy: bool):
    """A whole column's converted values when every value is of the usual form (a string with
    nothing to trim, a whole number as it is written out, a valid date or timestamp), found
    with one pass of a regular expression; None when some value needs convert_value."""
    joined = COLUMN_SEPARATOR.join(raw_values)
    if column.ty == "string":
        # Taken as it is unless some value is too long, not valid UTF-8, empty, starts or ends
        # with white space, or is `null` in a nullable column: substring searches over the
        # whole column (much faster than a regular expression).
        if len(joined) > MAX_FIELD_BYTES // 4 or (lossy and "\ufffd" in joined):
            return None
        bounded = (COLUMN_SEPARATOR + joined + COLUMN_SEPARATOR).translate(_WHITE_SPACE_TO_BLANK)
        if COLUMN_SEPARATOR * 2 in bounded or COLUMN_SEPARATOR + " " in bounded \
                or " " + COLUMN_SEPARATOR in bounded:
            return None
        if column.nullable and "\x1fnull\x1f" in bounded.lower():
            return None
        return raw_values
    if joined.count(COLUMN_SEPARATOR) != len(raw_values) - 1:
        return None
    if column.ty == "int":
        return raw_values if _WHOLE_NUMBER_COLUMNS[int32].fullmatch(joined) is not None else None
    form = _COLUMN_FORMS.get(column.ty)
    if form is None or form.fullmatch(joined) is None \
            or not _valid_days({v[:10] for v in raw_values}):
        return None
    if column.ty == "date":
        return raw_values
    return [f"{v[:10]}T{v[11:19]}Z" for v in raw_values]


def convert_value(column: Column, raw: str, int32: bool, lossy: bool):
    """(value or None, None) or (None, reason) for one field, checked as the Rust reader does:
    valid UTF-8, at most MAX_FIELD_BYTES, then source.rs `convert`."""
    if lossy and "\ufffd" in raw:
        return None, f"column {column.name} is not valid UTF-8"
    if len(raw) > MAX_FIELD_BYTES // 4 and len(raw.encode()) > MAX_FIELD_BYTES:
        return None, (f"column {column.name}: a value of {len(raw.encode())} bytes; "
                      f"at most {MAX_FIELD_BYTES} are taken")
    return convert(column, raw, int32)


# A line whose fields are well formed, quoted or not, and one field of it (quoted, unquoted).
_QUOTED_LINE = re.compile(r'(?:"(?:[^"]|"")*"|[^,"]*)(?:,(?:"(?:[^"]|"")*"|[^,"]*))*')
_LINE_FIELD = re.compile(r'(?:^|,)(?:"((?:[^"]|"")*)"|([^,"]*))')


def parse_chunk(text: str, first_line: int) -> tuple:
    """The records of a chunk as records() reads them, as (line numbers, fields, [(line,
    reason)] for the records it refuses), with shortcuts. In a chunk with no carriage return
    whose every line holds an even number of quotes (the usual one), no field spans lines, so
    its records are its lines: a line without quotes is split at commas, a well-formed line with
    quotes is read by one regular expression, and only a malformed line goes through records()."""
    if "\r" in text:
        return _collect(records(text, first_line))
    text_lines = text.split("\n")
    if text_lines[-1] == "":
        text_lines.pop()  # the chunk ends with a newline (or is empty)
    numbers = list(range(first_line, first_line + len(text_lines)))
    if '"' not in text:
        return numbers, [line.split(",") for line in text_lines], []
    if any(line.count('"') % 2 for line in text_lines if '"' in line):
        return _collect(records(text, first_line))
    rows = [line.split(",") if '"' not in line else _quoted_fields(line) for line in text_lines]
    if not any(fields is None for fields in rows):
        return numbers, rows, []
    return _collect(record for number, line, fields in zip(numbers, text_lines, rows)
                    for record in ([(number, fields, None)] if fields is not None else records(line, number)))


def _quoted_fields(line: str) -> Optional[list]:
    """The fields of a line with quotes, or None when it is not well formed. The usual one
    quotes one field, with no quote inside: it is split at its quotes and commas."""
    if line.count('"') == 2:
        before, quoted, after = line.split('"')
        if (not before or before[-1] == ",") and (not after or after[0] == ","):
            return (before[:-1].split(",") if before else []) + [quoted] + \
                (after[1:].split(",") if after else [])
    if _QUOTED_LINE.fullmatch(line) is None:
        return None
    return [q.replace('""', '"') if q else u for q, u in _LINE_FIELD.findall(line)]


def _collect(parsed: Iterator[tuple]) -> tuple:
    """(line numbers, fields, [(line, reason)]) of records()' output."""
    numbers, rows, errors = [], [], []
    for line, fields, error in parsed:
        if error is None:
            numbers.append(line)
            rows.append(fields)
        else:
            errors.append((line, error))
    return numbers, rows, errors


def source_order(dataset_index: int, file_index: int) -> int:
    """Where a file's rows stand in source order (dataset, file, line): OR in the line."""
    return (dataset_index << 60) | (file_index << 40)


class Layout:
    """Where an element's rows meet: partition (label group, id bucket). Labels are dealt to
    `groups` groups; ids are split into `buckets` ranges by their first 16 bits (ids are
    uniform hashes) only when the input is large enough to need it, so that a small batch's
    rows are routed by label alone, a whole column at a time."""

    def __init__(self, groups: int, buckets: int):
        self.groups, self.buckets = groups, buckets
        self.partitions = groups * buckets
        self.bucket_of = {f"{i:04x}": i * buckets // 65536 for i in range(65536)} if buckets > 1 else None

    def partition(self, label: int, bucket: int) -> int:
        return (label % self.groups) * self.buckets + bucket


class ChunkMapper:
    """Maps the chunks of one Spark task. Keys are normalised and hashed once per task (until
    the task has seen MAX_CACHED of them), and rows that carry no properties (the endpoints of
    edges, edges without properties) are kept once per task: the merge would fold them anyway,
    after a costlier shuffle."""

    MAX_CACHED = 2_000_000

    def __init__(self, mapping: Mapping, layout: Layout):
        self.mapping = mapping
        self.layout = layout
        self.n_vertex = len(mapping.vertices)
        self.n_props = [len(v.props) for v in mapping.vertices] + [len(e.props) for e in mapping.edges]
        self.vertex_prefixes = [vertex_prefix(v.name) for v in mapping.vertices]
        self.edge_prefixes = [edge_prefix(e.name) for e in mapping.edges]
        # Labels that more than one rule of a dataset produces: their rows are put back in
        # source order before the merge sees them.
        self.multi: dict = {}
        for dataset, rules in mapping.rules.items():
            produced = [label for label, _, _ in rules.vertices] + \
                [self.n_vertex + label for label, *_ in rules.edges]
            self.multi[dataset] = {label for label in produced if produced.count(label) > 1}
        self._clear()

    def _clear(self) -> None:
        # Per vertex label: raw value -> (key, id, id's 16 bytes).
        self.resolved: list = [{} for _ in self.mapping.vertices]
        self.plain_vertices: set = set()
        self.plain_edges: list = [set() for _ in self.mapping.edges]

    def lookup(self, label: int, column) -> list:
        """The (key, id, id bytes) of each raw value of a column, for one label."""
        table = self.resolved[label]
        missing = list(set(column).difference(table))
        if missing:
            keys = normalise_all(self.mapping.vertices[label].normalise, missing)
            new = [k for k in set(keys) if k]
            prefix = self.vertex_prefixes[label]
            ids = dict(zip(new, zip(*uuid_texts_and_bytes([prefix + k.encode() for k in new]))))
            table.update(zip(missing, [(k,) + ids[k] if k else _NO_ID for k in keys]))
        return list(map(table.__getitem__, column))

    def convert_columns(self, columns: list, rules: Rules, rows: list, lossy: bool) -> tuple:
        """The converted values, column by column, and per row index the first (column,
        reason) that rejects it, in column order as the Rust reader finds it."""
        values = []
        problems: dict = {}
        for i, (column, raw_values) in enumerate(zip(columns, zip(*rows))):
            int32 = i in rules.int32
            converted = convert_column(column, raw_values, int32, lossy)
            if converted is not None:
                values.append(converted)
                continue
            table, bad = {}, {}
            nullable = column.nullable
            plain_string = column.ty == "string"
            for raw in set(raw_values):
                # What convert_value takes as it is, told apart without a call.
                if plain_string and raw and raw[0] not in WHITE_SPACE and raw[-1] not in WHITE_SPACE \
                        and not (nullable and len(raw) == 4 and raw.lower() == "null") \
                        and len(raw) <= MAX_FIELD_BYTES // 4 and not (lossy and "\ufffd" in raw):
                    table[raw] = raw
                    continue
                value, reason = convert_value(column, raw, int32, lossy)
                table[raw] = value
                if reason is not None:
                    bad[raw] = reason
            if bad:
                for r, raw in enumerate(raw_values):
                    if raw in bad and r not in problems:
                        problems[r] = (column.name, bad[raw])
            values.append(list(map(table.__getitem__, raw_values)))
        return values, problems

    def map_chunk(self, dataset_index: int, file_index: int, file: str, text: str,
                  first_line: int, lossy: bool) -> tuple:
        """Parses one chunk and maps its rows to graph elements.

        Returns (good rows, rejects, per partition (hashes, [(label, block)])): rejects as
        (seq, (dataset, file, line, column, reason)) where seq orders rows as the sources do;
        hashes of the good rows' values (to count exact duplicates); a label's rows as a block
        of columns [ids, keys or froms, None or tos, [one column per property]], each
        element's rows in source order."""
        if sum(len(t) for t in self.resolved) + len(self.plain_vertices) > self.MAX_CACHED:
            self._clear()
        mapping, layout = self.mapping, self.layout
        dataset = DATASETS[dataset_index]
        columns = mapping.columns[dataset]
        rules = mapping.rules[dataset]
        width = len(columns)
        base = source_order(dataset_index, file_index)
        rejects: list = []
        lines, rows, errors = parse_chunk(text, first_line)
        for line, error in errors:
            rejects.append((base | line, (dataset, file, line, "", error)))
        if any(len(fields) != width for fields in rows):
            kept = []
            for line, fields in zip(lines, rows):
                if len(fields) == width:
                    kept.append((line, fields))
                else:
                    rejects.append((base | line, (dataset, file, line, "",
                                                  f"expected {width} fields, found {len(fields)}")))
            lines, rows = [k[0] for k in kept], [k[1] for k in kept]
        partitions = layout.partitions
        hashes: list = [[] for _ in range(partitions)]
        blocks: dict = {}  # label -> [ids, keys or froms, tos or None, [property columns]]
        if rows:
            values, problems = self.convert_columns(columns, rules, rows, lossy)
            del rows
            if problems:
                for r in sorted(problems):
                    column, reason = problems[r]
                    rejects.append((base | lines[r], (dataset, file, lines[r], column, reason)))
                keep = [r for r in range(len(lines)) if r not in problems]
                values = [[c[r] for r in keep] for c in values]
                lines = [lines[r] for r in keep]
        n = len(lines)
        if n:
            # Exact duplicates are counted by a hash of the row's values (repr is injective
            # on a tuple of strings and Nones).
            row_hashes = list(map(xxhash.xxh3_128_intdigest, map(str.encode, map(repr, zip(*values)))))
            if partitions == 1:
                hashes[0] = row_hashes
            else:
                for h in row_hashes:
                    hashes[h % partitions].append(h)
            self._elements(dataset, rules, values, n, base, lines, blocks)
        out: list = [[] for _ in range(partitions)]
        for label, block in blocks.items():
            for bucket, part in self._split(block):
                out[layout.partition(label, bucket)].append((label, part))
        return n, rejects, hashes, out

    def _split(self, block: list) -> list:
        """(bucket, block) for each id bucket of a block."""
        bucket_of = self.layout.bucket_of
        if bucket_of is None:
            return [(0, block)]
        ids, a, b, props = block
        buckets = [bucket_of[i[:4]] for i in ids]
        order = sorted(range(len(ids)), key=buckets.__getitem__)
        parts = []
        for bucket, group in groupby(order, key=buckets.__getitem__):
            picked = list(group)

            def pick(column):
                return None if column is None else [column[i] for i in picked]
            parts.append((bucket, [pick(ids), pick(a), pick(b), [pick(c) for c in props]]))
        return parts

    def _elements(self, dataset: str, rules: Rules, values: list, n: int, base: int, lines: list,
                  blocks: dict) -> None:
        """The element rows of a chunk's good rows (their values by column), into blocks."""
        n_vertex, n_props = self.n_vertex, self.n_props
        multi = self.multi[dataset]
        # Rows of labels that several rules produce, as (seq, label, id, a, b, properties).
        ordered: list = []
        plain_vertices = self.plain_vertices
        key_of, id_of = itemgetter(0), itemgetter(1)

        def add(label: int, ids: list, a: list, b: Optional[list], props: Optional[list]) -> None:
            """Appends rows to a label's block; `props` holds a column (or None) per property."""
            block = blocks.get(label)
            if block is None:
                block = blocks[label] = [[], [], None if label < n_vertex else [],
                                         [[] for _ in range(n_props[label])]]
            block[0] += ids
            block[1] += a
            if b is not None:
                block[2] += b
            count = len(ids)
            for p, column in enumerate(block[3]):
                source = props[p] if props is not None else None
                column += [None] * count if source is None else source

        def property_rows(columns: list, count: int):
            """Each row's property values (a tuple), from columns of them (None: no values)."""
            if not columns:
                return repeat(())
            blank = [None] * count
            return zip(*(c if c is not None else blank for c in columns))

        def columns_of(label: int, props: list, picked: Optional[list]) -> list:
            by_position = [None] * n_props[label]
            for column, p in props:
                source = values[column]
                by_position[p] = source if picked is None else [source[i] for i in picked]
            return by_position

        # (label, column) of this dataset's vertex rules: their ids all have a row already.
        with_rows = {(label, key_column) for label, key_column, _ in rules.vertices}
        for label, key_column, props in rules.vertices:
            resolved = self.lookup(label, values[key_column])
            used = None
            if any(r[1] is None for r in resolved):
                used = [i for i, r in enumerate(resolved) if r[1] is not None]
                resolved = [resolved[i] for i in used]
            prop_columns = columns_of(label, props, used)
            if label in multi:
                seqs = [base | lines[i] for i in (used if used is not None else range(n))]
                ordered.extend(zip(seqs, repeat(label), map(id_of, resolved), map(key_of, resolved),
                                   repeat(None), property_rows(prop_columns, len(resolved))))
            else:
                add(label, list(map(id_of, resolved)), list(map(key_of, resolved)), None, prop_columns)
            plain_vertices.update(map(id_of, resolved))

        for label, (f_label, f_column, when), (t_label, t_column), key_columns, props in rules.edges:
            from_values = values[f_column]
            froms = self.lookup(f_label, from_values)
            if when == "email":
                froms = [f if v is not None and "@" in v else _NO_ID for f, v in zip(froms, from_values)]
            elif when == "not-email":
                froms = [f if v is None or "@" not in v else _NO_ID for f, v in zip(froms, from_values)]
            tos = self.lookup(t_label, values[t_column])
            element = n_vertex + label
            prefix = self.edge_prefixes[label]
            if not props and not key_columns:
                # An edge without properties or keys is its endpoints: once per task.
                if _NO_ID in froms or _NO_ID in tos:
                    pairs = {(f[1], t[1]): (f, t) for f, t in zip(froms, tos)
                             if f[1] is not None and t[1] is not None}
                else:
                    # (Rows of one pair resolve to equal tuples: which is kept does not matter.)
                    pairs = dict(zip(zip(map(id_of, froms), map(id_of, tos)), zip(froms, tos)))
                seen = self.plain_edges[label]
                ends = [ft for pair, ft in pairs.items() if pair not in seen] if seen else list(pairs.values())
                seen.update(pairs)
                datas = [prefix + f[2] + t[2] for f, t in ends]
                prop_columns, seqs = None, None
            else:
                used = [i for i, (f, t) in enumerate(zip(froms, tos)) if f[1] is not None and t[1] is not None]
                ends = [(froms[i], tos[i]) for i in used]
                datas = [prefix + f[2] + t[2] for f, t in ends]
                for c in key_columns:
                    key_values = values[c]
                    datas = [d + SEPARATOR + (key_values[i] or "").encode() for d, i in zip(datas, used)]
                prop_columns = columns_of(element, props, used)
                seqs = [base | lines[i] for i in used]
            # Endpoints not seen yet in this task get a row of their own (the vertex exists
            # even when no rule gives it properties).
            for side, end_label, end_column in ((0, f_label, f_column), (1, t_label, t_column)):
                if (end_label, end_column) in with_rows:
                    continue  # a vertex rule of these rows already gave every one of them a row
                fresh = {r[1]: r[0] for r in map(itemgetter(side), ends) if r[1] not in plain_vertices}
                if fresh:
                    add(end_label, list(fresh), list(fresh.values()), None, None)
                    plain_vertices.update(fresh)
            eids = uuid_texts(datas)
            froms_ids = [f[1] for f, _ in ends]
            tos_ids = [t[1] for _, t in ends]
            if element in multi:
                ordered.extend(zip(seqs if seqs is not None else repeat(0), repeat(element), eids,
                                   froms_ids, tos_ids, property_rows(prop_columns or [], len(eids))))
            else:
                add(element, eids, froms_ids, tos_ids, prop_columns)
        if ordered:
            ordered.sort(key=itemgetter(0))
            by_label: dict = {}
            for _, label, eid, a, b, props in ordered:
                by_label.setdefault(label, []).append((eid, a, b, props))
            for label, rows in by_label.items():
                ids, a, b, props = (list(c) for c in zip(*rows))
                prop_columns = [list(c) for c in zip(*props)] if n_props[label] else []
                add(label, ids, a, b if label >= n_vertex else None, prop_columns)


def merge_block(ids: list, a: list, b: Optional[list], props: list) -> tuple:
    """A label's rows (columns, in source order) merged to one row per element, in the order of
    each element's first row: the key or endpoints of its first row, and per property the value
    of the last row that has one (frames.rs)."""
    order = dict.fromkeys(ids)
    if len(order) == len(ids):
        return ids, a, b, props
    unique = list(order)
    # dict() keeps the last value given for a key: fed backwards, that is the first row's.
    first_a = dict(zip(reversed(ids), reversed(a)))
    merged_a = list(map(first_a.__getitem__, unique))
    merged_b = None
    if b is not None:
        first_b = dict(zip(reversed(ids), reversed(b)))
        merged_b = list(map(first_b.__getitem__, unique))
    merged_props = []
    for column in props:
        has = [v is not None for v in column]
        last = dict(zip(compress(ids, has), compress(column, has)))
        merged_props.append(list(map(last.get, unique)))
    return unique, merged_a, merged_b, merged_props


# ---------------------------------------------------------------------------------------------
# Gremlin CSV values (crates/gremlin-csv/src/write.rs).

_SPECIAL = re.compile(r'[\x00,";\r\n]|^[ \t]|[ \t]\Z')


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


# Server-side encryption of s3:// writes: (algorithm or "", KMS key id or ""). Passed to every
# write explicitly, executors' included (a module setting made in the driver would not reach
# them).
Encryption = tuple
DEFAULT_ENCRYPTION: Encryption = ("AES256", "")


def encryption_setting(args: dict) -> Encryption:
    """The --encryption and --kms-key-id arguments, checked as idgraph_storage checks them."""
    name = args.get("encryption", "AES256")
    key = args.get("kms_key_id", "") or ""
    algorithm = {"aes256": "AES256", "aws:kms": "aws:kms", "kms": "aws:kms", "none": ""}.get(name.lower())
    if algorithm is None:
        raise JobError(f"encryption `{name}`: expected AES256, aws:kms or none")
    if key and algorithm != "aws:kms":
        raise JobError(f"a KMS key id ({key}) goes with encryption aws:kms, not {name}")
    if key.startswith("alias/") or ":alias/" in key:
        raise JobError(f"KMS key {key}: give the key's id or ARN; an alias cannot be confirmed "
                       "against S3's answer")
    return (algorithm, key)


def kms_key_matches(asked: str, answered: str) -> bool:
    """S3 answers with the key's ARN; the setting may give its id or its ARN."""
    return answered == asked or answered.endswith(f":key/{asked}")


def write_bytes(uri: str, data: bytes, encryption: Encryption = DEFAULT_ENCRYPTION) -> None:
    """Writes a whole object: locally to a temporary name, fsynced, then renamed; on S3 with
    the server-side encryption asked for, confirmed by S3's answer (an S3-compatible server
    that ignores the header would otherwise store it in the clear)."""
    if is_s3(uri):
        bucket, key = _s3_parts(uri)
        algorithm, key_id = encryption
        extra = {}
        if algorithm:
            extra["ServerSideEncryption"] = algorithm
        if key_id:
            extra["SSEKMSKeyId"] = key_id
        answer = _s3_client().put_object(Bucket=bucket, Key=key, Body=data, **extra)
        if algorithm and answer.get("ServerSideEncryption") != algorithm:
            raise JobError(f"{uri}: asked for server-side encryption {algorithm} but S3's answer says "
                           f"{answer.get('ServerSideEncryption') or 'none'}")
        if key_id and not kms_key_matches(key_id, answer.get("SSEKMSKeyId") or ""):
            raise JobError(f"{uri}: asked for KMS key {key_id} but S3's answer names "
                           f"{answer.get('SSEKMSKeyId') or 'no key'}")
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
                data: bytes, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple]:
    """("chunk", dataset, file index, name, text, first line, lossy, start) for each chunk of a file,
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
    for start, end, line in split_chunks(encoded, body, header_lines + 1, chunk_bytes):
        yield "chunk", dataset_index, file_index, name, encoded[start:end].decode("utf-8"), line, lossy, start


# ---------------------------------------------------------------------------------------------
# Writing one partition of merged elements.

def write_partition(index: int, blobs: Iterator, staging: str, mapping: Mapping, limit: int,
                    use_gzip: bool, encryption: Encryption = DEFAULT_ENCRYPTION) -> Iterator[tuple]:
    """One partition: the marshalled (chunk seq, dataset, hashes, [(label, block)]) of every
    chunk. Counts the partition's distinct rows per dataset, then merges each element's rows
    (in source order: chunks sorted by seq) and writes each label's elements as files
    `<label>-<partition>-<part>.csv[.gz]` under staging. Yields ("counts", [(dataset, distinct,
    good)]) and ("file", manifest entry) for each file."""
    by_label: dict = {}
    seen: dict = {}
    good: dict = {}
    chunks = sorted((marshal.loads(blob) for _, blob in blobs), key=itemgetter(0))
    for _, d, hashes, blocks in chunks:
        seen.setdefault(d, set()).update(hashes)
        good[d] = good.get(d, 0) + len(hashes)
        for label, block in blocks:
            into = by_label.get(label)
            if into is None:
                by_label[label] = block
                continue
            into[0] += block[0]
            into[1] += block[1]
            if into[2] is not None:
                into[2] += block[2]
            for column, more in zip(into[3], block[3]):
                column += more
    del chunks
    yield "counts", [(d, len(seen[d]), good[d]) for d in seen]
    del seen
    for label in sorted(by_label):
        block = by_label.pop(label)
        yield from write_label(index, label, merge_block(*block), staging, mapping, limit, use_gzip,
                               encryption)


# What _SPECIAL finds in a value: one of these characters, or a blank or tab at either end (next
# to COLUMN_SEPARATOR in a column joined by it and bounded by it).
_SPECIAL_CHARACTERS = '\x00,";\r\n'
_BLANK_EDGES = [COLUMN_SEPARATOR + c for c in " \t"] + [c + COLUMN_SEPARATOR for c in " \t"]


def _column_text(values, push) -> list:
    """A column's values as written (None as empty), with `push` called only when some value
    needs it: one that _SPECIAL finds something in, told here by substring searches over the
    whole column (much faster than a regular expression)."""
    texts = ["" if v is None else v for v in values]
    bounded = COLUMN_SEPARATOR + COLUMN_SEPARATOR.join(texts) + COLUMN_SEPARATOR
    if any(c in bounded for c in _SPECIAL_CHARACTERS) or any(edge in bounded for edge in _BLANK_EDGES):
        return [push(v) for v in texts]
    return texts


def write_label(index: int, label: int, block: tuple, staging: str, mapping: Mapping, limit: int,
                use_gzip: bool, encryption: Encryption = DEFAULT_ENCRYPTION) -> Iterator[tuple]:
    """One label's merged elements (columns) as lines of Gremlin CSV in files of at most
    `limit` bytes (one line at least)."""
    n_vertex = len(mapping.vertices)
    is_vertex = label < n_vertex
    name, types = (mapping.vertices[label].name, mapping.vertices[label].props) if is_vertex \
        else (mapping.edges[label - n_vertex].name, mapping.edges[label - n_vertex].props)
    ids, a, b, props = block
    n = len(ids)
    names = repeat(push_field(name), n)
    if is_vertex:
        columns = [ids, names, _column_text(a, push_string_value)]
    else:
        columns = [ids, a, b, names]
    for p, values in zip(types, props):
        columns.append(_column_text(values, push_string_value if p.ty == "String" else push_field))
    lines = list(map(",".join, zip(*columns)))
    header = label_header(mapping, label) + "\n"
    folder = "vertices" if is_vertex else "edges"
    kind = "vertex" if is_vertex else "edge"
    extension = "csv.gz" if use_gzip else "csv"
    header_size = len(header.encode())
    text = "\n".join(lines) + "\n"
    size = len(text) if text.isascii() else len(text.encode())
    if header_size + size <= limit:
        parts = [(text, n)]
    else:
        parts, start, total = [], 0, header_size
        for i, line in enumerate(lines):
            length = len(line.encode()) + 1
            if i > start and total + length > limit:
                parts.append(("\n".join(lines[start:i]) + "\n", i - start))
                start, total = i, header_size
            total += length
        parts.append(("\n".join(lines[start:]) + "\n", n - start))
    for part, (body, count) in enumerate(parts):
        relative = f"{folder}/{name}-{index:05d}-{part:03d}.{extension}"
        yield "file", write_graph_file(staging, relative, kind, name, header + body, count, use_gzip,
                                       encryption)


def write_graph_file(staging: str, relative: str, kind: str, label: str, text: str, rows: int,
                     use_gzip: bool, encryption: Encryption = DEFAULT_ENCRYPTION) -> dict:
    """Writes one graph file (gzip with mtime 0, so the same rows give the same bytes) and
    returns its manifest entry."""
    data = text.encode("utf-8")
    if use_gzip:
        data = gzip_module.compress(data, 6, mtime=0)
    write_bytes(join(staging, relative), data, encryption)
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


# The rules a reason can state, as the Rust side names them (transform::source::rule), by the
# ending that every reason of the rule has (the reasons are this module's own words; the value,
# when one is quoted, stands before the ending).
REJECT_RULES = (
    (" is empty", "required value missing"),
    (" is not a whole number", "not a whole number"),
    (" does not fit an Int (32 bits) property", "outside the Int (32 bits) range"),
    (" is not a date (yyyy-MM-dd)", "not a date (yyyy-MM-dd)"),
    (" is not a timestamp (yyyy-MM-dd HH:mm:ss[.ffffff])", "not a timestamp (yyyy-MM-dd HH:mm:ss[.ffffff])"),
    (" is not valid UTF-8", "not valid UTF-8"),
    (" are taken", "value too long"),
)


def reject_summary(reject: tuple, show_values: bool) -> str:
    """`file:line: column C: rule` for a message, without the value (Reject::summary); the
    whole reason, value and all, only with show_values."""
    _, file, line, column, reason = reject
    if show_values:
        return f"{file}:{line}: {reason}"
    if not column:
        what = "wrong number of fields" if reason.startswith("expected ") else "malformed record"
        return f"{file}:{line}: {what}"
    rule = next((r for ending, r in REJECT_RULES if reason.endswith(ending)), "rejected")
    return f"{file}:{line}: column {column}: {rule}"


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


def byte_setting(sc, name: str, default: int, least: int = 1) -> int:
    """A number of bytes, at least `least`, from SparkConf (what --conf sets; the session's SQL
    conf would cost about a second to start)."""
    given = sc.getConf().get(name, str(default))
    try:
        value = int(given)
    except ValueError:
        value = -1
    if value < least:
        wanted = "a positive number of bytes" if least == 1 else f"a number of bytes, {least} or more"
        raise JobError(f"--conf {name}: `{given}` is not {wanted}")
    return value


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
    encryption = encryption_setting(args)
    show_values = flag(args.get("show_values"))
    columns = load_sources(read_bytes(args["sources_schema"]).decode())
    mapping = load_mapping(read_bytes(args["mapping"]).decode(), columns, args["mapping"])
    graph_dir = "datasets/graph/initial" if batch == "initial" else f"datasets/graph/incremental/{batch}"
    target = join(args["output"], graph_dir)
    if not is_s3(target):
        reclaim(join(args["output"], "datasets/graph"))
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
            files.append((d, place, path, input_bytes - size))
            names.append(path)
        datasets.append({"dataset": dataset, "files": names, "rows_read": 0, "rows_used": 0,
                         "duplicates": 0, "rejects": 0})
    if not files:
        raise JobError(f"no source files under {args['input']} for batch {batch} "
                       "(expected datasets/sources/.../<dataset>/...csv[.gz]; run datagen first)")

    sc = spark.sparkContext
    parallelism = max(sc.defaultParallelism, 2)
    root = args["input"]
    chunk_bytes = byte_setting(sc, CHUNK_BYTES_CONF, CHUNK_BYTES)
    # What the tasks tell the driver besides their rows: notes, and per chunk its good rows and
    # rejects. Keyed (by file place, by chunk), so a task that Spark runs again adds nothing.
    told = sc.accumulator([], ListParam())
    # Closures carry the mapping to the workers (cloudpickle; a broadcast's plain pickle cannot
    # carry classes defined in a script run as __main__, as Glue runs it).

    def read_file(entry):
        # A file's chunks, each keyed by the mapping task that takes it: by where it starts
        # among all the input bytes, which deals neighbouring chunks to different tasks.
        d, place, path, offset = entry
        for piece in file_chunks(mapping, d, place, path, read_bytes(join(root, path)), chunk_bytes):
            if piece[0] == "note":
                told.add([("note", place, piece[1])])
            else:
                yield (offset + piece[-1]) // chunk_bytes % map_tasks, piece[1:-1]

    # Elements meet by label group, and also by id range once the input is large enough that
    # one partition's rows (about 10 times its share of source bytes, as Python objects) would
    # not stay well within a worker's memory. Chunks are dealt round-robin to more mapping
    # tasks than there are cores (a file's neighbouring chunks to different tasks, so each task
    # gets a mix of datasets, which cost differently), and cores stay busy to the end. Not many
    # more: a PySpark task costs about 0.1 s of a core however small it is.
    groups = parallelism
    partition_bytes = byte_setting(sc, PARTITION_BYTES_CONF, PARTITION_INPUT_BYTES)
    layout = Layout(groups, -(-input_bytes // (partition_bytes * groups)))
    partitions = layout.partitions
    map_tasks = max(parallelism * 3, -(-input_bytes // MAP_TASK_INPUT_BYTES))

    def map_task(chunks):
        # Per chunk and partition, one marshalled record of its row hashes and element rows:
        # a few large records instead of millions of small ones, which is what PySpark pays
        # for (pickling each record, several times).
        with gc_paused():
            mapper = ChunkMapper(mapping, layout)
            # In source order, whatever order the chunks arrive in: which chunk first gives a
            # vertex or edge its row decides where it is written.
            for d, place, name, text, line, lossy in sorted(chunks, key=itemgetter(1, 4)):
                good, rejects, hashes, blocks = mapper.map_chunk(d, place, name, text, line, lossy)
                told.add([("chunk", (place, line), (d, good, rejects))])
                seq = source_order(d, place) | line
                for p in range(partitions):
                    if blocks[p] or hashes[p]:
                        yield p, marshal.dumps((seq, d, hashes[p], blocks[p]))

    if input_bytes <= byte_setting(sc, DRIVER_READ_BYTES_CONF, DRIVER_READ_BYTES, least=0):
        # A small batch (an incremental one, usually) is read and cut into chunks here, and
        # each mapping task is handed its chunks: a stage and a shuffle of the sources' text
        # fewer (about a second of the job on 50 MB).
        per_task: list = [[] for _ in range(map_tasks)]
        for entry in files:
            for task, chunk in read_file(entry):
                per_task[task].append(chunk)
        mapped = sc.parallelize(per_task, map_tasks).mapPartitions(
            lambda tasks: map_task(chunk for chunks in tasks for chunk in chunks))
    else:
        mapped = (sc.parallelize(files, max(1, min(len(files), map_tasks)))
                  .flatMap(read_file)
                  .partitionBy(map_tasks, lambda task: task)
                  .mapPartitions(lambda pieces: map_task(chunk for _, chunk in pieces)))
    shuffled = mapped.partitionBy(partitions, lambda p: p)

    def tally() -> tuple:
        """The rejects (in source order) and notes the mapping told; raises JobError, having
        written rejects.csv where the graph would go, when there are too many rejects."""
        chunk_reports, note_places = {}, set()
        for kind, key, value in told.value:
            if kind == "note":
                note_places.add((key, value))
            else:
                chunk_reports[key] = value
        rejects = [r for _, r in sorted(r for _, _, chunk in chunk_reports.values() for r in chunk)]
        rows = sum(good for _, good, _ in chunk_reports.values()) + len(rejects)
        if rows > 0 and len(rejects) > max_rate * rows:
            write_bytes(join(target, "rejects.csv"), rejects_csv(rejects).encode(), encryption)
            first = rejects[0]
            raise JobError(f"batch {batch}: {len(rejects)} of {rows} rows rejected "
                           f"({100 * len(rejects) / rows:.2f}%), more than --max-reject-rate {100 * max_rate:.2f}%; "
                           f"the graph was not written. Every reject is in {join(target, 'rejects.csv')}; "
                           f"the first: {reject_summary(first, show_values)}")
        return rejects, [text for _, text in sorted(notes + list(note_places))]

    # Staging: a folder beside the target locally (published by one rename, after the rejects
    # are counted), the target itself on S3 (published by writing the manifest last). So on S3
    # the mapping runs first, on its own, and the rejects are counted before any graph file is
    # written: a JVM-side count, whose output stays in Spark's shuffle files for the write.
    if is_s3(target):
        staging = target
        shuffled._jrdd.count()
        rejects, notes = tally()
        # The old generation stops counting before the first file of the new one is written:
        # a run killed from here on leaves no manifest, so no reader takes a mix of the two.
        remove(join(target, "manifest.json"))
        timings["read_parse_map"] = round(time.time() - mark, 3)
        mark = time.time()
    else:
        staging = join(args["output"], f"datasets/graph/.staging-{batch}-{os.getpid()}-{int(time.time())}")

    try:
        def write_task(index, blobs):
            with gc_paused():
                yield from write_partition(index, blobs, staging, mapping, limit, use_gzip, encryption)

        results = shuffled.mapPartitionsWithIndex(write_task).collect()
        if not is_s3(target):
            rejects, notes = tally()
        counts: dict = {}
        written = []
        for kind, value in results:
            if kind == "file":
                written.append(value)
                continue
            for d, distinct, good in value:
                previous = counts.get(d, (0, 0))
                counts[d] = (previous[0] + distinct, previous[1] + good)
        for d, entry in enumerate(datasets):
            distinct, good = counts.get(d, (0, 0))
            entry["rows_used"] = distinct
            entry["duplicates"] = good - distinct
            entry["rejects"] = sum(1 for r in rejects if r[0] == DATASETS[d])
            entry["rows_read"] = good + entry["rejects"]
        timings["merge_and_write" if is_s3(target) else "map_merge_and_write"] = round(time.time() - mark, 3)
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
                                            label_header(mapping, label) + "\n", 0, use_gzip,
                                            encryption))
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
            "settings": {"gzip": use_gzip, "max_file_bytes": limit, "max_reject_rate": max_rate},
        }
        write_bytes(join(staging, "rejects.csv"), rejects_csv(rejects).encode(), encryption)
        manifest_text = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()
        if is_s3(target):
            # Unlisted objects go before the manifest marks the batch published: the loader
            # reads every object under the prefix.
            publish(staging, target, {f["path"] for f in written} | {"rejects.csv", "manifest.json"})
            write_bytes(join(target, "manifest.json"), manifest_text, encryption)
        else:
            write_bytes(join(staging, "manifest.json"), manifest_text)
            publish(staging, target, set())
    except BaseException:
        # A failed run leaves no half-written folder behind (the graph's target is untouched).
        if not is_s3(staging) and os.path.isdir(staging):
            shutil.rmtree(staging, ignore_errors=True)
        raise
    timings["publish"] = round(time.time() - mark, 3)
    return {"output": target, "manifest": manifest, "seconds": round(time.time() - started, 3),
            "timings": timings}


def publish(staging: str, target: str, keep: set) -> None:
    """Locally: the staged folder replaces the target by rename, the old one moved aside first
    (idgraph_core::publish names). On S3 the files were written in place: objects of an earlier
    run that this one lacks are removed (the caller writes the manifest after)."""
    if is_s3(target):
        for relative, _ in list_files(target):
            if relative not in keep:
                remove(join(target, relative))
        return
    parent, name = os.path.split(target.rstrip("/"))
    old = os.path.join(parent, f".replaced-{name}-{os.getpid()}")
    os.makedirs(parent, exist_ok=True)
    if os.path.exists(target):
        os.replace(target, old)
    os.replace(staging, target)
    if os.path.exists(old):
        shutil.rmtree(old)


def reclaim(graph_root: str) -> None:
    """What publishes killed midway left (idgraph_core::publish::reclaim): a batch moved aside
    whose replacement never arrived is put back; the moved-aside copies and staging folders of
    processes that are gone are removed."""
    def gone(pid: str) -> bool:
        return pid.isdigit() and int(pid) != os.getpid() and os.path.isdir("/proc") \
            and not os.path.exists(f"/proc/{pid}")

    for folder in (graph_root, os.path.join(graph_root, "incremental")):
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if name.startswith(".replaced-") and "-" in name[10:]:
                batch, pid = name[10:].rsplit("-", 1)
                if gone(pid):
                    if os.path.exists(os.path.join(folder, batch)):
                        shutil.rmtree(path)
                    else:
                        os.replace(path, os.path.join(folder, batch))
            elif name.startswith(".staging-"):
                parts = name[9:].rsplit("-", 2)
                if len(parts) == 3 and gone(parts[1]):
                    shutil.rmtree(path, ignore_errors=True)


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
