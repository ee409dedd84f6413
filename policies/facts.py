"""The platform's facts, each defined once: the plan, the components, ``preflight``, the tests and the
policy pack all read them from here.

Standard library only, and nothing of the program: the pack runs alone in the CLI's policy
virtualenv (``requirements.txt``), so the facts live inside it and the program imports them.
``tests/policies/test_facts.py`` fails when a file writes one of these lists or type tokens again.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import TypedDict

# ---------------------------------------------------------------------------------------
# Type tokens: the program's components and the resources it registers
# ---------------------------------------------------------------------------------------

STACK = "pulumi:pulumi:Stack"
STACK_REFERENCE = "pulumi:pulumi:StackReference"
HOST = "platform:compute:Host"
NETWORK = "platform:network:Network"
FIREWALL = "platform:network:Firewall"
DATABASES = "platform:provisioning:Databases"
SERVICES = "platform:provisioning:Services"
OFF_HOST_BACKUPS = "platform:backups:OffHostBackups"
REPLICATION_CREDENTIALS = "platform:replication:ReplicationCredentials"
STEP = "platform:provisioning:Step"  # what one remote command runs (components.provisioning.StepRecord)

COMMAND = "command:remote:Command"
COPY_TO_REMOTE = "command:remote:CopyToRemote"
LOCAL_COMMAND = "command:local:Command"
COMMANDS = (COMMAND, LOCAL_COMMAND, COPY_TO_REMOTE)

ALIBABA_INSTANCE = "alicloud:ecs/instance:Instance"
TENCENT_INSTANCE = "tencentcloud:Instance/instance:Instance"
INSTANCES = (ALIBABA_INSTANCE, TENCENT_INSTANCE)
ALIBABA_GROUP = "alicloud:ecs/securityGroup:SecurityGroup"
TENCENT_GROUP = "tencentcloud:Security/group:Group"
GROUPS = (ALIBABA_GROUP, TENCENT_GROUP)
ALIBABA_RULE = "alicloud:ecs/securityGroupRule:SecurityGroupRule"
TENCENT_RULE_SET = "tencentcloud:Security/groupRuleSet:GroupRuleSet"
ALIBABA_GROUP_RULES = "alicloud:ecs/getSecurityGroupRules:getSecurityGroupRules"  # the data source (invoke)
OSS_BUCKET = "alicloud:oss/bucket:Bucket"

# ---------------------------------------------------------------------------------------
# Engines and the monitoring programs: names and ports
# ---------------------------------------------------------------------------------------

# The ports each engine listens on inside its container, in the order a plan lists them.
ENGINE_PORTS: dict[str, tuple[int, ...]] = {
    "mysql": (3306,),
    "postgres": (5432,),
    "redis": (6379,),
    "neo4j": (7474, 7687),  # HTTP, Bolt
    "elasticsearch": (9200, 9300),  # HTTP, transport
    "weaviate": (8080,),
}
# Each monitoring program's port: its upstream default (Grafana's: the seeds', 3000).
MONITORING_PORTS: dict[str, int] = {
    "node-exporter": 9100,
    "mysqld-exporter": 9104,
    "postgres-exporter": 9187,
    "redis-exporter": 9121,
    "prometheus": 9090,
    "alertmanager": 9093,
    "blackbox-exporter": 9115,
    "alert-relay": 9099,
    "grafana": 3000,
}
# Engines whose replication this platform sets up (Alibaba primary -> Tencent replica). Neo4j
# Community, Elasticsearch without a paid licence and Weaviate cannot replicate across clusters:
# for them the off-host backup (and a restore on the other side) is the cross-cloud copy.
REPLICABLE_KINDS: tuple[str, ...] = ("mysql", "postgres", "redis")
# The engines with an exporter, and its program.
EXPORTER_OF_KIND: dict[str, str] = {
    "mysql": "mysqld-exporter",
    "postgres": "postgres-exporter",
    "redis": "redis-exporter",
}
# The exporters a Prometheus scrapes (on its own host, or on the peer): node exporter and each engine's.
SCRAPED_EXPORTERS: tuple[str, ...] = ("node-exporter", *EXPORTER_OF_KIND.values())

# ---------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------

# Chosen here: what the OS needs besides the workloads (kernel slab and page tables, systemd,
# journald, sshd, the cloud's agent, Podman): an idle minimal Ubuntu or Alibaba Cloud Linux sits
# around 150-250 MiB. The plan's default, and the pack's floor for it.
OS_RESERVE_MIB = 256

# ---------------------------------------------------------------------------------------
# The host's file system
# ---------------------------------------------------------------------------------------

# Directories of the operating system, and of what the hosts already run (the Tencent host's own
# MySQL, PostgreSQL and Redis keep their data under /var/lib): the platform never owns, removes or
# hands to a container one of them, nor a directory holding one. Top-level /lib* counts too.
SYSTEM_DIRECTORIES = frozenset(
    {
        *("/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media", "/mnt"),
        *("/opt", "/proc", "/root", "/run", "/sbin", "/snap", "/srv", "/sys", "/usr", "/var"),
        *("/tmp", "/var/tmp", "/var/run"),  # noqa: S108 - names to refuse, not files this code writes
        *("/usr/bin", "/usr/include", "/usr/lib", "/usr/lib64", "/usr/libexec", "/usr/local", "/usr/sbin"),
        *("/usr/share", "/usr/src", "/var/backups", "/var/cache", "/var/lib", "/var/log", "/var/mail"),
        *("/var/opt", "/var/spool", "/var/lib/containers", "/var/lib/docker", "/var/lib/elasticsearch"),
        *("/var/lib/mysql", "/var/lib/neo4j", "/var/lib/pgsql", "/var/lib/postgresql", "/var/lib/redis"),
        *("/etc/systemd", "/etc/ssh"),
    }
)
_TOP_LEVEL_LIB = re.compile(r"/lib[^/]*")
_IN_ORDER = tuple(sorted(SYSTEM_DIRECTORIES))  # the first one a path holds is named


def is_below(path: str, directory: str) -> bool:
    """True when ``path`` lies strictly inside ``directory`` (both normalized)."""
    return path != directory and path.startswith(directory.rstrip("/") + "/")


def system_directory(path: str) -> str | None:
    """The system directory ``path`` is, or one it holds (``/`` holds them all); None when neither."""
    if path in SYSTEM_DIRECTORIES or _TOP_LEVEL_LIB.fullmatch(path):
        return path
    return next((d for d in _IN_ORDER if is_below(d, path)), None)


# Where a database's data lives: the step parameters that name its directory, and the directories
# the engines (the hosts' own installs) and the container runtimes (volumes) keep it in. Only a
# database retired with purge: true may lose what is there.
DATA_PARAMETERS = ("DATA_DIR", "DATA_ROOT")
DATA_DIRECTORIES = (
    *("/var/lib/mysql", "/var/lib/postgresql", "/var/lib/redis", "/var/lib/neo4j", "/var/lib/elasticsearch"),
    *("/var/lib/weaviate", "/var/lib/containers/storage/volumes", "/var/lib/docker/volumes"),
)


def in_data_directory(path: str) -> bool:
    """True when ``path`` is one of ``DATA_DIRECTORIES`` or lies inside one."""
    return any(path == directory or is_below(path, directory) for directory in DATA_DIRECTORIES)


def metrics_dir(state: str) -> str:
    """Where the platform's jobs write textfile-collector metrics, below the plan's state directory."""
    return f"{state}/metrics"


# ---------------------------------------------------------------------------------------
# Addresses: what counts as the whole Internet
# ---------------------------------------------------------------------------------------

# The share of the address space a set of sources may reach on an SSH or database port before
# it counts as the world: more addresses than a /8 (2**24 of IPv4; for IPv6 the same share,
# 2**120). The pack config's ``worldPrefixLength`` changes it for the policies.
WORLD_PREFIX_LENGTH = 8

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_BITS = {4: 32, 6: 128}
_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def is_world(cidr: str | None) -> bool:
    """True for one source or destination that is literally everything (0.0.0.0/0, ::/0, or a /0 alias).

    For who may reach SSH or a database port, use ``reaches_world``: a set of narrower CIDRs
    can add up to the world too.
    """
    if not cidr:
        return False
    try:
        return ipaddress.ip_network(cidr, strict=False).prefixlen == 0
    except ValueError:
        return False


def networks(cidrs: Iterable[str | Network | None]) -> list[Network]:
    """The CIDRs that parse (host bits ignored, as the clouds do); anything else is skipped.

    IPv4-mapped IPv6 (``::ffff:0:0/96`` is every IPv4 address) counts as the IPv4 it names.
    """
    found: list[Network] = []
    for cidr in cidrs:
        if isinstance(cidr, ipaddress.IPv4Network | ipaddress.IPv6Network):
            network = cidr
        else:
            try:
                network = ipaddress.ip_network(str(cidr or ""), strict=False)
            except ValueError:
                continue
        if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_IPV4_MAPPED):
            mapped = int(network.network_address) & 0xFFFFFFFF
            network = ipaddress.IPv4Network((mapped, network.prefixlen - 96))
        found.append(network)
    return found


def address_counts(cidrs: Iterable[str | Network | None]) -> dict[int, int]:
    """IP version -> how many addresses the union of ``cidrs`` holds (overlaps counted once)."""
    by_version: dict[int, list[Network]] = {}
    for network in networks(cidrs):
        by_version.setdefault(network.version, []).append(network)
    return {
        version: sum(n.num_addresses for n in ipaddress.collapse_addresses(nets))  # type: ignore[arg-type]
        for version, nets in sorted(by_version.items())
    }


def world_versions(cidrs: Iterable[str | Network | None], prefix_length: int = WORLD_PREFIX_LENGTH) -> list[int]:
    """The IP versions in which ``cidrs`` together reach the world.

    The world is the whole address space, or more addresses than one network of
    ``prefix_length`` holds in that version (the same share of IPv4 and of IPv6: by default
    more than 2**24 IPv4 or 2**120 IPv6 addresses). A prefix length of 0 leaves only the
    whole space, however it is split (0.0.0.0/1 + 128.0.0.0/1 is still the world).
    """
    return [
        version
        for version, count in address_counts(cidrs).items()
        if count >= 2 ** _BITS[version] or count > 2 ** (_BITS[version] - prefix_length)
    ]


def reaches_world(cidrs: Iterable[str | Network | None], prefix_length: int = WORLD_PREFIX_LENGTH) -> bool:
    """True when ``cidrs`` together are the world for an SSH or database port (see ``world_versions``)."""
    return bool(world_versions(cidrs, prefix_length))


def span_text(cidrs: Iterable[str | Network | None], prefix_length: int = WORLD_PREFIX_LENGTH) -> str:
    """How much of the world ``cidrs`` reach, for a message: '2^25 IPv4 addresses (more than a /8)'."""
    counts = address_counts(cidrs)
    parts = []
    for version in world_versions(cidrs, prefix_length):
        count, bits = counts[version], _BITS[version]
        power = count.bit_length() - 1
        amount = f"2^{power}" if count == 2**power else f"{count:,}" if count < 2**32 else f"over 2^{power}"
        size = f"all of IPv{version}" if count >= 2**bits else f"more than a /{prefix_length}"
        parts.append(f"{amount} IPv{version} addresses ({size})")
    return " and ".join(parts)


# ---------------------------------------------------------------------------------------
# The props every component registers: the host's plan (plan.Plan.props), as the pack reads it
# ---------------------------------------------------------------------------------------


class PortProps(TypedDict):
    port: int
    protocol: str  # tcp | udp
    expose: str  # public | peer | admins | none
    purpose: str


class WorkloadProps(TypedDict):
    name: str
    role: str  # database:<kind> | service | existing | existing:database | monitoring | transient:<what>
    memoryMib: int
    family: str | None
    ports: list[PortProps]
    backup: dict[str, str] | None


class PlanProps(TypedDict):
    cloud: str
    hostMode: str
    hostMemoryMib: int
    osReserveMib: int
    sshPort: int
    sshFromPeer: bool  # the peer's Prometheus logs in over SSH for the metrics tunnel
    peerCidr: str
    adminCidrs: list[str]
    workloads: list[WorkloadProps]
    backups: dict[str, object]
    replication: dict[str, list[dict[str, object]]]
    proxy: dict[str, object] | None
    retired: list[dict[str, object]]


# ---------------------------------------------------------------------------------------
# The record of one provisioning step (components.provisioning.StepRecord), as the pack reads it
# ---------------------------------------------------------------------------------------


class RemovalProps(TypedDict):
    path: str  # as the script's header declares it: ${NAME} for a parameter, a trailing /* for a directory's entries
    when: str | None  # a parameter that must be 1 for the removal to run (PURGE), or None: on every run


class StepProps(TypedDict):
    scripts: list[str]  # the files it renders, in order (components/scripts)
    parameters: dict[str, str]  # NAME -> value, exactly as rendered above the scripts
    stops: list[str]  # what it may stop, as declared (${NAME} for a parameter)
    removes: list[RemovalProps]


def step_record_name(command: str) -> str:
    """The name of a command's step record, its sibling (same parent)."""
    return f"{command}-step"


# The line components.provisioning.render writes above a script's NAME=value block.
PARAMETERS_HEADER = "# parameters rendered from the plan"
_STEP_PARAMETER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def step_parameters_in(written: str) -> list[str]:
    """The parameters a declared path names (``${DATA_DIR}`` -> ``DATA_DIR``), in order."""
    return _STEP_PARAMETER.findall(written)


def expand_step_path(written: str, parameters: dict[str, str]) -> str | None:
    """A declared path with its parameters' values in place; None when one is not a parameter of the step."""
    if any(name not in parameters for name in step_parameters_in(written)):
        return None
    return _STEP_PARAMETER.sub(lambda m: parameters[m.group(1)], written)
