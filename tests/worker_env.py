"""What a process that runs pgtender's jobs needs from its environment, derived from a policy file:
the variables (the fixed ones, each target's `url_env`, each alert channel's `*_env`, the SMTP
settings when something sends email) and the Prefect blocks (each target's `url_secret`, each
channel's `block`). deployments/README.md's worker environment tables are checked against it."""

from __future__ import annotations

from dataclasses import dataclass, field

from flows.core.policy.settings import Policy

FIXED = ("PREFECT_API_URL", "PGTENDER_CONFIG", "PGTENDER_STATE_DIR")
# set by the deployments themselves (their `env` job variable): every run heartbeats
SET_BY_DEPLOYMENTS = ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY",)
SMTP = (
    "PGTENDER_SMTP_HOST",
    "PGTENDER_SMTP_PORT",
    "PGTENDER_SMTP_TLS",
    "PGTENDER_SMTP_USERNAME",
    "PGTENDER_SMTP_PASSWORD",
)
BLOCK_TYPES = {
    "secret": "Secret",
    "slack": "Slack Webhook",
    "teams": "Microsoft Teams Webhook",
    "pagerduty": "PagerDuty Webhook",
    "webhook": "Custom Webhook",
}


@dataclass
class WorkerNeeds:
    variables: dict[str, bool] = field(default_factory=dict)  # name -> holds a secret
    blocks: dict[str, str] = field(default_factory=dict)  # block name -> its type (BLOCK_TYPES)


def worker_needs(policy: Policy) -> WorkerNeeds:
    needs = WorkerNeeds(variables=dict.fromkeys((*FIXED, *SET_BY_DEPLOYMENTS), False))
    for spec in policy.targets.values():
        if spec.url_env is not None:
            needs.variables[spec.url_env] = True
        if spec.url_secret is not None:
            needs.blocks[spec.url_secret] = BLOCK_TYPES["secret"]
    email = False
    # a target's own [targets.NAME.alerts] and report replace the file's for that target
    for each in [policy, *(policy.for_target(name) for name in policy.targets)]:
        for channel in each.alerts.channels:
            for env in channel.env_names:
                needs.variables[env] = True
            block = getattr(channel, "block", None)
            if block is not None:
                needs.blocks[block] = BLOCK_TYPES[channel.type]
            email = email or channel.type == "email"
        email = email or bool(each.report.recipients)
        storage = each.retention.storage  # the archive store's keys (dump mode, rollback --drop-data)
        for env in (storage.key_env, storage.secret_env):
            if env is not None:
                needs.variables[env] = True
    if email:
        needs.variables.update({name: name.endswith("_PASSWORD") for name in SMTP})
    return needs
