"""The guest agent helpers, from the core (:mod:`virtscenario.vm.agent`), where ``verify`` uses them too."""

from virtscenario.vm.agent import (
    AGENT_CHANNEL,
    AgentError,
    ExecResult,
    agent_channel_state,
    agent_command,
    agent_exec,
    guest_read,
    wait_for_agent,
)

__all__ = ["AGENT_CHANNEL", "AgentError", "ExecResult", "agent_channel_state", "agent_command", "agent_exec",
           "guest_read", "wait_for_agent"]
