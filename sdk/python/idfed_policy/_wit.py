"""Conversions between the SDK's types and the bindings componentize-py generates (`wit_world`).

Imported only inside a component build, where `wit_world` exists.
"""

from wit_world.imports import types as w

from . import types as t

_PRINCIPAL = {
    w.PrincipalType.FEDERATED_USER: t.PrincipalType.FEDERATED_USER,
    w.PrincipalType.IAM_USER: t.PrincipalType.IAM_USER,
    w.PrincipalType.ASSUMED_ROLE: t.PrincipalType.ASSUMED_ROLE,
}


def _timestamp(ts) -> t.Timestamp:
    return t.Timestamp(ts.seconds, ts.nanoseconds)


def _purpose(p) -> t.Purpose:
    if isinstance(p, w.Purpose_ServiceToken):
        return t.Purpose.service_token(p.value)
    if isinstance(p, w.Purpose_ConsoleSignIn):
        return t.Purpose.CONSOLE_SIGN_IN
    return t.Purpose.CREDENTIALS


def request_from_wit(r) -> t.Request:
    c = r.caller
    workload = None
    if c.workload is not None:
        workload = t.WorkloadIdentity(
            c.workload.issuer, c.workload.subject, {cl.name: cl.value for cl in c.workload.claims}
        )
    k = r.connector
    approval = None
    if r.approval is not None:
        approval = t.Approval(r.approval.approver, _timestamp(r.approval.approved_at), r.approval.comment)
    return t.Request(
        request_id=r.request_id,
        caller=t.Caller(
            c.user_name, list(c.groups), c.is_admin, c.is_system_scope, c.source_ip, c.user_agent, workload
        ),
        connector=t.Connector(
            k.name,
            _PRINCIPAL[k.principal_type],
            k.account_name,
            k.role_arn,
            k.default_duration_seconds,
            k.max_duration_seconds,
        ),
        requested_duration_seconds=r.requested_duration_seconds,
        duration_seconds=r.duration_seconds,
        policy=r.policy,
        policy_arns=list(r.policy_arns),
        tags=[t.SessionTag(tag.key, tag.value) for tag in r.tags],
        time=_timestamp(r.time),
        justification=r.justification,
        ticket=r.ticket,
        purpose=_purpose(r.purpose),
        approval=approval,
    )


def decision_to_wit(d):
    if isinstance(d, t.Allow):
        g = d.grant
        return w.Decision_Allow(
            w.Grant(
                g.policy,
                list(g.policy_arns),
                [w.SessionTag(tag.key, tag.value) for tag in g.tags],
                int(g.duration_seconds),
            )
        )
    if isinstance(d, t.Deny):
        return w.Decision_Deny(w.Denial(str(d.reason)))
    if isinstance(d, t.NeedsApproval):
        return w.Decision_NeedsApproval(
            w.ApprovalRequirement(str(d.group), str(d.reason), d.max_duration_seconds)
        )
    raise TypeError(f"evaluate must return allow(…), deny(…) or needs_approval(…), not {d!r}")


def config_error(e: t.ConfigError):
    return w.ConfigError(e.message, e.pointer)


def plugin_error(e):
    if isinstance(e, t.ConfigError):
        return w.PluginError_InvalidConfig(e.to_text())
    if e.invalid_config:
        return w.PluginError_InvalidConfig(e.message)
    return w.PluginError_Internal(e.message)
