"""Write idfed policy plugins in Python (contract `idfed:policy@0.2.0`), built with componentize-py.

A plugin is a subclass of `Plugin` and one line naming it for the component::

    from idfed_policy import Plugin, ConfigError, allow_unchanged, deny, export

    class GroupGate(Plugin):
        def check_config(self, config):
            if not config.get("groups"):
                raise ConfigError("list at least one group", "/groups")

        def evaluate(self, config, request):
            if request.caller.in_any_group(config["groups"]):
                return allow_unchanged(request)
            return deny("you must belong to one of: " + ", ".join(config["groups"]))

    Policy = export(GroupGate)

See README.md for building, testing and the limits the host sets.
"""

from __future__ import annotations

import json

from . import host, iam
from .types import (
    Allow,
    Approval,
    Caller,
    ConfigError,
    Connector,
    Decision,
    Deny,
    Grant,
    NeedsApproval,
    PluginError,
    PrincipalType,
    Purpose,
    Request,
    SessionTag,
    Timestamp,
    WorkloadIdentity,
    allow,
    allow_unchanged,
    deny,
    needs_approval,
)

__all__ = [
    "Allow", "Approval", "Caller", "ConfigError", "Connector", "Decision", "Deny", "Grant", "NeedsApproval",
    "Plugin", "PluginError", "PrincipalType", "Purpose", "Request", "SessionTag", "Timestamp",
    "WorkloadIdentity", "allow", "allow_unchanged", "deny", "export", "host", "iam", "needs_approval",
    "parse_config", "validate_config", "evaluate",
]

#: The contract the SDK builds plugins of.
CONTRACT = "idfed:policy@0.2.0"


class Plugin:
    """A policy plugin. Override `evaluate`, and `check_config` if the plugin takes a configuration.

    Each call runs in a fresh instance: nothing set on `self` or in module globals survives to the next
    call; use `host.kv_*` for state that must.
    """

    def check_config(self, config: dict) -> None:
        """Checks a binding's configuration (the parsed JSON object; `{}` when there is none) when an
        administrator binds the plugin. Raise `ConfigError(message, pointer)` to refuse it."""

    def evaluate(self, config: dict, request: Request) -> Decision:
        """Decides on one request: return `allow(grant)`, `allow_unchanged(request)`, `deny(reason)` or
        `needs_approval(group, reason)`. Raise `PluginError` for a malfunction (a fault: the request is
        denied); any other exception traps the instance, with the same effect."""
        raise NotImplementedError


def parse_config(text: str) -> dict:
    """The binding's configuration as a dict; raises ConfigError unless it is a JSON object (or empty)."""
    if not text.strip():
        return {}
    try:
        config = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"the configuration is not JSON: {e}") from None
    if not isinstance(config, dict):
        raise ConfigError("the configuration must be a JSON object", "")
    return config


def validate_config(plugin_cls, config_text: str) -> None:
    """What the host's `validate-config` runs; for unit tests. Raises ConfigError."""
    plugin_cls().check_config(parse_config(config_text))


def evaluate(plugin_cls, config_text: str, request: Request) -> Decision:
    """What the host's `evaluate` runs, without the component; for unit tests."""
    return plugin_cls().evaluate(parse_config(config_text), request)


def export(plugin_cls):
    """The class componentize-py exports as the world's `policy` interface: assign it to `Policy` in the
    plugin's main module (`Policy = export(MyPlugin)`).

    Outside a component build (no generated `wit_world`), returns None, so the module still imports in
    unit tests.
    """
    try:
        from componentize_py_types import Err
        from wit_world import exports

        from . import _wit
    except ImportError:
        return None

    class Policy(exports.Policy):
        def validate_config(self, config: str) -> None:
            try:
                validate_config(plugin_cls, config)
            except ConfigError as e:
                raise Err(_wit.config_error(e)) from None

        def evaluate(self, config: str, request):
            try:
                decision = evaluate(plugin_cls, config, _wit.request_from_wit(request))
            except (ConfigError, PluginError) as e:
                raise Err(_wit.plugin_error(e)) from None
            return _wit.decision_to_wit(decision)

    Policy.__name__ = Policy.__qualname__ = "Policy"
    return Policy
