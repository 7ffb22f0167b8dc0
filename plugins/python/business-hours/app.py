"""idfed policy plugin `business-hours`, in Python: refuses credentials outside a weekly time window, unless
the caller is in an exempt group. The same configuration and answers as the Rust `plugins/business-hours`."""

from idfed_policy import ConfigError, Plugin, allow_unchanged, deny, export, host

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAY_NAMES = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
FIELDS = {"utc_offset_minutes", "days", "start", "end", "exempt_groups"}


def parse_hhmm(text, allow_24):
    """`HH:MM` (00:00–23:59, and 24:00 when `allow_24`) as minutes after midnight, or None."""
    if not isinstance(text, str) or len(text) != 5 or text[2] != ":":
        return None
    h, m = text[:2], text[3:]
    if not (h.isdigit() and m.isdigit() and h.isascii() and m.isascii()):
        return None
    h, m = int(h), int(m)
    if allow_24 and (h, m) == (24, 0):
        return 24 * 60
    if h <= 23 and m <= 59:
        return h * 60 + m
    return None


def hhmm(minutes):
    return f"{minutes // 60:02}:{minutes % 60:02}"


def utc_offset(minutes):
    sign = "-" if minutes < 0 else "+"
    return f"UTC{sign}{abs(minutes) // 60:02}:{abs(minutes) % 60:02}"


class Window:
    """The checked configuration."""

    def __init__(self, config):
        for key in config:
            if key not in FIELDS:
                raise ConfigError(f"unknown field {key!r}", f"/{key}")
        offset = config.get("utc_offset_minutes", 0)
        if not isinstance(offset, int) or isinstance(offset, bool) or not -720 <= offset <= 840:
            raise ConfigError(
                "utc_offset_minutes must be between -720 (UTC-12:00) and 840 (UTC+14:00)", "/utc_offset_minutes"
            )
        days = config.get("days", DAYS[:5])
        if not isinstance(days, list) or not days:
            raise ConfigError("days must list at least one day", "/days")
        self.days = [False] * 7
        for i, d in enumerate(days):
            k = DAYS.index(d.lower()) if isinstance(d, str) and d.lower() in DAYS else None
            if k is None:
                raise ConfigError(f"unknown day {d!r}: use mon, tue, wed, thu, fri, sat or sun", f"/days/{i}")
            if self.days[k]:
                raise ConfigError(f"day {d!r} is listed twice", f"/days/{i}")
            self.days[k] = True
        start, end = config.get("start", "08:00"), config.get("end", "18:00")
        self.start = parse_hhmm(start, False)
        if self.start is None:
            raise ConfigError(f"start must be HH:MM from 00:00 to 23:59, not {start!r}", "/start")
        self.end = parse_hhmm(end, True)
        if self.end is None:
            raise ConfigError(f"end must be HH:MM from 00:00 to 24:00, not {end!r}", "/end")
        if self.start == self.end:
            raise ConfigError(
                "start and end are equal, so the window would be empty (use 00:00 to 24:00 for whole days)", "/end"
            )
        groups = config.get("exempt_groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ConfigError("exempt_groups must be a list of group names", "/exempt_groups")
        self.offset = offset
        self.exempt_groups = groups

    def local(self, time):
        """The local weekday (Monday = 0) and minute of the day."""
        local = time.seconds + self.offset * 60
        weekday = (local // 86_400 + 3) % 7  # 1970-01-01 was a Thursday.
        return weekday, (local % 86_400) // 60

    def contains(self, time):
        weekday, minute = self.local(time)
        if self.start < self.end:
            return self.days[weekday] and self.start <= minute < self.end
        # Overnight: after start belongs to today, before end to yesterday's window.
        return (self.days[weekday] and minute >= self.start) or (self.days[(weekday + 6) % 7] and minute < self.end)

    def deny_reason(self, time):
        weekday, minute = self.local(time)
        days = ", ".join(DAY_NAMES[d] for d in range(7) if self.days[d])
        overnight = "" if self.start < self.end else " the next day"
        zone = utc_offset(self.offset)
        return (
            f"outside business hours: credentials are issued on {days} from {hhmm(self.start)} to "
            f"{hhmm(self.end)}{overnight} ({zone}); it is now {DAY_NAMES[weekday]} {hhmm(minute)} ({zone})"
        )


class BusinessHours(Plugin):
    def check_config(self, config):
        Window(config)

    def evaluate(self, config, request):
        window = Window(config)
        if window.contains(request.time):
            return allow_unchanged(request)
        for group in window.exempt_groups:
            if request.caller.in_group(group):
                host.info(f"outside business hours; allowed because the caller is in exempt group {group!r}")
                return allow_unchanged(request)
        return deny(window.deny_reason(request.time))


Policy = export(BusinessHours)
