"""Unit tests of the plugin's logic under plain CPython: `python -m unittest` in this directory, with
`sdk/python` on PYTHONPATH."""

import unittest

from idfed_policy import ConfigError, Deny, evaluate, validate_config
from idfed_policy.testing import at

from app import BusinessHours

MONDAY = 1_704_067_200  # 2024-01-01 00:00 UTC, a Monday.


def when(day, hh, mm):
    return at(MONDAY + (day - 1) * 86_400 + hh * 3600 + mm * 60)


class BusinessHoursTest(unittest.TestCase):
    def decide(self, config, request):
        return evaluate(BusinessHours, config, request)

    def test_defaults_are_weekdays_8_to_18_utc(self):
        self.assertNotIsInstance(self.decide("", when(1, 8, 0)), Deny)
        self.assertNotIsInstance(self.decide("{}", when(5, 17, 59)), Deny)
        self.assertIsInstance(self.decide("", when(5, 18, 0)), Deny)
        self.assertEqual(
            self.decide("", when(6, 10, 15)).reason,
            "outside business hours: credentials are issued on Mon, Tue, Wed, Thu, Fri from 08:00 to 18:00 "
            "(UTC+00:00); it is now Sat 10:15 (UTC+00:00)",
        )

    def test_overnight_and_offset(self):
        c = '{"days": ["fri"], "start": "22:00", "end": "06:00"}'
        self.assertNotIsInstance(self.decide(c, when(6, 5, 59)), Deny)
        self.assertIsInstance(self.decide(c, when(5, 5, 0)), Deny)
        self.assertNotIsInstance(self.decide('{"utc_offset_minutes": 60}', when(1, 7, 30)), Deny)

    def test_exempt_groups(self):
        r = when(6, 3, 0)
        r.caller.groups.append("oncall")
        self.assertNotIsInstance(self.decide('{"exempt_groups": ["oncall"]}', r), Deny)

    def test_config_validation(self):
        validate_config(BusinessHours, '{"days": ["Mon", "SAT"], "start": "00:00", "end": "24:00"}')
        for config, pointer in [
            ('{"days": ["mon", "funday"]}', "/days/1"),
            ('{"days": ["mon", "mon"]}', "/days/1"),
            ('{"start": "8:00"}', "/start"),
            ('{"end": "18:60"}', "/end"),
            ('{"utc_offset_minutes": 900}', "/utc_offset_minutes"),
            ('{"strat": "09:00"}', "/strat"),
        ]:
            with self.assertRaises(ConfigError) as e:
                validate_config(BusinessHours, config)
            self.assertEqual(e.exception.pointer, pointer, config)


if __name__ == "__main__":
    unittest.main()
