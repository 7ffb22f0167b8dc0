"""The request a plugin sees and the decisions it returns, as plain dataclasses.

These mirror `idfed:policy@0.2.0` (`wit/since_v0.2.0/types.wit`) without depending on the bindings
componentize-py generates, so plugin logic runs and is unit-tested under any CPython.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from enum import Enum
from typing import List, Optional, Union


@dataclass(frozen=True)
class Timestamp:
    """A point in time: seconds and nanoseconds since the Unix epoch (UTC)."""

    seconds: int
    nanoseconds: int = 0

    def to_datetime(self, utc_offset_minutes: int = 0) -> datetime.datetime:
        """The time as an aware datetime at a fixed offset from UTC (UTC by default)."""
        zone = datetime.timezone(datetime.timedelta(minutes=utc_offset_minutes))
        return datetime.datetime.fromtimestamp(self.seconds, zone)


class PrincipalType(Enum):
    """How the connector obtains credentials from AWS STS."""

    FEDERATED_USER = "federated_user"
    IAM_USER = "iam_user"
    ASSUMED_ROLE = "assumed_role"

    def takes_session_policy(self) -> bool:
        """Whether STS takes an inline session policy for this kind of connector."""
        return self is not PrincipalType.IAM_USER

    def takes_session_tags(self) -> bool:
        """Whether STS takes session tags for this kind of connector."""
        return self is PrincipalType.ASSUMED_ROLE


@dataclass
class WorkloadIdentity:
    """A workload (a CI job, …) that called with an OIDC ID token the host verified."""

    issuer: str
    subject: str
    #: The token's claims the host kept, by name; each value is JSON text (`"org/app"` with its quotes).
    claims: dict = field(default_factory=dict)

    def claim(self, name: str):
        """A claim's value decoded from JSON (a string claim as `str`), or None if absent or not JSON."""
        import json

        text = self.claims.get(name)
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return None


@dataclass
class Caller:
    """Who is asking for credentials."""

    user_name: Optional[str]
    groups: List[str] = field(default_factory=list)
    is_admin: bool = False
    is_system_scope: bool = False
    source_ip: Optional[str] = None
    user_agent: Optional[str] = None
    workload: Optional[WorkloadIdentity] = None

    def in_group(self, group: str) -> bool:
        """Whether the caller belongs to `group` (exact name, as the directory gives it)."""
        return group in self.groups

    def in_any_group(self, groups) -> bool:
        """Whether the caller belongs to any of `groups`."""
        return any(g in self.groups for g in groups)


@dataclass
class Connector:
    """The connector the credentials are requested from."""

    name: str
    principal_type: PrincipalType
    account_name: str
    role_arn: Optional[str] = None
    default_duration_seconds: Optional[int] = None
    max_duration_seconds: Optional[int] = None


@dataclass(frozen=True)
class SessionTag:
    """An STS session tag."""

    key: str
    value: str


class Purpose:
    """What the credentials are for: `CREDENTIALS`, `CONSOLE_SIGN_IN` or `service_token(name)`."""

    __slots__ = ("kind", "service")

    def __init__(self, kind: str, service: Optional[str] = None):
        self.kind = kind
        self.service = service

    @staticmethod
    def service_token(service: str) -> "Purpose":
        """A token of another AWS service (`ecr`, `codeartifact`)."""
        return Purpose("service_token", service)

    def __eq__(self, other):
        return isinstance(other, Purpose) and (self.kind, self.service) == (other.kind, other.service)

    def __hash__(self):
        return hash((self.kind, self.service))

    def __repr__(self):
        return f"Purpose.service_token({self.service!r})" if self.service else f"Purpose({self.kind!r})"


Purpose.CREDENTIALS = Purpose("credentials")
Purpose.CONSOLE_SIGN_IN = Purpose("console_sign_in")


@dataclass
class Approval:
    """Who approved a request repeated after an approval, and when."""

    approver: str
    approved_at: Timestamp
    comment: Optional[str] = None


@dataclass
class Grant:
    """What an allowing plugin hands on: the request's policy, duration and tags, possibly narrowed.

    The host refuses a grant that widens the request (a longer duration, new policy ARNs, wider `Allow`
    statements, changed or removed tags): the request is then denied as a plugin fault.
    """

    policy: Optional[str]
    policy_arns: List[str]
    tags: List[SessionTag]
    duration_seconds: int


@dataclass
class Request:
    """One credential request, as the plugin sees it (in a chain, as the previous plugin's grant left it)."""

    request_id: str
    caller: Caller
    connector: Connector
    requested_duration_seconds: Optional[int]
    duration_seconds: int
    policy: Optional[str]
    policy_arns: List[str]
    tags: List[SessionTag]
    time: Timestamp
    justification: Optional[str] = None
    ticket: Optional[str] = None
    purpose: Purpose = Purpose.CREDENTIALS
    approval: Optional[Approval] = None

    def grant(self) -> Grant:
        """The request's own policy, policy ARNs, tags and duration, unchanged, as a grant to narrow."""
        return Grant(self.policy, list(self.policy_arns), list(self.tags), self.duration_seconds)

    def has_tag(self, key: str) -> bool:
        """Whether a session tag with this key is set (keys compared ignoring case, as STS does)."""
        return any(t.key.lower() == key.lower() for t in self.tags)

    def is_approved(self) -> bool:
        """Whether the request was approved by someone (it is a repeat after an approval)."""
        return self.approval is not None

    def workload_claim(self, name: str):
        """A claim of the caller's workload token, decoded from JSON, or None."""
        workload = self.caller.workload
        return workload.claim(name) if workload else None


@dataclass
class Allow:
    """Go on, with this grant."""

    grant: Grant


@dataclass
class Deny:
    """Refuse the request; `reason` is shown to the caller as it is (nothing secret)."""

    reason: str


@dataclass
class NeedsApproval:
    """Refuse until a member of `group` (not the requester) approves; `reason` is shown to both."""

    group: str
    reason: str
    max_duration_seconds: Optional[int] = None


Decision = Union[Allow, Deny, NeedsApproval]


def allow(grant: Grant) -> Allow:
    """Allows with `grant` (from `request.grant()`, possibly narrowed)."""
    return Allow(grant)


def allow_unchanged(request: Request) -> Allow:
    """Allows the request as it is."""
    return Allow(request.grant())


def deny(reason: str) -> Deny:
    """Refuses the request with a reason for the caller."""
    return Deny(reason)


def needs_approval(group: str, reason: str, max_duration_seconds: Optional[int] = None) -> NeedsApproval:
    """Asks for an approval by a member of `group`, optionally capping the approved duration."""
    return NeedsApproval(group, reason, max_duration_seconds)


class ConfigError(Exception):
    """Raised by `check_config` (or `evaluate`) when a binding's configuration is unusable.

    `pointer` is a JSON pointer (`/days/1`) to the offending part, if known.
    """

    def __init__(self, message: str, pointer: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.pointer = pointer

    def to_text(self) -> str:
        return f"{self.pointer}: {self.message}" if self.pointer else self.message


class PluginError(Exception):
    """Raised by `evaluate` for a malfunction the plugin reports itself: the host denies the request and
    reports `plugin_error` to administrators (not the caller). Any other exception is a trap."""

    def __init__(self, message: str, invalid_config: bool = False):
        super().__init__(message)
        self.message = message
        self.invalid_config = invalid_config
