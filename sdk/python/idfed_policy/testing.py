"""Helpers for unit-testing plugin logic under plain CPython."""

from .types import Caller, Connector, PrincipalType, Request, Timestamp

#: An inline session policy allowing S3 reads.
S3_READ_POLICY = (
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],'
    '"Resource":"*"}]}'
)


def sample_request(**changes) -> Request:
    """A request from `alice` (groups `dev`) to an assumed-role connector `dev` for one hour, at
    Monday 2024-01-01 12:00 UTC; keyword arguments replace fields."""
    r = Request(
        request_id="test-request",
        caller=Caller("alice", ["dev"], source_ip="127.0.0.1", user_agent="tests"),
        connector=Connector("dev", PrincipalType.ASSUMED_ROLE, "main", "arn:aws:iam::123456789012:role/dev"),
        requested_duration_seconds=3600,
        duration_seconds=3600,
        policy=S3_READ_POLICY,
        policy_arns=[],
        tags=[],
        time=Timestamp(1_704_110_400),
    )
    for name, value in changes.items():
        setattr(r, name, value)
    return r


def at(seconds: int, **changes) -> Request:
    """`sample_request` at a given Unix time."""
    return sample_request(time=Timestamp(seconds), **changes)
