"""Both stacks rehearsed on network namespaces: the security groups they register, enforced by packets.

``python -m rehearsal`` (``make rehearse``) evaluates the two stacks as the engine would, in its
order (Alibaba first; its outputs handed to the Tencent stack as its StackReference reads them), turns
each stack's registered security-group rules into nftables in the namespace that plays its host,
listens on every port either plan declares (and on two it does not, TCP and UDP), and tries every connection
between the hosts and an Internet host. The table shows each flow's expectation, read from the plans,
beside what the packets did.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from plan import Plan, load_plan
from policies._rules import Rule, rules_of
from preflight.engine import StackRun, run_stack, unwrap
from preflight.stackfile import project_name, read_stack_file, with_plan_secrets
from rehearsal.flows import ADDRESSES, INTERNET_ENDPOINTS, Flow, by_namespace, expected_flows, listened_ports
from rehearsal.network import Host, Network
from rehearsal.nftables import ruleset

FOLDER = Path(__file__).resolve().parent
ROOT = FOLDER.parent
STACKS = ("alibaba", "tencent")  # in the order the engine deploys them


@dataclass(frozen=True)
class Stack:
    name: str
    cloud: str
    plan: Plan
    run: StackRun

    def rules(self) -> list[Rule]:
        """The security-group rules the stack registers, as the policy pack reads them."""
        return [
            rule
            for resource in self.run.resources
            for rule in rules_of(resource.type, unwrap(resource.inputs), resource.name, resource.urn)
        ]


@dataclass(frozen=True)
class Seen:
    flow: Flow
    seen: bool

    @property
    def as_planned(self) -> bool:
        return self.flow.expected == self.seen


def evaluate(folder: Path = FOLDER) -> dict[str, Stack]:
    """The stacks of ``folder``'s stack files, each referenced stack's outputs handed to the next."""
    project = project_name(ROOT)
    stacks: dict[str, Stack] = {}
    for name in STACKS:
        config = read_stack_file(folder / f"Pulumi.{name}.yaml", project, name)
        plan = load_plan(config.config, config.secret_keys)
        config = with_plan_secrets(config, plan)
        references = {}
        if plan.source_stack is not None:
            references[plan.source_stack] = stacks[plan.source_stack.split("/")[-1]].run.as_reference()
        run = run_stack(project, name, config.config, set(config.secret_keys), references=references or None)
        stacks[name] = Stack(name, plan.cloud.value, plan, run)
    return stacks


def rehearse(stacks: dict[str, Stack], edit: Callable[[str, list[Rule]], list[Rule]] | None = None) -> list[Seen]:
    """Every flow tried on a fresh network. ``edit``: changes a stack's rules before they are enforced
    (how a test removes or adds one)."""
    plans = {name: stack.plan for name, stack in stacks.items()}
    flows = expected_flows(plans)
    hosts = [Host(name, (ADDRESSES[name],)) for name in stacks]
    hosts.append(Host("internet", (ADDRESSES["internet"], ADDRESSES["admin"])))
    seen: list[Seen] = []
    with Network(hosts) as network:
        for name, stack in stacks.items():
            rules = stack.rules()
            network.enforce(name, ruleset(edit(name, rules) if edit else rules, stack.cloud))
            ssh = (stack.plan.host.ssh_port, "tcp")
            network.listen(name, sorted(set(listened_ports(stack.plan)) - {ssh}))
            network.sshd(name, ssh[0])
        network.listen("internet", INTERNET_ENDPOINTS)
        for namespace, chosen in by_namespace(flows):
            logins = [flow for flow in chosen if is_login(flow, plans)]
            connections = [flow for flow in chosen if not is_login(flow, plans)]
            attempts = [(f.source_address, f.destination_address, f.port, f.protocol) for f in connections]
            seen += [Seen(f, got) for f, got in zip(connections, network.probe(namespace, attempts), strict=True)]
            attempts_ssh = [(f.source_address, f.destination_address, f.port) for f in logins]
            seen += [Seen(f, got) for f, got in zip(logins, network.ssh_logins(namespace, attempts_ssh), strict=True)]
    return seen


def is_login(flow: Flow, plans: dict[str, Plan]) -> bool:
    """A flow to a host's SSH port is tried as a real login (the host's sshd, a pinned host key)."""
    plan = plans.get(flow.destination)
    return plan is not None and (flow.port, flow.protocol) == (plan.host.ssh_port, "tcp")


def peer_ports(stack: Stack) -> dict[int, str]:
    """What the stack's group opens to the peer host (port -> the workload listening there), from its
    registered rules: the figure the design card counts (its eight inbound database ports)."""
    peer = f"{stack.plan.firewall.peer_address}/32"
    listening = listened_ports(stack.plan)
    return {
        port: listening.get((port, rule.protocol), "nothing").split(" (")[0]
        for rule in stack.rules()
        if rule.direction == "ingress" and rule.action == "accept" and rule.cidr == peer and rule.ports is not None
        for low, high in rule.ports
        for port in range(low, high + 1)
    }


def differences(results: Sequence[Seen]) -> list[Seen]:
    return [result for result in results if not result.as_planned]
