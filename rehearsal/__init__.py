"""Both stacks rehearsed on network namespaces: the security groups they register, enforced by packets.

``python -m rehearsal`` (``make rehearse``) evaluates the two stacks as the engine would, in its
order (Alibaba first; its outputs handed to the Tencent stack as its StackReference reads them), turns
each stack's registered security-group rules into nftables in the namespace that plays its host,
listens on every port either plan declares (and on two it does not, TCP and UDP), and tries every connection
between the hosts and an Internet host. The table shows each flow's expectation, read from the plans,
beside what the packets did. Then the metrics tunnel runs as the two stacks render it: the Alibaba
stack's authorized_keys line on its sshd, the Tencent stack's ``ssh`` command line from its host,
and every forward read through it; a forward its key does not permit, and a remote forward, must
carry nothing.
"""

from __future__ import annotations

import contextlib
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from components.metrics_tunnel import KEY_CREDENTIAL, forwards
from plan import METRICS_TUNNEL, Plan, load_plan, metrics_tunnel_of
from policies._rules import Rule, rules_of
from policies.facts import step_record_name
from preflight.engine import StackRun, run_stack, unwrap
from preflight.stackfile import project_name, read_stack_file, with_plan_secrets
from rehearsal.flows import ADDRESSES, INTERNET_ENDPOINTS, Flow, by_namespace, expected_flows, listened_ports
from rehearsal.network import COMMAND_TIMEOUT_S, Host, Network
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

    def parameters(self, step: str) -> dict[str, str]:
        """The parameters of the stack's step whose command ends in ``step`` (its record's)."""
        (record,) = [r for r in self.run.resources if r.name.endswith(step_record_name(f"-{step}"))]
        return dict(unwrap(record.inputs)["parameters"])

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


def rehearse(
    stacks: dict[str, Stack],
    edit: Callable[[str, list[Rule]], list[Rule]] | None = None,
    login: Callable[[str], str] | None = None,
) -> list[Seen]:
    """Every flow tried on a fresh network. ``edit``: changes a stack's rules before they are enforced;
    ``login``: changes the metrics tunnel's authorized_keys options (how a test takes one away)."""
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
            # The metrics tunnel's forwards are its own listeners, on loopback (tunnel_flows).
            tunnel = {(spec.port, "tcp") for w in stack.plan.workloads if w.name == METRICS_TUNNEL for spec in w.ports}
            network.listen(name, sorted(set(listened_ports(stack.plan)) - {ssh} - tunnel))
            network.sshd(name, ssh[0])
        network.listen("internet", INTERNET_ENDPOINTS)
        for namespace, chosen in by_namespace(flows):
            logins = [flow for flow in chosen if is_login(flow, plans)]
            connections = [flow for flow in chosen if not is_login(flow, plans)]
            attempts = [(f.source_address, f.destination_address, f.port, f.protocol) for f in connections]
            seen += [Seen(f, got) for f, got in zip(connections, network.probe(namespace, attempts), strict=True)]
            attempts_ssh = [(f.source_address, f.destination_address, f.port) for f in logins]
            seen += [Seen(f, got) for f, got in zip(logins, network.ssh_logins(namespace, attempts_ssh), strict=True)]
        seen += tunnel_flows(network, stacks, login)
    return seen


def tunnel_flows(network: Network, stacks: dict[str, Stack], login: Callable[[str], str] | None = None) -> list[Seen]:
    """The metrics tunnel from the Tencent host to the Alibaba host's exporters, as the stacks render
    it. Only the key (the rehearsal's, for the mock's), the host key it pins (the rehearsal sshd's,
    for the stack file's example) and the user (root: the namespaces share the machine's accounts)
    stand in. Each permitted forward must read its exporter's port; a forward to a database port
    and a remote forward must carry nothing."""
    alibaba, tencent = stacks["alibaba"], stacks["tencent"]
    exported = alibaba.run.outputs.get("metricsTunnel")
    tunnel = metrics_tunnel_of(unwrap(exported)) if exported is not None else None
    if tunnel is None or not tencent.plan.runs_prometheus:
        return []
    workdir = network.workdir
    key_type, key_data, *_ = (workdir / "tunnel.pub").read_text().split()
    options, _, _, comment = alibaba.parameters("metrics-login")["AUTHORIZED"].split(" ")
    network.authorize(f"{login(options) if login else options} {key_type} {key_data} {comment}")
    monitoring = tencent.parameters("monitoring")
    known_hosts = workdir / "tunnel_known_hosts"
    pinned = monitoring["FILE_METRICS_TUNNEL_KNOWN_HOSTS"].split(" ")[0]
    known_hosts.write_text(f"{pinned} {(workdir / 'host.pub').read_text()}")
    exec_start = next(line for line in monitoring["UNIT_METRICS_TUNNEL"].splitlines() if line.startswith("ExecStart="))
    argv = [_stand_in(word, tunnel.user, workdir / "tunnel", known_hosts) for word in shlex.split(exec_start[10:])]
    *options_and_forwards, destination = argv
    database = min(db.ports[0].port for db in alibaba.plan.databases)
    unpermitted = _UNPERMITTED_FORWARD
    network.start(
        "tencent", [*options_and_forwards, "-L", f"127.0.0.1:{unpermitted}:127.0.0.1:{database}", destination]
    )
    local = forwards(tunnel)
    first = ("127.0.0.1", local[0][1])
    deadline = time.monotonic() + COMMAND_TIMEOUT_S
    while network.fetch("tencent", [first]) == [None] and time.monotonic() < deadline:
        time.sleep(0.2)
    read = network.fetch("tencent", [("127.0.0.1", here) for _, here, _ in local] + [("127.0.0.1", unpermitted)])
    seen = [
        Seen(Flow("tencent", "alibaba", there, f"{name} through the metrics tunnel", True, "tunnel"), got == str(there))
        for (name, _, there), got in zip(local, read, strict=False)
    ]
    seen.append(
        Seen(
            Flow("tencent", "alibaba", database, "a database through the metrics tunnel", False, "tunnel"),
            read[-1] is not None,
        )
    )
    remote = network.start(
        "tencent",
        [
            *options_and_forwards[: options_and_forwards.index("-L")],
            "-R",
            f"127.0.0.1:{unpermitted}:127.0.0.1:{database}",
            destination,
        ],
    )
    with contextlib.suppress(subprocess.TimeoutExpired):  # refused, ssh exits (ExitOnForwardFailure)
        remote.wait(timeout=_REMOTE_FORWARD_WAIT_S)
    (carried,) = network.fetch("alibaba", [("127.0.0.1", unpermitted)])
    remote_forward = Flow("tencent", "alibaba", unpermitted, "a remote forward onto the Alibaba host", False, "tunnel")
    seen.append(Seen(remote_forward, carried is not None))
    return seen


# A local port of the rehearsal's own: the tunnel's forward to a database port (its key does not permit
# it) and the remote forward it tries.
_UNPERMITTED_FORWARD = 29999
_REMOTE_FORWARD_WAIT_S = 5


def _stand_in(word: str, user: str, key: Path, known_hosts: Path) -> str:
    """One word of the tunnel's command line with the rehearsal's key, pinned host key and user."""
    if word == f"IdentityFile=%d/{KEY_CREDENTIAL}":
        return f"IdentityFile={key}"
    if word.startswith("UserKnownHostsFile="):
        return f"UserKnownHostsFile={known_hosts}"
    if word.startswith(f"{user}@"):
        return f"root@{word.partition('@')[2]}"
    return word


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
