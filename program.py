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


# Earlier names of this program's components, per component. A component renamed in a refactor
# keeps its state (and its children's, whose names follow it) only through an alias: list its
# old name here when you rename it. Without one the engine creates the renamed commands (their
# scripts converge, so nothing changes on the host) and forgets the old ones (retained: nothing
# runs), but the preview shows every command as created.
FORMER_NAMES: dict[str, tuple[str, ...]] = {}
# The provisioning component of each cloud is named "<stack>-<suffix>"; its commands follow.
PROVISIONING_SUFFIX = {Cloud.ALIBABA: "db", Cloud.TENCENT: "svc"}


def provisioning_options(name: str, after: pulumi.Resource) -> pulumi.ResourceOptions:
    """Protected (see main), after the firewall, aliased to the component's former names."""
    aliases: list[str | pulumi.Alias] = [pulumi.Alias(name=old) for old in FORMER_NAMES.get(name, ())]
    return pulumi.ResourceOptions(depends_on=[after], protect=True, aliases=aliases or None)


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

    # The provisioning component is protected: if it ever drops out of the program (the host key
    # of a provisioned host removed from config), the engine refuses to delete it and the preview
    # fails, instead of forgetting every command of the host.
    provisioning = f"{name}-{PROVISIONING_SUFFIX[plan.cloud]}"
    if host.connection is None:
        pulumi.log.warn(
            "provisioning waits: platform:host.hostKey is not set. Pin the new instance's SSH host key "
            "(see README, 'Pinning a created host's key') and run `pulumi up` again. If this host was "
            f"provisioned before, the engine refuses to delete the protected component {provisioning}: "
            "set the key back instead."
        )
    elif plan.cloud == Cloud.ALIBABA:
        Databases(
            provisioning,
            DatabasesArgs(plan=plan, connection=host.connection, passwords=config.require_secret_object("dbPasswords")),
            opts=provisioning_options(provisioning, after=firewall),
        )
    else:
        Services(
            provisioning,
            ServicesArgs(plan=plan, connection=host.connection),
            opts=provisioning_options(provisioning, after=firewall),
        )

    pulumi.export("plan", plan.props())
    pulumi.export("publicIp", host.public_ip)
    pulumi.export("instanceId", host.instance_id)
    pulumi.export("securityGroupId", firewall.security_group_id)
    pulumi.export("memory", {"limitMib": plan.host.memory_mib, "usedMib": plan.used_mib, "freeMib": plan.free_mib})
