"""The Pulumi program: stack config -> validated plan -> components -> stack outputs."""

from __future__ import annotations

import pulumi
from pulumi.runtime import config as runtime_config

from components.databases import Databases, DatabasesArgs
from components.firewall import Firewall, FirewallArgs
from components.host import Host, HostArgs
from components.network import Network, NetworkArgs
from components.services import Services, ServicesArgs
from plan import NAMESPACE, AdoptedHost, Cloud, Plan, PlanError, check_secrets_present, load_plan


def read_plan() -> Plan:
    """The stack's plan, or a clean one-line error (no traceback) before any resource exists."""
    values = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret_keys = {key for key in values if runtime_config.is_config_secret(key)}
    secret_keys |= set(runtime_config.get_config_secret_keys_env())
    try:
        plan = load_plan(values, secret_keys)
        check_secrets_present(plan, values)
        return plan
    except PlanError as error:
        raise pulumi.RunError(str(error)) from None


def main() -> None:
    plan = read_plan()
    config = pulumi.Config(NAMESPACE)
    name = pulumi.get_stack()

    # An adopted host keeps its network; its rules go into its own group (firewall.securityGroupId).
    vpc_id: pulumi.Output[str] | None = None
    subnet_id: pulumi.Output[str] | None = None
    if not isinstance(plan.host, AdoptedHost):
        network = Network(f"{name}-net", NetworkArgs(plan=plan))
        vpc_id, subnet_id = network.vpc_id, network.subnet_id
    firewall = Firewall(f"{name}-fw", FirewallArgs(plan=plan, vpc_id=vpc_id))
    host = Host(
        f"{name}-host",
        HostArgs(
            plan=plan,
            vpc_id=vpc_id,
            subnet_id=subnet_id,
            security_group_id=firewall.security_group_id,
            ssh_private_key=config.require_secret("sshPrivateKey"),
        ),
    )

    if host.connection is None:
        pulumi.log.warn(
            "provisioning waits: platform:host.hostKey is not set. Pin the new instance's SSH host key "
            "(see README, 'Pinning a created host's key') and run `pulumi up` again."
        )
    elif plan.cloud == Cloud.ALIBABA:
        Databases(
            f"{name}-db",
            DatabasesArgs(plan=plan, connection=host.connection, passwords=config.require_secret_object("dbPasswords")),
            opts=pulumi.ResourceOptions(depends_on=[firewall]),
        )
    else:
        Services(
            f"{name}-svc",
            ServicesArgs(plan=plan, connection=host.connection),
            opts=pulumi.ResourceOptions(depends_on=[firewall]),
        )

    pulumi.export("plan", plan.props())
    pulumi.export("publicIp", host.public_ip)
    pulumi.export("instanceId", host.instance_id)
    pulumi.export("securityGroupId", firewall.security_group_id)
    pulumi.export("memory", {"limitMib": plan.host.memory_mib, "usedMib": plan.used_mib, "freeMib": plan.free_mib})
