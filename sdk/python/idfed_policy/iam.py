"""A small model of IAM policy documents: parse one, list what it allows, narrow a grant.

Enough for plugin decisions ("does this session policy allow `iam:*`?"); the host checks every grant with
its own, strict model, so a plugin cannot widen a request through these helpers.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from typing import List, Optional

from .types import Grant


class PolicyError(ValueError):
    """The text is not an IAM policy document this model understands."""


def _as_list(value, what: str) -> List[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise PolicyError(f"{what} must be a string or a list of strings")


@dataclass
class Statement:
    """One statement: its effect, actions (or NotAction) and resources (or NotResource)."""

    effect: str
    actions: List[str] = field(default_factory=list)
    not_actions: List[str] = field(default_factory=list)
    resources: List[str] = field(default_factory=list)
    not_resources: List[str] = field(default_factory=list)
    sid: Optional[str] = None
    has_condition: bool = False

    def matches_action(self, action: str) -> bool:
        """Whether the statement applies to `action` (wildcards in the statement, case-insensitive)."""
        action = action.lower()
        if self.not_actions:
            return not any(fnmatch.fnmatchcase(action, p.lower()) for p in self.not_actions)
        return any(fnmatch.fnmatchcase(action, p.lower()) for p in self.actions)


@dataclass
class PolicyDocument:
    """A parsed policy document."""

    version: Optional[str]
    statements: List[Statement]

    def allow_statements(self) -> List[Statement]:
        return [s for s in self.statements if s.effect == "Allow"]

    def deny_statements(self) -> List[Statement]:
        return [s for s in self.statements if s.effect == "Deny"]

    def allowed_actions(self) -> List[str]:
        """The action patterns of the `Allow` statements, as written, without repeats, in order."""
        seen: List[str] = []
        for s in self.allow_statements():
            for a in s.actions:
                if a not in seen:
                    seen.append(a)
        return seen

    def allows_action(self, action: str) -> bool:
        """Whether some `Allow` statement applies to `action` and no unconditional `Deny` statement does.

        `action` is a concrete action (`s3:GetObject`); wildcards are read in the document.
        """
        if any(s.matches_action(action) and not s.has_condition for s in self.deny_statements()):
            return False
        return any(s.matches_action(action) for s in self.allow_statements())

    def allows_any(self, pattern: str) -> bool:
        """Whether an `Allow` statement could grant something matching `pattern` (`iam:*`): conservative,
        true when either side's wildcard could overlap the other, or the statement uses NotAction."""
        pattern = pattern.lower()
        for s in self.allow_statements():
            if s.not_actions:
                return True
            for a in s.actions:
                a = a.lower()
                if fnmatch.fnmatchcase(a, pattern) or fnmatch.fnmatchcase(pattern, a):
                    return True
        return False

    def to_json(self) -> str:
        out = []
        for s in self.statements:
            item = {"Effect": s.effect}
            if s.sid:
                item["Sid"] = s.sid
            if s.not_actions:
                item["NotAction"] = s.not_actions
            else:
                item["Action"] = s.actions
            if s.not_resources:
                item["NotResource"] = s.not_resources
            else:
                item["Resource"] = s.resources
            out.append(item)
        doc = {"Version": self.version} if self.version else {}
        doc["Statement"] = out
        return json.dumps(doc, separators=(",", ":"))


def parse(text: str) -> PolicyDocument:
    """Parses a policy document's JSON text; raises PolicyError for what is not one."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise PolicyError(f"not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise PolicyError("a policy document is a JSON object")
    raw = doc.get("Statement")
    if raw is None:
        raise PolicyError("the document has no Statement")
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        raise PolicyError("Statement must be an object or a list")
    statements = []
    for i, s in enumerate(raw):
        if not isinstance(s, dict):
            raise PolicyError(f"statement {i} is not an object")
        effect = s.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise PolicyError(f"statement {i}: Effect must be Allow or Deny")
        if ("Action" in s) == ("NotAction" in s):
            raise PolicyError(f"statement {i}: exactly one of Action and NotAction")
        statements.append(
            Statement(
                effect=effect,
                actions=_as_list(s.get("Action"), "Action"),
                not_actions=_as_list(s.get("NotAction"), "NotAction"),
                resources=_as_list(s.get("Resource"), "Resource"),
                not_resources=_as_list(s.get("NotResource"), "NotResource"),
                sid=s.get("Sid"),
                has_condition="Condition" in s,
            )
        )
    return PolicyDocument(doc.get("Version"), statements)


def narrow_duration(grant: Grant, max_seconds: int) -> Grant:
    """The grant with its duration capped at `max_seconds` (never raised: grants may only narrow)."""
    return Grant(grant.policy, list(grant.policy_arns), list(grant.tags), min(grant.duration_seconds, max_seconds))


def with_deny(grant: Grant, actions: List[str], resources: Optional[List[str]] = None) -> Grant:
    """The grant with a `Deny` statement for `actions` added to its inline policy (allowed: it narrows).

    A grant without an inline policy is returned unchanged: adding one would change what STS does.
    """
    if grant.policy is None:
        return grant
    doc = parse(grant.policy)
    doc.statements.append(Statement("Deny", actions=list(actions), resources=list(resources or ["*"])))
    return Grant(doc.to_json(), list(grant.policy_arns), list(grant.tags), grant.duration_seconds)
