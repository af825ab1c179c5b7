"""What the Spark job says about a reject names file, line, column and rule, never the value
(unless asked), and its encryption settings are checked as the Rust side checks them."""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import idgraph_transform as job  # noqa: E402

MARK = "SECRET-MARK-4711"


class Messages(unittest.TestCase):
    def test_a_reject_summary_carries_no_value_and_names_its_rule(self):
        cases = [
            ("int", MARK, "not a whole number"),
            ("int", "9" * 30 + MARK, "not a whole number"),
            ("date", MARK, "not a date (yyyy-MM-dd)"),
            ("timestamp", MARK + "`", "not a timestamp (yyyy-MM-dd HH:mm:ss[.ffffff])"),
        ]
        for ty, raw, rule in cases:
            value, reason = job.convert_value(job.Column("col", ty, False), raw, False, False)
            self.assertIsNone(value)
            reject = ("first_party", "f.csv", 7, "col", reason)
            summary = job.reject_summary(reject, False)
            self.assertEqual(summary, f"f.csv:7: column col: {rule}", (ty, reason))
            self.assertNotIn(MARK, summary)
            self.assertIn(MARK[:6], job.reject_summary(reject, True))
        too_long = ("d", "f", 3, "col", f"column col: a value of 9 bytes; at most {job.MAX_FIELD_BYTES} are taken")
        self.assertEqual(job.reject_summary(too_long, False), "f:3: column col: value too long")
        _, empty = job.convert_value(job.Column("col", "string", False), " ", False, False)
        self.assertEqual(job.reject_summary(("d", "f", 1, "col", empty), False),
                         "f:1: column col: required value missing")
        self.assertEqual(job.reject_summary(("d", "f", 2, "", "expected 3 fields, found 2"), False),
                         "f:2: wrong number of fields")

    def test_encryption_settings_are_checked(self):
        self.assertEqual(job.encryption_setting({}), ("AES256", ""))
        self.assertEqual(job.encryption_setting({"encryption": "aws:kms", "kms_key_id": "k1"}), ("aws:kms", "k1"))
        self.assertEqual(job.encryption_setting({"encryption": "none"}), ("", ""))
        for bad in [{"encryption": "rot13"}, {"encryption": "AES256", "kms_key_id": "k1"},
                    {"encryption": "aws:kms", "kms_key_id": "alias/mine"}]:
            with self.assertRaises(job.JobError, msg=bad):
                job.encryption_setting(bad)
        arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab"
        self.assertTrue(job.kms_key_matches("1234abcd-12ab", arn))
        self.assertTrue(job.kms_key_matches(arn, arn))
        self.assertFalse(job.kms_key_matches("1234abcd", arn))
        self.assertFalse(job.kms_key_matches("other", arn))


if __name__ == "__main__":
    unittest.main()


class Reclaim(unittest.TestCase):
    """The job's reclaim of killed publishes, as idgraph_core::publish::reclaim does it."""

    def test_a_batch_moved_aside_comes_back_and_dead_runs_leftovers_go(self):
        import tempfile
        dead = "4194311"  # above the kernel's largest pid
        with tempfile.TemporaryDirectory() as root:
            graph = os.path.join(root, "datasets", "graph")
            aside = os.path.join(graph, f".replaced-initial-{dead}")
            staged = os.path.join(graph, f".staging-initial-{dead}-123")
            mine = os.path.join(graph, f".staging-initial-{os.getpid()}-9")
            inc_aside = os.path.join(graph, "incremental", f".replaced-20260101_000000-{dead}")
            for folder in (aside, staged, mine, inc_aside, os.path.join(graph, "incremental", "20260101_000000")):
                os.makedirs(folder)
            with open(os.path.join(aside, "manifest.json"), "w") as f:
                f.write("old")
            job.reclaim(graph)
            with open(os.path.join(graph, "initial", "manifest.json")) as f:
                self.assertEqual(f.read(), "old")
            self.assertEqual(sorted(os.listdir(graph)), sorted([".staging-initial-%d-9" % os.getpid(), "incremental", "initial"]))
            self.assertEqual(os.listdir(os.path.join(graph, "incremental")), ["20260101_000000"])
