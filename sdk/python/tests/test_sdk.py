"""The SDK's own tests, under plain CPython: `python3 -m unittest discover sdk/python/tests`."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from idfed_policy import (  # noqa: E402
    Allow, ConfigError, Deny, Plugin, allow, deny, evaluate, export, iam, parse_config, validate_config,
)
from idfed_policy.testing import sample_request  # noqa: E402


class Gate(Plugin):
    def check_config(self, config):
        if not config.get("groups"):
            raise ConfigError("list at least one group", "/groups")

    def evaluate(self, config, request):
        if not request.caller.in_any_group(config["groups"]):
            return deny("no")
        return allow(iam.narrow_duration(request.grant(), config.get("max", 3600)))


class SdkTest(unittest.TestCase):
    def test_config(self):
        self.assertEqual(parse_config(""), {})
        with self.assertRaises(ConfigError):
            parse_config("[1]")
        with self.assertRaises(ConfigError) as e:
            validate_config(Gate, "{}")
        self.assertEqual(e.exception.pointer, "/groups")

    def test_evaluate(self):
        self.assertIsInstance(evaluate(Gate, '{"groups": ["ops"]}', sample_request()), Deny)
        d = evaluate(Gate, '{"groups": ["dev"], "max": 900}', sample_request())
        self.assertIsInstance(d, Allow)
        self.assertEqual(d.grant.duration_seconds, 900)
        self.assertIsNone(export(Gate), "no bindings outside a component build")

    def test_iam(self):
        doc = iam.parse(sample_request().policy)
        self.assertEqual(doc.allowed_actions(), ["s3:GetObject", "s3:ListBucket"])
        self.assertTrue(doc.allows_action("S3:getobject"))
        self.assertFalse(doc.allows_action("s3:PutObject"))
        self.assertFalse(doc.allows_any("iam:*"))
        self.assertTrue(iam.parse('{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}').allows_any("iam:*"))
        g = iam.with_deny(sample_request().grant(), ["s3:ListBucket"])
        self.assertFalse(iam.parse(g.policy).allows_action("s3:ListBucket"))
        with self.assertRaises(iam.PolicyError):
            iam.parse('{"Statement": [{"Effect": "Maybe", "Action": "*"}]}')


if __name__ == "__main__":
    unittest.main()
