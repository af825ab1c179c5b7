"""The Spark job's fast paths against the plain code they stand in for, on random inputs made of
the characters and values that matter (quotes, separators, white space, `null`, bad dates). The
parity tests (crates/loader/tests/spark_parity.rs) compare whole batches with the Rust
transform; these reach the corners that generated data rarely does."""
import os
import random
import sys
import unittest
import uuid

import xxhash

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import idgraph_transform as job  # noqa: E402

ROUNDS = 20_000


class Shortcuts(unittest.TestCase):
    def test_parse_chunk_reads_as_records_does(self):
        rng = random.Random(1)
        pieces = ["a", "b", ",", '"', '""', " ", "\n", "x,y", '"q,r"', '"s""t"', "é", "\r\n", "\r"]
        for _ in range(ROUNDS):
            # Chunks with and without carriage returns take different paths.
            alphabet = pieces if rng.random() < 0.3 else pieces[:-2]
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
            if rng.random() < 0.5:
                text += "\n"
            self.assertEqual(job.parse_chunk(text, 5), job._collect(job.records(text, 5)), repr(text))

    def test_columns_convert_as_convert_value_does(self):
        rng = random.Random(2)
        pool = ["", " ", "a", " a", "a ", "null", "NULL", "Null", "x\x1fy", "\x1f", "é ", "\u00a0x", "\u00a0",
                "\u3000\u2003", " null ",
                "x\u2003", "\ufffd", "2020-01-31", "2020-02-30", "2020-02-29", "2021-02-29",
                "0000-02-29", "0000-01-01", "0001-01-01", "9999-12-31", "0000-02-30 10:11:12",
                "2020-13-01", "2020-1-01", "\uff12020-01-01", "2020-01-31 10:11:12",
                "2020-01-31T10:11:12", "2020-01-31 24:00:00", "2020-01-31 10:11:12.5Z",
                "2020-01-31 10:11:12Z", "2020-01-31 10:11:12.", "2020-02-30 10:11:12",
                " 2020-01-31 10:11:12", "2020-01-31 10:11:60", "12", "-5", "+7", "99999999999",
                "1e3", " 42 ", "\t", "a\tb", "x\n", "0", "-0", "007", "2147483647", "2147483648",
                "-2147483648", "-2147483649", "999999999", "123456789012345678", "1234567890123456789",
                "9223372036854775807", "9223372036854775808", "-9223372036854775808", "\u0663"]

        class Rules:
            int32: set = set()

        for _ in range(ROUNDS):
            column = job.Column("c", rng.choice(["string", "int", "date", "timestamp"]), rng.random() < 0.5)
            lossy = rng.random() < 0.2
            rules = Rules()
            rules.int32 = {0} if rng.random() < 0.5 else set()
            raw = [rng.choice(pool) for _ in range(rng.randint(1, 6))]
            values, problems = job.ChunkMapper.convert_columns(None, [column], rules, [(v,) for v in raw], lossy)
            expected = [job.convert_value(column, v, 0 in rules.int32, lossy) for v in raw]
            self.assertEqual(problems, {r: ("c", e[1]) for r, e in enumerate(expected) if e[1] is not None},
                             (column, lossy, raw))
            self.assertEqual([v for r, v in enumerate(values[0]) if r not in problems],
                             [e[0] for e in expected if e[1] is None], (column, lossy, raw))

    def test_keys_normalise_as_normalise_does(self):
        rng = random.Random(5)
        pieces = ["1", "0", "5", "9", "+", "-", " ", "(", ")", ".", "x", "X", "ext", "\u00a0", "\u0663",
                  "\uff11", "\x1f", "a", "É", "001", "1555"]
        for _ in range(ROUNDS):
            how = rng.choice(["phone", "phone", "trim", "lower", "upper"])
            values = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 14))) for _ in range(rng.randint(1, 5))]
            if rng.random() < 0.2:
                values[0] = None
            self.assertEqual(job.normalise_all(how, values), [job.normalise(how, v or "") for v in values],
                             (how, values))

    def test_column_text_escapes_as_push_does(self):
        rng = random.Random(3)
        pool = ["", " ", "a", " a", "a ", "\ta", "a\t", "a,b", 'a"b', "a;b", "x\x1fy", "\x1f",
                " \x1f", "\x1f ", "\x00", "a\nb", "a\rb", "é", None]
        for _ in range(ROUNDS):
            values = [rng.choice(pool) for _ in range(rng.randint(1, 5))]
            for push in (job.push_field, job.push_string_value):
                self.assertEqual(job._column_text(values, push), [push("" if v is None else v) for v in values],
                                 values)

    def test_ids_are_the_hash_shaped_as_a_version_8_uuid(self):
        rng = random.Random(4)
        datas = [bytes(rng.randrange(256) for _ in range(rng.randint(0, 40))) for _ in range(2_000)]
        texts, raws = job.uuid_texts_and_bytes(datas)
        self.assertEqual(texts, job.uuid_texts(datas))
        for data, text, raw in zip(datas, texts, raws):
            shaped = bytearray(xxhash.xxh3_128_digest(data))
            shaped[6] = (shaped[6] & 0x0F) | 0x80
            shaped[8] = (shaped[8] & 0x3F) | 0x80
            expected = uuid.UUID(bytes=bytes(shaped))
            self.assertEqual((text, raw), (str(expected), bytes(shaped)))
            self.assertEqual((expected.version, expected.variant), (8, uuid.RFC_4122))


if __name__ == "__main__":
    unittest.main()
