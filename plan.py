"""The validated plan: the single source of truth for both stacks.

Stack config (``platform:*`` keys) -> ``Plan`` (pydantic, ``extra="forbid"``) -> components.
Firewall rules, container memory flags, systemd ``MemoryMax``, the budget and the port
checks are all derived from a ``Plan``; nothing here is written twice.

Each default figure is either the seeds' (quoted) or chosen here (with its reason):
docs/PROVENANCE.md lists them, and tests/test_provenance.py keeps that list true to the code.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from difflib import get_close_matches
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from plan_values import (
    CLOUD_ID_PREFIXES,
    MAX_MEMORY_MIB,
    Artifact,
    Bool,
    Calendar,
    Cidr,
    CloudId,
    HostAddress,
    HostKey,
    HostPath,
    LocalPath,
    MemoryMib,
    Name,
    Port,
    RelativePath,
    Text,
    Token,
    cloud_id_pattern,
    count,
    example_reason,
    looks_secret_key,
    shown,
)
from policies import facts
from policies.facts import OS_RESERVE_MIB, is_below, reaches_world, span_text

NAMESPACE = "platform"
# Namespaces a stack file of this project may set: the program's own and its providers'.
NAMESPACES = (NAMESPACE, "alicloud", "tencentcloud", "command", "pulumi")

# Config keys that hold secrets: they must be set with `pulumi config set --secret`.
SECRET_KEYS = ("sshPrivateKey", "dbPasswords", "serviceSecrets", "alertWebhook", "alertSigningSecret")

# The replication user on every source (quoted from the seeds: "复制用户: replication").
REPLICATION_USER = "replication"

# Command names a workload's name must not start with (or be): each names one of the commands the
# provisioning components add beside the workloads' own (<component>-<prefix><workload>), so a
# workload called so would collide with, or be mistaken for, one of them.
RESERVED_PREFIXES = ("retire-", "backup-", "restore-", "repl-", "replica-", "replication-", "tls-", "exporter-")
RESERVED_NAMES = ("bootstrap", "tls", "proxy", "monitoring")
# The transient workload of the backup jobs (see Plan.transient).
BACKUP_JOBS = "backup-jobs"
# Chosen here: the memory of a backup or drill job's own programs on the host (MemoryMax= of
# their units): bash, gzip, tar, sha256sum, the podman client of `podman exec` (a Go program,
# tens of MiB) and, after the dump, ossutil with one upload stream. The dump tools themselves
# run inside their containers' limits.
BACKUP_RUNNER_MEMORY_MIB = 64

# Chosen here: memory a JVM needs outside its heap and page cache (metaspace, threads, GC,
# direct buffers). The seeds give no figure; they record Elasticsearch OOM-killed until its heap
# was cut to 128 MB.
JVM_NATIVE_FLOOR_MIB = 150


# Fields of free text (a description, a port's purpose, a reason): words, never settings.
FREE_TEXT_FIELDS = frozenset({"description", "purpose", "none"})


class PlanError(Exception):
    """Bad config: one line naming the key, the value and what would be valid."""


# ---------------------------------------------------------------------------------------
# Domain types (the bounded values themselves live in plan_values.py)
# ---------------------------------------------------------------------------------------


def _pattern(regex: str, max_length: int | None = None) -> Any:
    return StringConstraints(strict=True, pattern=regex, max_length=max_length)


class Model(BaseModel):
    """Base for every plan model: unknown keys are errors, YAML keys are camelCase."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
    )


class Cloud(StrEnum):
    ALIBABA = "alibaba"
    TENCENT = "tencent"

    @property
    def article(self) -> str:
        return "an Alibaba" if self is Cloud.ALIBABA else "a Tencent"


class Exposure(StrEnum):
    """Who may reach a workload's port through the security group."""

    PUBLIC = "public"  # 0.0.0.0/0 (web traffic: Nginx, the application APIs)
    PEER = "peer"  # the peer host's /32 only (databases, replication)
    ADMINS = "admins"  # the admins' CIDRs
    NONE = "none"  # loopback or host-local only


class PortSpec(Model):
    port: Port
    protocol: Literal["tcp", "udp"] = "tcp"
    expose: Exposure = Exposure.NONE
    purpose: Text = ""


# ---------------------------------------------------------------------------------------
# Host and network
# ---------------------------------------------------------------------------------------


class HostCommon(Model):
    memory_mib: MemoryMib = Field(description="usable memory on the host (what the OS reports)")
    cpus: int = count(1, 1024)
    disk_gb: int = count(20, 65536, description="system disk size")
    min_free_disk_mib: int = count(0, 65536 * 1024, default=2048, description="the host check refuses a fuller disk")
    os_reserve_mib: int = count(
        0, 65536, default=OS_RESERVE_MIB, description="memory the OS and agents need besides the workloads"
    )
    ssh_user: Annotated[str, _pattern(r"^[a-z_][a-z0-9_-]{0,31}$")] = "root"
    ssh_port: Port = 22
    allow_undeclared: Bool = Field(
        default=False,
        description="the host check proceeds despite TCP listeners beyond loopback that no workload declares",
    )
    os_families: tuple[Annotated[str, _pattern(r"^[a-z0-9._-]{1,32}$")], ...] = Field(
        max_length=32,
        default=("ubuntu", "debian", "alinux", "rhel", "centos", "rocky", "almalinux", "opencloudos", "tencentos"),
        description="values of ID / ID_LIKE in /etc/os-release the provisioning supports",
    )


class CreatedHost(HostCommon):
    """A new instance the program creates and protects."""

    mode: Literal["create"]
    instance_type: Token
    image_id: Token
    zone: Annotated[str, _pattern(r"^[a-z]{2}-[a-z0-9-]{1,40}$")]
    data_disk_gb: int = count(20, 65536)
    data_disk_category: Annotated[str, _pattern(r"^[A-Za-z0-9_]{1,32}$")] | None = Field(
        default=None, description="default: cloud_essd / CLOUD_PREMIUM"
    )
    key_pair_name: Token = Field(description="cloud key pair holding the admins' public key")
    host_key: HostKey | None = Field(
        default=None,
        description="the instance's SSH host key; provisioning waits until it is pinned",
    )


class AdoptedHost(HostCommon):
    """An existing instance: imported (never recreated), its rules and provisioning managed."""

    mode: Literal["adopt"]
    instance_id: CloudId
    public_ip: HostAddress
    host_key: HostKey


Host = Annotated[CreatedHost | AdoptedHost, Field(discriminator="mode")]


class Network(Model):
    """Existing VPC and vSwitch/subnet ids, or a CIDR to create them in."""

    vpc_id: CloudId | None = None
    subnet_id: CloudId | None = Field(default=None, description="vSwitch id (Alibaba) or subnet id (Tencent)")
    vpc_cidr: Cidr = "10.10.0.0/16"
    subnet_cidr: Cidr = "10.10.1.0/24"

    @model_validator(mode="after")
    def _ids_together(self) -> Network:
        if (self.vpc_id is None) != (self.subnet_id is None):
            raise ValueError("vpcId and subnetId are given together (adopt a network) or not at all (create one)")
        if not ipaddress.IPv4Network(self.subnet_cidr).subnet_of(ipaddress.IPv4Network(self.vpc_cidr)):
            raise ValueError(f"subnetCidr {self.subnet_cidr} must lie inside vpcCidr {self.vpc_cidr}")
        return self


class Firewall(Model):
    admin_cidrs: tuple[Cidr, ...] = Field(min_length=1, max_length=64)
    peer_address: HostAddress
    peer_database_ports: tuple[Port, ...] | None = Field(
        default=None,
        max_length=64,
        description="the peer host's database ports this host may reach; default: the peer's default plan",
    )
    security_group_id: CloudId | None = Field(default=None, description="manage rules in this existing group")
    allow_unmanaged_rules: Bool = Field(
        default=False,
        description="proceed although the adopted Alibaba group holds hand-made rules that defeat the plan",
    )

    @field_validator("admin_cidrs")
    @classmethod
    def _admins_not_world(cls, cidrs: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in cidrs:
            if ipaddress.IPv4Network(cidr).prefixlen == 0:
                raise ValueError("SSH is never opened to 0.0.0.0/0: list the admins' own CIDRs")
        if reaches_world(cidrs):
            raise ValueError(
                f"together cover {span_text(cidrs)}: for SSH and admin database ports that is the world; "
                "list the admins' own CIDRs"
            )
        return cidrs

    @property
    def peer_cidr(self) -> str:
        return f"{self.peer_address}/32"


# ---------------------------------------------------------------------------------------
# Workloads
# ---------------------------------------------------------------------------------------


class DatabaseKind(StrEnum):
    MYSQL = "mysql"
    POSTGRES = "postgres"
    REDIS = "redis"
    NEO4J = "neo4j"
    ELASTICSEARCH = "elasticsearch"
    WEAVIATE = "weaviate"


# The ports each engine listens on inside its container (policies/facts.py), by kind.
ENGINE_PORTS: dict[DatabaseKind, tuple[int, ...]] = {kind: facts.ENGINE_PORTS[kind.value] for kind in DatabaseKind}


class Jvm(Model):
    heap_mib: MemoryMib
    page_cache_mib: int = count(0, MAX_MEMORY_MIB, default=0)
    transaction_mib: int = count(0, MAX_MEMORY_MIB, default=0)

    @property
    def floor_mib(self) -> int:
        return self.heap_mib + self.page_cache_mib + JVM_NATIVE_FLOOR_MIB


# Engines whose replication this platform sets up (facts.REPLICABLE_KINDS, as DatabaseKind).
REPLICABLE_KINDS = tuple(DatabaseKind(kind) for kind in facts.REPLICABLE_KINDS)
# Chosen here: the PostgreSQL database a replica follows when replicaOf.database is not given
# (the database the postgres image creates for its user future_user, the seeds' user name).
DEFAULT_REPLICATED_POSTGRES_DATABASE = "future_user"


class BackupNone(Model):
    """A database that is deliberately not backed up, and why (the policy pack reads the reason)."""

    none: Text = Field(min_length=1, description="why this database needs no backup")


class ReplicaOf(Model):
    """An existing engine on the Tencent host that follows an Alibaba database."""

    source: Name = Field(description="the Alibaba database's name, e.g. production-mysql")
    kind: Literal["mysql", "postgres", "redis"]
    host: HostAddress | None = Field(default=None, description="the source host; must be firewall.peerAddress")
    port: Port | None = Field(
        default=None, description="the source's port on its host; default the engine's own (3306, 5432, 6379)"
    )
    database: Name | None = Field(default=None, description="postgres: the database replicated (future_user)")

    @field_validator("kind", mode="before")
    @classmethod
    def _replicable(cls, kind: Any) -> Any:
        if kind in {k.value for k in DatabaseKind} - {k.value for k in REPLICABLE_KINDS}:
            raise ValueError(
                f"{kind} cannot replicate across clouds (only mysql, postgres and redis do): the off-host backup, "
                "restored on the other side, is the cross-cloud copy for it; remove replicaOf"
            )
        return kind

    @model_validator(mode="after")
    def _database_is_postgres(self) -> ReplicaOf:
        if self.database is not None and self.kind != "postgres":
            raise ValueError(f"replicaOf.database applies to postgres (one database streams); not to {self.kind}")
        return self

    @property
    def source_port(self) -> int:
        """Declared here, not read from the Alibaba stack, so the replica's command is known at preview
        (the program checks it against the stack's outputs when it runs)."""
        return self.port or ENGINE_PORTS[DatabaseKind(self.kind)][0]

    @property
    def replicated_database(self) -> str | None:
        if self.kind != "postgres":
            return None
        return self.database or DEFAULT_REPLICATED_POSTGRES_DATABASE


class Database(Model):
    kind: DatabaseKind
    name: Name = Field(description="container name")
    image: Annotated[str, _pattern(r"^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+:[A-Za-z0-9._-]+$", max_length=255)]
    ports: tuple[PortSpec, ...] = Field(min_length=1, max_length=8)
    memory_mib: MemoryMib
    jvm: Jvm | None = None
    health_timeout_s: int = count(1, 1800, default=300, description="bounded wait for the engine's health")
    backup: BackupNone | None = Field(
        default=None, description="None: backed up on platform:backups.schedule; {none: reason} to opt out"
    )

    @model_validator(mode="before")
    @classmethod
    def _purge_is_retirement(cls, data: Any) -> Any:
        if isinstance(data, dict) and "purge" in data:
            raise ValueError(
                "purge is decided when a database leaves the host: list it under platform:retired.databases "
                "as {name, purge: true} instead"
            )
        return data

    @model_validator(mode="after")
    def _one_port_per_engine_port(self) -> Database:
        inner = ENGINE_PORTS[self.kind]
        if len(self.ports) != len(inner):
            listed = ", ".join(str(p) for p in inner)
            raise ValueError(
                f"{self.kind} listens on {len(inner)} port(s) inside its container ({listed}): list exactly "
                f"{len(inner)} host port(s) in ports, in that order"
            )
        return self

    @model_validator(mode="after")
    def _memory_covers_process(self) -> Database:
        jvm_kinds = (DatabaseKind.NEO4J, DatabaseKind.ELASTICSEARCH)
        if self.kind in jvm_kinds and self.jvm is None:
            raise ValueError(f"{self.kind} runs on a JVM: give jvm.heapMib (and pageCacheMib for neo4j)")
        if self.kind not in jvm_kinds and self.jvm is not None:
            raise ValueError(f"jvm settings apply to neo4j and elasticsearch, not {self.kind}")
        if self.jvm is not None:
            if self.jvm.transaction_mib > self.jvm.heap_mib:
                raise ValueError("jvm.transactionMib must not exceed jvm.heapMib (it is carved out of the heap)")
            if self.memory_mib < self.jvm.floor_mib:
                raise ValueError(
                    f"memoryMib {self.memory_mib} cannot hold heap {self.jvm.heap_mib} + page cache "
                    f"{self.jvm.page_cache_mib} + {JVM_NATIVE_FLOOR_MIB} MiB native memory: give at least "
                    f"{self.jvm.floor_mib}, or the kernel OOM-kills the container"
                )
        return self

    @property
    def role(self) -> str:
        return f"database:{self.kind}"


class Release(Model):
    """Where a service's release comes from: exactly one of ``artifact`` (on the host or https) and
    ``upload`` (a file or directory on the machine running ``pulumi up``, sent over the pinned SSH
    connection). The host checks the sha256 before anything is swapped."""

    version: Annotated[str, _pattern(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")]
    artifact: Artifact | None = Field(
        default=None, description="release tarball: an https URL or an absolute path on the host"
    )
    upload: LocalPath | None = Field(
        default=None,
        description="a tarball or a directory on the machine running `pulumi up` (relative to the project)",
    )
    sha256: Annotated[str, _pattern(r"^[0-9a-f]{64}$")] | None = None

    @model_validator(mode="after")
    def _one_source_pinned(self) -> Release:
        if (self.artifact is None) == (self.upload is None):
            raise ValueError(
                "give exactly one of artifact (an https URL or a path on the host) and upload (a file or "
                "directory on the machine running pulumi up)"
            )
        if self.artifact is not None and self.artifact.startswith("https://") and self.sha256 is None:
            raise ValueError(
                "an https artifact needs its sha256 (64 hex digits): a download is installed only when it matches"
            )
        return self


class Runtime(StrEnum):
    """How a service's release runs on the host."""

    GO = "go"  # a binary: checked to be an executable for the host's architecture before the switch
    PYTHON = "python"  # a virtualenv per release, built on the host from the release's lock file
    NATIVE = "native"  # whatever the release carries, run as it is


class PythonRuntime(Model):
    # The seeds: "Setup Python 3.11环境". uv finds that interpreter on the host or installs its own.
    version: Annotated[str, _pattern(r"^3\.[0-9]{1,2}$")] = "3.11"
    lock_file: RelativePath = Field(
        default="requirements.lock",
        description="in the release: pinned requirements (`uv pip compile --generate-hashes`), installed exactly",
    )


# An environment variable name in a unit's Environment= (upper case, as services read them).
EnvName = Annotated[str, _pattern(r"^[A-Z][A-Z0-9_]{0,63}$")]
# A non-secret environment value: one line of plain characters (no quotes, %, $ or backslash, which
# systemd would interpret), at most 300.
EnvValue = Annotated[str, _pattern(r"^[A-Za-z0-9 ._:/,+=@?&#~-]{0,300}$")]


class Service(Model):
    name: Name
    description: Text = ""
    port: Port
    # Chosen here: a service listens on 127.0.0.1 and is reached through the TLS proxy (platform:proxy).
    expose: Exposure = Exposure.NONE
    family: Name = Field(description="port-plan family its port must fall in")
    memory_mib: MemoryMib
    release: Release
    runtime: Runtime = Runtime.NATIVE
    python: PythonRuntime | None = Field(default=None, description="runtime python: its version and lock file")
    start_command: Annotated[str, _pattern(r"^[A-Za-z0-9_./][A-Za-z0-9_./ =:,-]*$", max_length=200)] = Field(
        description="run from the release directory; plain words only (it lands in a unit's ExecStart)",
    )
    health_path: Annotated[str, _pattern(r"^/[A-Za-z0-9._~/-]*$", max_length=200)] = "/health"
    health_timeout_s: int = count(1, 900, default=60)
    environment: dict[EnvName, EnvValue] = Field(
        default_factory=dict, max_length=64, description="non-secret settings, in the unit's Environment="
    )
    secrets: tuple[EnvName, ...] = Field(
        default=(), max_length=32, description="credentials from platform:serviceSecrets (LoadCredential=)"
    )
    databases: tuple[Name, ...] = Field(
        default=(), max_length=16, description="Alibaba databases it connects to (read from platform:databaseStack)"
    )
    route: Annotated[str, _pattern(r"^/[a-z0-9][a-z0-9._-]{0,62}/$")] | None = Field(
        default=None, description="its path behind the proxy; default /<name>/"
    )

    @model_validator(mode="after")
    def _settings_fit(self) -> Service:
        if self.python is not None and self.runtime != Runtime.PYTHON:
            raise ValueError(f"python settings apply to runtime python only; {self.name} has runtime {self.runtime}")
        for key in self.environment:
            if looks_secret_key(key):
                raise ValueError(
                    f"environment.{key} looks like a secret and would sit in plain text in the unit: list it under "
                    f"secrets and set it with `pulumi config set --secret --path {NAMESPACE}:serviceSecrets.{key} ...`"
                )
        if repeated := sorted(n for n, count in Counter(self.secrets).items() if count > 1):
            raise ValueError(f"secrets: listed twice: {', '.join(repeated)}")
        if repeated := sorted(n for n, count in Counter(self.databases).items() if count > 1):
            raise ValueError(f"databases: listed twice: {', '.join(repeated)}")
        reserved = {*self.secrets, *RESERVED_SERVICE_VARIABLES}
        for db in self.databases:
            reserved |= {f"{database_variable(db)}_{suffix}" for suffix in DATABASE_VARIABLE_SUFFIXES}
        if clash := sorted(reserved & set(self.environment)):
            raise ValueError(
                f"environment: {', '.join(clash)} is set by the platform (the port, a credential or a database "
                "setting); remove it from environment"
            )
        return self

    @property
    def python_runtime(self) -> PythonRuntime:
        return self.python or PythonRuntime()

    @property
    def proxy_route(self) -> str:
        return self.route or f"/{self.name}/"

    @property
    def ports(self) -> tuple[PortSpec, ...]:
        return (PortSpec(port=self.port, expose=self.expose, purpose=self.description or self.name),)

    @property
    def role(self) -> str:
        return "service"


# What the platform itself puts in a service's environment (components/services.py: systemd_unit).
RESERVED_SERVICE_VARIABLES = ("PORT", "HOST", "HF_HOME", "XDG_CACHE_HOME", "HOME", "PATH", "VIRTUAL_ENV")
DATABASE_VARIABLE_SUFFIXES = ("KIND", "HOST", "PORT", "USER", "NAME", "PASSWORD_FILE")


def database_variable(database: str) -> str:
    """The prefix of a database's settings in a service's environment (DB_PRODUCTION_MYSQL_HOST, ...)."""
    return "DB_" + database.upper().replace("-", "_")


class ExistingWorkload(Model):
    """Something already on the host that the budget and the port checks must count."""

    name: Name
    ports: tuple[PortSpec, ...] = ()
    memory_mib: MemoryMib
    database: Bool = False
    replica_of: ReplicaOf | None = Field(
        default=None, description="make this engine a replica of an Alibaba database (over TLS)"
    )

    @model_validator(mode="after")
    def _replica_is_one_engine(self) -> ExistingWorkload:
        if self.replica_of is not None:
            if len(self.ports) != 1:
                raise ValueError(
                    f"a replica (replicaOf) lists exactly one port, the local {self.replica_of.kind}'s; "
                    f"{self.name} lists {len(self.ports)}"
                )
            if not self.database:
                raise ValueError(f"a replica (replicaOf) is a database: set database: true on {self.name}")
        return self

    @property
    def role(self) -> str:
        return "existing:database" if self.database else "existing"


class RetiredDatabase(Model):
    """A database taken off the host on purpose: stopped, its unit and secret removed."""

    name: Name
    purge: Bool = Field(default=False, description="also delete its data directory (otherwise it is kept)")


class RetiredService(Model):
    """A service taken off the host on purpose: stopped, disabled, its unit, releases, credentials and
    uploads removed."""

    name: Name


class Retired(Model):
    """Removal by intent: a workload leaves its host only when it is listed here.

    A workload that merely disappears from ``databases``/``services`` is left running on the host
    (its command is retained on delete), and ``preflight --from`` reports that as a hazard.
    """

    databases: tuple[RetiredDatabase, ...] = ()
    services: tuple[RetiredService, ...] = ()


class Omit(Model):
    """Default workloads this host does not have: they were never deployed here, so they leave the
    plan without a retire step. Besides ``platform:retired``, the only way a default leaves the plan."""

    databases: tuple[Name, ...] = Field(default=(), max_length=64)
    services: tuple[Name, ...] = Field(default=(), max_length=64)
    existing: tuple[Name, ...] = Field(default=(), max_length=64)


class Paths(Model):
    """Where provisioning installs things on the host (tests point these at a temp dir).

    ``root``, ``data``, ``secrets``, ``state`` and ``backups`` are the platform's own (scripts create
    and remove inside them); ``units``, ``quadlet`` and ``sysctl`` are the system's drop-in
    directories it writes files into. No two may nest: a secrets directory inside a database's
    bind mount would hand every password to that container.
    """

    root: HostPath = "/opt/platform"
    data: HostPath = "/var/lib/platform"
    units: HostPath = "/etc/systemd/system"
    quadlet: HostPath = "/etc/containers/systemd"
    secrets: HostPath = "/etc/platform/secrets"
    state: HostPath = Field(default="/var/lib/platform-state", description="markers of what the platform owns")
    sysctl: HostPath = "/etc/sysctl.d"
    backups: HostPath = Field(
        default="/var/lib/platform-backups",
        description="local backups (chosen here: beside the data tree, never inside it, so no container sees them)",
    )
    uploads: HostPath = Field(
        default="/var/lib/platform-uploads",
        description="where releases are uploaded to (owned by the SSH user, who writes them over SFTP)",
    )
    nginx: HostPath = Field(default="/etc/nginx/conf.d", description="nginx's drop-in directory (the proxy)")
    credentials: HostPath = Field(
        default="/run/credentials", description="where systemd hands units their credentials (LoadCredential=)"
    )
    monitoring: HostPath = Field(
        default="/etc/platform-monitoring", description="the monitoring programs' configuration"
    )
    keep_releases: int = count(2, 20, default=3)

    @model_validator(mode="after")
    def _apart(self) -> Paths:
        named = {
            to_camel(key): getattr(self, key)
            for key in (
                "root",
                "data",
                "secrets",
                "state",
                "units",
                "quadlet",
                "sysctl",
                "backups",
                "uploads",
                "nginx",
                "credentials",
                "monitoring",
            )
        }
        for key, path in named.items():
            for other, other_path in named.items():
                if key != other and (path == other_path or is_below(path, other_path)):
                    where = "is the same directory as" if path == other_path else "lies inside"
                    raise ValueError(
                        f"{NAMESPACE}:paths.{key} {path} {where} paths.{other} {other_path}: the platform's "
                        "directories must not nest (a container or a removal of one would reach the other)"
                    )
        return self


class Proxy(Model):
    """Nginx on the host as the TLS reverse proxy in front of the services (each under its route).

    The certificate is a file on the host (an ACME client such as certbot keeps it renewed there).
    """

    server_name: Annotated[
        str, _pattern(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$", max_length=253)
    ]
    certificate: HostPath = Field(description="PEM certificate chain on the host, e.g. certbot's fullchain.pem")
    certificate_key: HostPath = Field(description="its private key on the host (read by nginx only)")
    http_port: Port = 80
    https_port: Port = 443
    listen: Annotated[str, _pattern(r"^[0-9]{1,3}(\.[0-9]{1,3}){3}$")] | None = Field(
        default=None, description="an IPv4 address of the host to listen on; default all"
    )


# ---------------------------------------------------------------------------------------
# Backups and replication
# ---------------------------------------------------------------------------------------

# An OSS bucket name: 3-63 lower-case letters, digits and '-', starting and ending with a letter or digit.
OSS_BUCKET_PATTERN = r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$"


class OffHost(Model):
    """The OSS bucket the Alibaba host copies its backups to (through its ECS RAM role)."""

    bucket: Annotated[str, _pattern(OSS_BUCKET_PATTERN)] | None = Field(
        default=None, description="OSS bucket name; default: derived from the project and stack (components/offsite.py)"
    )
    # Chosen here: one folder per platform, so the bucket may hold other prefixes, and the RAM
    # policy grants nothing outside it.
    prefix: Annotated[str, _pattern(r"^([a-z0-9][a-z0-9._-]{0,62}/){1,8}$", max_length=200)] = "platform/"


class Backups(Model):
    """When and how long the databases are backed up (the seeds: 每日自动备份, daily backups).

    Every default below but the daily schedule is chosen here: 03:00 (the quiet hour of a
    Chinese-market application) with up to 30 minutes' random delay, so the six dumps do not
    start together; a week of dailies and a month of weeklies; the restore drill on Sunday
    05:00, after that night's backups, with a 16 MiB scratch limit: the default Alibaba plan
    leaves 83 MiB beside its six containers, the job's own programs take 64 of them
    (BACKUP_RUNNER_MEMORY_MIB), and 16 restores a small Redis dataset. An engine whose
    scratch needs more (components/backups.py: DRILL_SCRATCH_MIN_MIB) has its archive verified, not restored, until
    drillMemoryMib is raised on a host with room.
    """

    schedule: Calendar = "*-*-* 03:00:00"
    randomized_delay_s: int = count(0, 86400, default=1800, description="systemd RandomizedDelaySec=")
    keep_daily: int = count(0, 3660, default=7)
    keep_weekly: int = count(0, 520, default=4)
    drill_schedule: Calendar = "Sun *-*-* 05:00:00"
    drill_memory_mib: MemoryMib = 16
    off_host: OffHost | None = Field(default=OffHost(), description="null: local backups only (not recommended)")

    @field_validator("keep_daily")
    @classmethod
    def _keeps_one(cls, keep: int) -> int:
        if keep < 1:
            raise ValueError(
                "a retention of 0 keeps no daily backup (each would be pruned as soon as it is written); "
                "keep at least 1, e.g. 7"
            )
        return keep


class Alerting(Model):
    """Thresholds of the alert rules (components/monitoring.py). Every default is chosen here."""

    # Below this share of usable memory available, the host is about to swap or OOM-kill
    # (the pack's memory-headroom warns at the same 10 % for the plan).
    memory_available_percent: int = count(1, 99, default=10)
    disk_used_percent: int = count(1, 99, default=85)  # the 85 %: room to react before a full disk
    # Restarts of one unit (container or service) within restartWindowMinutes that mean a crash loop.
    restarts: int = count(1, 100, default=3)
    restart_window_minutes: int = count(1, 1440, default=15)
    # Replication lag that a cross-cloud link should never reach in normal operation.
    replication_lag_s: int = count(1, 86400, default=300)
    # A daily backup is overdue after a day plus the timer's random delay and a run's length.
    backup_max_age_hours: int = count(1, 24 * 60, default=26)
    # How long a health probe may fail before anyone is woken: two scrape intervals and a bit.
    health_failing_minutes: int = count(1, 60, default=2)


# The monitoring programs' memory limits. Chosen here: the resident memory Debian's builds showed
# on the loopback test host (node exporter 19 MiB, blackbox 14, the PostgreSQL/MySQL/Redis
# exporters 10-12, Alertmanager 32, Prometheus 45 with one target; `make bench` prints them) with
# room for their Go heaps to breathe, and for Prometheus the head block of a few thousand series at
# a 30 s interval. The DingTalk relay (components/scripts/alert_relay.py, Python's standard
# library) showed 22.4 MiB resident after a signed delivery. Grafana's is not measured here: it is
# in no Debian archive, so it cannot run on the test machine; 160 MiB leaves room over a Go web
# server with its SQLite database and three dashboards. Measure on the host.
MONITORING_MEMORY_MIB: dict[str, int] = {
    "node-exporter": 32,
    "mysqld-exporter": 24,
    "postgres-exporter": 24,
    "redis-exporter": 24,
    "prometheus": 128,
    "alertmanager": 48,
    "blackbox-exporter": 24,
    "alert-relay": 32,
    "grafana": 160,
}
# Each monitoring program's default port (policies/facts.py) and its memory limit.
MONITORING_PROGRAMS: dict[str, tuple[int, int]] = {
    name: (facts.MONITORING_PORTS[name], mib) for name, mib in MONITORING_MEMORY_MIB.items()
}
# The database kinds with an exporter (Neo4j Community and Elasticsearch have no Prometheus
# endpoint without a plugin; Weaviate's is off by default): their metrics stay out for now.
EXPORTER_OF_KIND = facts.EXPORTER_OF_KIND


class MonitoringWorkload(Model):
    """A program of the monitoring, derived from the plan (Plan.monitoring_workloads)."""

    name: Name
    ports: tuple[PortSpec, ...]
    memory_mib: MemoryMib

    @property
    def role(self) -> str:
        return "monitoring"


class Receiver(StrEnum):
    """Where Alertmanager sends alerts: a Slack incoming webhook (Alertmanager's own format for
    it), or a DingTalk robot through the relay on the Prometheus host (DingTalk takes only its own)."""

    SLACK = "slack"
    DINGTALK = "dingtalk"


class Monitoring(Model):
    # On by default: without it nothing watches either host. Off stops and removes the programs.
    enabled: Bool = Field(default=True, description="the exporters, and on the Prometheus host Prometheus itself")
    prometheus: Bool | None = Field(
        default=None,
        description="this host runs Prometheus and Alertmanager; default: the Tencent host (the capacity report: "
        "250 MiB left there, 3 on the Alibaba host)",
    )
    alerting: Alerting = Alerting()
    grafana: Bool = Field(
        default=False,
        description="Grafana on the Prometheus host, its datasource and dashboards provisioned from "
        "monitoring/grafana (loopback only: reach it through an SSH tunnel)",
    )
    receiver: Receiver = Field(
        default=Receiver.SLACK,
        description="what platform:alertWebhook is: a Slack incoming webhook, or a DingTalk robot "
        "(platform:alertSigningSecret when it signs)",
    )
    # Chosen here: two samples a minute keeps Prometheus small on a 4 GiB host.
    scrape_interval_s: int = count(1, 300, default=30)
    ports: dict[Name, Port] = Field(
        default_factory=dict, description="a monitoring program's port other than its default (MONITORING_PROGRAMS)"
    )
    probes: tuple[Name, ...] | None = Field(
        default=None, max_length=64, description="services whose health path is probed; default every service"
    )


StackName = Annotated[str, _pattern(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")]
"""A stack's full name for a StackReference, e.g. my-org/platform/alibaba."""


class Replication(Model):
    """Which Alibaba databases accept the peer as a replica, and where the Tencent side reads them."""

    sources: tuple[Name, ...] | None = Field(
        default=None, max_length=16, description="alibaba: default every mysql, postgres and redis database"
    )
    source_stack: StackName | None = Field(
        default=None, description="tencent: the same as platform:databaseStack (the older spelling)"
    )


# ---------------------------------------------------------------------------------------
# Defaults: the seeds' workloads, ports and service sizes; container limits, image versions,
# the existing split and Nginx's ports are chosen here (docs/PROVENANCE.md)
# ---------------------------------------------------------------------------------------


def _ports(*specs: tuple[int, str], expose: Exposure) -> tuple[dict[str, Any], ...]:
    return tuple({"port": port, "purpose": purpose, "expose": expose} for port, purpose in specs)


DEFAULT_DATABASES: tuple[dict[str, Any], ...] = (
    {
        "kind": "mysql",
        "name": "production-mysql",
        "image": "docker.io/library/mysql:8.0",
        "ports": _ports((3306, "MySQL"), expose=Exposure.PEER),
        "memoryMib": 192,
    },
    {
        "kind": "postgres",
        "name": "production-postgres",
        "image": "docker.io/library/postgres:16",
        "ports": _ports((5432, "PostgreSQL"), expose=Exposure.PEER),
        "memoryMib": 128,
    },
    {
        "kind": "redis",
        "name": "production-redis",
        "image": "docker.io/library/redis:7",
        "ports": _ports((6379, "Redis"), expose=Exposure.PEER),
        "memoryMib": 64,
    },
    {
        "kind": "neo4j",
        "name": "production-neo4j",
        "image": "docker.io/library/neo4j:5-community",
        "ports": _ports((7474, "Neo4j HTTP"), (7687, "Neo4j Bolt"), expose=Exposure.PEER),
        "memoryMib": 544,
        "jvm": {"heapMib": 256, "pageCacheMib": 128, "transactionMib": 64},
    },
    {
        "kind": "elasticsearch",
        "name": "production-elasticsearch",
        "image": "docker.elastic.co/elasticsearch/elasticsearch:8.15.3",
        "ports": _ports((9200, "Elasticsearch HTTP"), (9300, "Elasticsearch transport"), expose=Exposure.PEER),
        "memoryMib": 312,
        "jvm": {"heapMib": 128},
    },
    {
        "kind": "weaviate",
        "name": "production-weaviate",
        "image": "cr.weaviate.io/semitechnologies/weaviate:1.26.6",
        "ports": _ports((8080, "Weaviate HTTP"), expose=Exposure.PEER),
        "memoryMib": 160,
    },
)


def _service(
    name: str, description: str, port: int, family: str, memory_mib: int, runtime: str, start: str
) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "port": port,
        "family": family,
        "memoryMib": memory_mib,
        "runtime": runtime,
        # No release: where a service's build lives (a URL and its sha256, or a file built on the
        # deploying machine) is the stack's to say; the seeds name no release store.
        "startCommand": start,
    }


DEFAULT_SERVICES: tuple[dict[str, Any], ...] = (
    # The seeds: Zervigo is a Go service ("Setup Go 1.23环境", "Build Zervigo服务").
    _service("zervigo", "Go auth and permissions", 8207, "zervigo-future", 200, "go", "./zervigo"),
    # The seeds also say "reuse 8207" for the shared service: that clashes with zervigo. Its
    # language is not stated; chosen here: Go, as batch 1's CI sets up Go only.
    _service("shared-service", "auth and data sync", 8120, "shared", 250, "go", "./shared-service"),
    # The seeds: the AI services and LoomaCRM are Python ("Setup Python 3.11环境", "Install
    # requirements.txt"); the start command `python -m app` is chosen here (the seeds name none).
    _service("ai-service-1", "recommendation and analytics", 8100, "ai", 600, "python", ".venv/bin/python -m app"),
    _service("ai-service-2", "NLP and Q&A", 8110, "ai", 600, "python", ".venv/bin/python -m app"),
    _service("looma-crm", "LoomaCRM", 8700, "looma-crm", 250, "python", ".venv/bin/python -m app"),
)

DEFAULT_BATCHES: tuple[tuple[str, ...], ...] = (
    ("zervigo", "shared-service"),
    ("ai-service-1", "ai-service-2"),
    ("looma-crm",),
)

# The Tencent host's existing workloads: the seeds count them as 1.2 GB together (000: 现有1.2GB;
# 1.4 GB is the whole host's use). Chosen here: the per-workload split and Nginx's 80/443.
DEFAULT_EXISTING: tuple[dict[str, Any], ...] = (
    {
        "name": "mysql",
        "ports": _ports((3306, "MySQL replica"), expose=Exposure.PEER),
        "memoryMib": 384,
        "database": True,
    },
    {
        "name": "postgres",
        "ports": _ports((5432, "PostgreSQL replica"), expose=Exposure.PEER),
        "memoryMib": 256,
        "database": True,
    },
    {
        "name": "redis",
        "ports": _ports((6379, "Redis replica"), expose=Exposure.PEER),
        "memoryMib": 128,
        "database": True,
    },
    {"name": "nginx", "ports": _ports((80, "HTTP"), (443, "HTTPS"), expose=Exposure.PUBLIC), "memoryMib": 64},
    {"name": "nodejs", "memoryMib": 192},
    {"name": "statistics", "memoryMib": 128},
    {"name": "template", "memoryMib": 128},
)


# ---------------------------------------------------------------------------------------
# Defaults, patched by name
# ---------------------------------------------------------------------------------------

# The default workloads of each cloud's host. A stack's entries patch them by name; a default
# leaves the plan only through platform:retired (taken off the host) or platform:omit (never there).
CLOUD_DEFAULTS: dict[Cloud, dict[str, tuple[dict[str, Any], ...]]] = {
    Cloud.ALIBABA: {"databases": DEFAULT_DATABASES},
    Cloud.TENCENT: {"services": DEFAULT_SERVICES, "existing": DEFAULT_EXISTING},
}
PATCHED_SECTIONS = ("databases", "services", "existing")


def with_defaults(data: Any) -> Any:
    """The stack's config with the cloud's default workloads filled in.

    Each entry of ``databases``, ``services`` and ``existing`` whose ``name`` is a default's patches
    that default: the fields it lists replace the default's, the others stay (``{name:
    production-mysql, memoryMib: 256}`` raises one limit). An entry with a new name adds a workload.
    A default leaves only when ``platform:retired`` or ``platform:omit`` names it, so a one-entry
    list never drops the others. Without ``batches``, the default batches keep their order and a
    workload of the stack's own is deployed last, in one more batch. Applying it twice changes
    nothing. Malformed input is passed on for the model to name.
    """
    if not isinstance(data, dict) or data.get("cloud") not in {c.value for c in Cloud}:
        return data
    defaults = CLOUD_DEFAULTS[Cloud(data["cloud"])]
    filled = dict(data)
    for section in PATCHED_SECTIONS:
        entries = data.get(section, [])
        if not isinstance(entries, list | tuple):
            continue
        leaving = _leaving(data, section)
        _check_leaving(section, leaving, defaults.get(section, ()), entries)
        filled[section] = _patched(defaults.get(section, ()), list(entries), leaving)
    if "batches" not in data and isinstance(filled.get("services"), list) and filled["services"]:
        filled["batches"] = _default_batches([s.get("name") for s in filled["services"] if isinstance(s, dict)])
    return filled


def _leaving(data: dict[str, Any], section: str) -> dict[str, str]:
    """Names of default workloads the stack takes out of ``section``, and the key that says so."""
    found: dict[str, str] = {}
    for key in ("omit", "retired"):
        block = data.get(key)
        listed = block.get(section, []) if isinstance(block, dict) else []
        for index, entry in enumerate(listed if isinstance(listed, list | tuple) else []):
            name = entry.get("name") if isinstance(entry, dict) else entry
            if isinstance(name, str):
                found.setdefault(name, f"{NAMESPACE}:{key}.{section}[{index}]")
    return found


def _check_leaving(
    section: str, leaving: Mapping[str, str], defaults: tuple[dict[str, Any], ...], entries: list[Any] | tuple[Any, ...]
) -> None:
    default_names = [d["name"] for d in defaults]
    listed = {e.get("name"): index for index, e in enumerate(entries) if isinstance(e, dict)}
    for name, where in leaving.items():
        if where.startswith(f"{NAMESPACE}:omit.") and name not in default_names:
            valid = ", ".join(default_names) or "none"
            what = {"databases": "database", "services": "service"}.get(section, "existing workload")
            raise ValueError(
                f"{where}: {shown(name)} is not a default {what} of this cloud's plan (defaults: {valid}); omit "
                "names defaults only: a workload of your own leaves the plan when its entry is deleted"
            )
        if name in listed:
            raise ValueError(
                f"{where}: {name!r} is also listed in {NAMESPACE}:{section}[{listed[name]}]; a workload is either "
                "in the plan or out of it: remove one of the two entries"
            )


def _patched(defaults: tuple[dict[str, Any], ...], entries: list[Any], leaving: Mapping[str, str]) -> list[Any]:
    by_name = {e.get("name"): e for e in entries if isinstance(e, dict)}
    merged: list[Any] = []
    for default in defaults:
        if default["name"] in leaving:
            continue
        patch = by_name.get(default["name"])
        merged.append(default if patch is None else _patch(default, patch))
    names = {d["name"] for d in defaults}
    merged += [e for e in entries if not (isinstance(e, dict) and e.get("name") in names)]
    return merged


def _patch(default: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """The default's fields, each replaced by the patch's field of the same name (in either spelling)."""
    given = {to_camel(key) if isinstance(key, str) else key: value for key, value in patch.items()}
    return {**{k: v for k, v in default.items() if k not in given}, **patch}


def _default_batches(services: list[Any]) -> list[list[Any]]:
    present = set(services)
    batches = [[name for name in batch if name in present] for batch in DEFAULT_BATCHES]
    batched = {name for batch in DEFAULT_BATCHES for name in batch}
    added = [name for name in services if name not in batched]
    return [batch for batch in [*batches, added] if batch]


# ---------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------


class Plan(Model):
    cloud: Cloud
    host: Host
    network: Network = Network()
    firewall: Firewall
    databases: tuple[Database, ...] = ()
    services: tuple[Service, ...] = ()
    batches: tuple[tuple[Name, ...], ...] = ()
    existing: tuple[ExistingWorkload, ...] = ()
    retired: Retired = Retired()
    omit: Omit = Omit()
    paths: Paths = Paths()
    backups: Backups = Backups()
    replication: Replication = Replication()
    proxy: Proxy | None = None
    monitoring: Monitoring = Monitoring()
    database_stack: StackName | None = Field(
        default=None,
        description="tencent: the alibaba stack whose outputs the services and replicas read (a StackReference)",
    )

    @model_validator(mode="before")
    @classmethod
    def _cloud_defaults(cls, data: Any) -> Any:
        """The default workloads (docs/PROVENANCE.md), patched by the stack's entries (``with_defaults``)."""
        return with_defaults(data)

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        names = [w.name for w in self.workloads]
        if duplicates := sorted(n for n, count in Counter(names).items() if count > 1):
            raise ValueError(f"{NAMESPACE}: workload names must be unique on a host; repeated: {', '.join(duplicates)}")
        owners: dict[tuple[int, str], str] = {}
        for where, workload in self._located_workloads():
            for spec in workload.ports:
                key = (spec.port, spec.protocol)
                if key in owners:
                    raise ValueError(
                        f"{NAMESPACE}:{where}: port {spec.port}/{spec.protocol} of {workload.name} is "
                        f"already declared by {owners[key]}: each port on a host belongs to one workload"
                    )
                owners[key] = workload.name
        if self.host.ssh_port in {p for p, proto in owners if proto == "tcp"}:
            raise ValueError(f"{NAMESPACE}:host.sshPort {self.host.ssh_port} is also a workload port; pick another")
        if isinstance(self.host, AdoptedHost) and self.firewall.security_group_id is None:
            raise ValueError(
                f"{NAMESPACE}:firewall.securityGroupId: required when host.mode is 'adopt' (the rules are "
                "managed in the adopted host's own group, e.g. sg-...)"
            )
        self._check_batches()
        self._check_retired()
        self._check_cloud_ids()
        self._check_replication()
        self._check_services()
        return self

    @property
    def source_stack(self) -> str | None:
        """The Alibaba stack this one reads (databaseStack, or the older replication.sourceStack)."""
        return self.database_stack or self.replication.source_stack

    @property
    def source_stack_key(self) -> str:
        """The config key that names it, as the stack file spells it (for error messages)."""
        return (
            "replication.sourceStack"
            if self.database_stack is None and self.replication.source_stack
            else "databaseStack"
        )

    def _check_services(self) -> None:
        if (
            self.database_stack is not None
            and self.replication.source_stack is not None
            and self.database_stack != self.replication.source_stack
        ):
            raise ValueError(
                f"{NAMESPACE}:replication.sourceStack {self.replication.source_stack!r} differs from "
                f"{NAMESPACE}:databaseStack {self.database_stack!r}: both name the Alibaba stack; keep databaseStack"
            )
        for service in self.services:
            if service.databases and self.source_stack is None:
                raise ValueError(
                    f"{NAMESPACE}:databaseStack: required when services[{service.name}] lists databases: "
                    "the alibaba stack whose outputs hold their endpoints, e.g. my-org/platform/alibaba"
                )
        for name in self.monitoring.ports:
            if name not in MONITORING_PROGRAMS:
                raise ValueError(
                    f"{NAMESPACE}:monitoring.ports.{name}: not a monitoring program; programs: "
                    f"{', '.join(MONITORING_PROGRAMS)}"
                )
        services = {s.name for s in self.services}
        for index, name in enumerate(self.monitoring.probes or ()):
            if name not in services:
                valid = ", ".join(sorted(services)) or "none"
                raise ValueError(
                    f"{NAMESPACE}:monitoring.probes[{index}]: {shown(name)} is not a service of this plan, so there is "
                    f"nothing to probe; services: {valid}"
                )
        if self.proxy is None:
            return
        routes = Counter(s.proxy_route for s in self.services)
        if repeated := sorted(r for r, count in routes.items() if count > 1):
            raise ValueError(
                f"{NAMESPACE}:services: two services share the proxy route {repeated[0]}; give each a route"
            )
        public = {(p.port, w.name) for w in self.existing for p in w.ports if p.expose == Exposure.PUBLIC}
        for field, port in (("httpPort", self.proxy.http_port), ("httpsPort", self.proxy.https_port)):
            if not any(p == port for p, _ in public):
                raise ValueError(
                    f"{NAMESPACE}:proxy.{field} {port}: no existing workload declares it public; the proxy is the "
                    "host's nginx, listed under platform:existing with its ports 80 and 443 (expose: public)"
                )

    def _check_replication(self) -> None:
        databases = {db.name: db for db in self.databases}
        for index, name in enumerate(self.replication.sources or ()):
            where = f"{NAMESPACE}:replication.sources[{index}]"
            if name not in databases:
                valid = ", ".join(db.name for db in self.databases if db.kind in REPLICABLE_KINDS) or "none"
                raise ValueError(f"{where}: {shown(name)} is not a database of this plan; replicable ones: {valid}")
            if databases[name].kind not in REPLICABLE_KINDS:
                raise ValueError(
                    f"{where}: {name} is {databases[name].kind}, which cannot replicate across clouds (only mysql, "
                    "postgres and redis do): its off-host backup is the cross-cloud copy; remove it from the list"
                )
        for workload in self.existing:
            replica = workload.replica_of
            if replica is None:
                continue
            where = f"{NAMESPACE}:existing[{workload.name}].replicaOf"
            if self.cloud == Cloud.ALIBABA:
                raise ValueError(f"{where}: the Alibaba host is the primary; replicas live on the Tencent host")
            if replica.host is not None and replica.host != self.firewall.peer_address:
                raise ValueError(
                    f"{where}.host: {shown(replica.host)} is not the peer; a replica follows the peer host only "
                    f"(firewall.peerAddress {self.firewall.peer_address}): set it to that or leave it out"
                )
            if self.source_stack is None:
                raise ValueError(
                    f"{NAMESPACE}:databaseStack: required when existing[{workload.name}] has "
                    "replicaOf: the alibaba stack whose outputs it reads, e.g. my-org/platform/alibaba"
                )
        sources = [w.replica_of.source for w in self.existing if w.replica_of is not None]
        if repeated := sorted(n for n, count in Counter(sources).items() if count > 1):
            raise ValueError(f"{NAMESPACE}:existing: more than one replica of {', '.join(repeated)}; one per source")

    def _check_cloud_ids(self) -> None:
        """Ids in the cloud's own format: anything else would reach the API, or a command, as typed."""
        located = {
            "host.instanceId": getattr(self.host, "instance_id", None),
            "firewall.securityGroupId": self.firewall.security_group_id,
            "network.vpcId": self.network.vpc_id,
            "network.subnetId": self.network.subnet_id,
        }
        for where, value in located.items():
            field = where.rpartition(".")[2]
            prefix, pattern = CLOUD_ID_PREFIXES[self.cloud.value][field], cloud_id_pattern(self.cloud.value, field)
            if value is not None and not re.match(pattern, value):
                raise ValueError(
                    f"{NAMESPACE}:{where}: {shown(value)} is not {self.cloud.article} id; expected "
                    f"{prefix} followed by lower-case letters and digits ({pattern})"
                )

    def _check_retired(self) -> None:
        for kind, retired, active in (
            ("databases", self.retired.databases, self.databases),
            ("services", self.retired.services, self.services),
        ):
            names = [r.name for r in retired]
            if repeated := sorted(n for n, count in Counter(names).items() if count > 1):
                raise ValueError(f"{NAMESPACE}:retired.{kind}: listed twice: {', '.join(repeated)}")
            for index, entry in enumerate(retired):
                if entry.name in {w.name for w in active}:
                    raise ValueError(
                        f"{NAMESPACE}:retired.{kind}[{index}]: {entry.name!r} is also in {NAMESPACE}:{kind}; a "
                        "workload is either on the host or retired: remove one of the two entries"
                    )
        for where, workload in self._located_workloads():
            prefix = next((p for p in RESERVED_PREFIXES if workload.name.startswith(p)), None)
            if prefix is not None or workload.name in RESERVED_NAMES:
                what = f"must not start with {prefix!r}" if prefix is not None else "is reserved"
                raise ValueError(
                    f"{NAMESPACE}:{where}: name {workload.name!r} {what} (it names the "
                    f"platform's own commands: {', '.join(RESERVED_PREFIXES)} and {', '.join(RESERVED_NAMES)})"
                )

    def _check_batches(self) -> None:
        services = {s.name for s in self.services}
        seen: list[str] = []
        for index, batch in enumerate(self.batches, start=1):
            if not batch:
                raise ValueError(f"{NAMESPACE}:batches[{index - 1}] is empty; list at least one service")
            for name in batch:
                if name not in services:
                    valid = ", ".join(sorted(services)) or "none declared"
                    raise ValueError(f"{NAMESPACE}:batches[{index - 1}]: unknown service {name!r}; services: {valid}")
                if name in seen:
                    raise ValueError(
                        f"{NAMESPACE}:batches[{index - 1}]: service {name!r} is already in an earlier batch"
                    )
                seen.append(name)
        if missing := sorted(services - set(seen)):
            raise ValueError(f"{NAMESPACE}:batches: services in no batch: {', '.join(missing)}; list each once")

    def _located_workloads(self) -> Iterator[tuple[str, Database | Service | ExistingWorkload | MonitoringWorkload]]:
        """Each workload and where the stack file puts it: ``databases[production-mysql]`` (a patched
        list's position is not the stack file's, the name is), ``monitoring`` for a derived one."""
        for section in ("existing", "databases", "services"):  # what was there first owns a port
            for workload in getattr(self, section):
                yield f"{section}[{workload.name}]", workload
        for workload in self.monitoring_workloads:
            yield f"monitoring[{workload.name}]", workload

    @property
    def workloads(self) -> tuple[Database | Service | ExistingWorkload | MonitoringWorkload, ...]:
        return (*self.existing, *self.databases, *self.services, *self.monitoring_workloads)

    @property
    def runs_prometheus(self) -> bool:
        if not self.monitoring.enabled:
            return False
        return self.cloud == Cloud.TENCENT if self.monitoring.prometheus is None else self.monitoring.prometheus

    @property
    def monitoring_workloads(self) -> tuple[MonitoringWorkload, ...]:
        """Node exporter, an exporter per MySQL, PostgreSQL and Redis database, and on the Prometheus
        host Prometheus, Alertmanager and the blackbox exporter. What Prometheus scrapes on the peer
        is exposed to the peer's /32; what it scrapes on its own host stays local."""
        if not self.monitoring.enabled:
            return ()
        scraped = Exposure.NONE if self.runs_prometheus else Exposure.PEER
        names = ["node-exporter", *sorted(self.exported_databases)]
        if self.runs_prometheus:
            names += ["prometheus", "alertmanager", "blackbox-exporter"]
            if self.monitoring.receiver == Receiver.DINGTALK:
                names.append("alert-relay")
            if self.monitoring.grafana:
                names.append("grafana")
        local = {"prometheus", "alertmanager", "blackbox-exporter", "alert-relay", "grafana"}
        return tuple(
            MonitoringWorkload(
                name=name,
                ports=(
                    PortSpec(
                        port=self.monitoring.ports.get(name, MONITORING_PROGRAMS[name][0]),
                        expose=Exposure.NONE if name in local else scraped,
                        purpose=f"{name} metrics" if name.endswith("exporter") else name,
                    ),
                ),
                memory_mib=MONITORING_PROGRAMS[name][1],
            )
            for name in names
        )

    @property
    def exported_databases(self) -> dict[str, Database]:
        """Exporter -> the database it watches: the first of its kind in the plan (Debian's
        mysqld exporter 0.14 watches one server; the others of a kind go unwatched, which
        ``unexported_databases`` names for the preview's warning)."""
        if not self.monitoring.enabled:
            return {}
        watched: dict[str, Database] = {}
        for db in self.databases:
            exporter = EXPORTER_OF_KIND.get(db.kind.value)
            if exporter is not None:
                watched.setdefault(exporter, db)
        return watched

    @property
    def unexported_databases(self) -> tuple[Database, ...]:
        watched = {db.name for db in self.exported_databases.values()}
        return tuple(
            db
            for db in self.databases
            if self.monitoring.enabled and db.kind.value in EXPORTER_OF_KIND and db.name not in watched
        )

    @property
    def peer_monitoring_ports(self) -> tuple[int, ...]:
        """The peer's exporter ports this host's Prometheus scrapes (egress to the peer's /32)."""
        if not self.runs_prometheus:
            return ()
        kinds = {d["kind"] for d in DEFAULT_DATABASES} if self.cloud == Cloud.TENCENT else set()
        names = ["node-exporter", *(EXPORTER_OF_KIND[k] for k in sorted(kinds) if k in EXPORTER_OF_KIND)]
        return tuple(sorted(MONITORING_PROGRAMS[name][0] for name in names))

    @property
    def backed_up(self) -> tuple[Database, ...]:
        """The databases backed up on the schedule (all but those with ``backup: {none: ...}``)."""
        return tuple(db for db in self.databases if db.backup is None)

    @property
    def transient(self) -> tuple[dict[str, Any], ...]:
        """Jobs that run now and then beside the workloads and must fit the same memory budget.

        One backup or restore drill runs at a time (a host-wide lock). A backup's dump runs
        through ``podman exec`` inside its container's own limit, so the most a job adds is a
        drill's: its programs (BACKUP_RUNNER_MEMORY_MIB) and its scratch engine (drillMemoryMib).
        """
        if not self.backed_up:
            return ()
        return (
            {
                "name": BACKUP_JOBS,
                "role": "transient:backup-jobs",
                "memoryMib": BACKUP_RUNNER_MEMORY_MIB + self.backups.drill_memory_mib,
                "family": None,
                "ports": [],
            },
        )

    @property
    def replication_sources(self) -> tuple[Database, ...]:
        """Alibaba databases that accept the peer as a replica (default: every replicable one)."""
        if self.replication.sources is None:
            return tuple(db for db in self.databases if db.kind in REPLICABLE_KINDS)
        return tuple(db for db in self.databases if db.name in self.replication.sources)

    @property
    def replicas(self) -> tuple[ExistingWorkload, ...]:
        """Existing Tencent engines that follow an Alibaba database."""
        return tuple(w for w in self.existing if w.replica_of is not None)

    @property
    def used_mib(self) -> int:
        return sum(w.memory_mib for w in self.workloads) + sum(t["memoryMib"] for t in self.transient)

    @property
    def free_mib(self) -> int:
        """What is left of the usable memory after the workloads and the OS reserve: the one figure
        the stack's ``memory`` output, the preview and the pack's capacity report show."""
        return self.host.memory_mib - self.used_mib - self.host.os_reserve_mib

    def props(self) -> dict[str, Any]:
        """The host's plan as every component registers it, so a policy can read it."""
        return {
            "cloud": self.cloud.value,
            "hostMode": self.host.mode,
            "hostMemoryMib": self.host.memory_mib,
            "osReserveMib": self.host.os_reserve_mib,
            "sshPort": self.host.ssh_port,
            "peerCidr": self.firewall.peer_cidr,
            "adminCidrs": list(self.firewall.admin_cidrs),
            "workloads": [
                *(
                    {
                        "name": w.name,
                        "role": w.role,
                        "memoryMib": w.memory_mib,
                        "family": w.family if isinstance(w, Service) else None,
                        "ports": [p.model_dump(mode="json", by_alias=True) for p in w.ports],
                        "backup": _backup_props(w),
                    }
                    for w in self.workloads
                ),
                *({**t, "backup": None} for t in self.transient),
            ],
            "backups": self.backups.model_dump(mode="json", by_alias=True),
            "replication": {
                "sources": [
                    {
                        "name": db.name,
                        "kind": db.kind.value,
                        "port": db.ports[0].port,
                        "peerCidr": self.firewall.peer_cidr,
                    }
                    for db in self.replication_sources
                ],
                "replicas": [
                    {
                        "name": w.name,
                        "kind": w.replica_of.kind,
                        "source": w.replica_of.source,
                        "sourceAddress": w.replica_of.host or self.firewall.peer_address,
                        "sourcePort": w.replica_of.source_port,
                        "port": w.ports[0].port,
                    }
                    for w in self.replicas
                    if w.replica_of is not None
                ],
            },
            "proxy": None
            if self.proxy is None
            else {
                "httpPort": self.proxy.http_port,
                "httpsPort": self.proxy.https_port,
                "routes": {s.proxy_route: s.port for s in self.services},
            },
            "retired": [
                *({"name": r.name, "kind": "database", "purge": r.purge} for r in self.retired.databases),
                *({"name": r.name, "kind": "service", "purge": False} for r in self.retired.services),
            ],
        }

    def example_values(self) -> tuple[tuple[str, str], ...]:
        """Each placeholder left in the plan (``plan_values.example_reason``), as (key, why): the
        values a shipped stack file marks EXAMPLE. A real run refuses them; the offline preview lists them."""
        found: list[tuple[str, str]] = []

        def walk(value: Any, key: str) -> None:
            if isinstance(value, dict):
                for name, inner in value.items():
                    if name not in FREE_TEXT_FIELDS:
                        walk(inner, f"{key}.{name}")
            elif isinstance(value, list):
                for index, inner in enumerate(value):
                    label = inner.get("name") if isinstance(inner, dict) else None
                    walk(inner, f"{key}[{label if isinstance(label, str) else index}]")
            elif isinstance(value, str) and (why := example_reason(value)):
                text = shown(value)
                found.append((key, f"{text} is {why}" if text.startswith("'") else why))

        for field, value in self.model_dump(mode="json", by_alias=True).items():
            walk(value, f"{NAMESPACE}:{field}")
        return tuple(found)

    @property
    def needs_sudo(self) -> bool:
        return self.host.ssh_user != "root"

    @property
    def peer_database_ports(self) -> tuple[int, ...]:
        """Ports of the peer's databases this host may reach (egress to the peer's /32)."""
        if self.firewall.peer_database_ports is not None:
            return self.firewall.peer_database_ports
        if self.cloud == Cloud.ALIBABA:  # the peer is the Tencent host, with its replicas
            peer_ports = (p for w in DEFAULT_EXISTING if w.get("database") for p in w.get("ports", ()))
        else:  # the peer is the Alibaba database host
            peer_ports = (p for d in DEFAULT_DATABASES for p in d["ports"])
        return tuple(sorted({p["port"] for p in peer_ports}))


def _backup_props(workload: Database | Service | ExistingWorkload | MonitoringWorkload) -> dict[str, str] | None:
    if not isinstance(workload, Database):
        return None
    if workload.backup is None:
        return {"mode": "scheduled"}
    return {"mode": "none", "reason": workload.backup.none}


# ---------------------------------------------------------------------------------------
# Loading from stack config
# ---------------------------------------------------------------------------------------

_FIELDS = {field.alias or name for name, field in Plan.model_fields.items()}


def load_plan(config: Mapping[str, str], secret_keys: set[str] | frozenset[str] = frozenset()) -> Plan:
    """Build the plan from raw stack config (``{"platform:host": "<json>", ...}``).

    Raises ``PlanError`` with one line naming the key, the value (unless it may be a secret) and
    what is valid; never another exception, whatever the config holds.
    """
    prefix = f"{NAMESPACE}:"
    values: dict[str, Any] = {}
    for full_key, raw in config.items():
        check_config_key(full_key, secret_keys)
        if not full_key.startswith(prefix) or full_key[len(prefix) :] in SECRET_KEYS:
            continue
        key = full_key[len(prefix) :]
        if key not in _FIELDS:
            valid = ", ".join(sorted(f"{prefix}{f}" for f in _FIELDS | set(SECRET_KEYS)))
            raise PlanError(f"{full_key}: unknown config key; valid keys: {valid}")
        values[key] = _decode(raw)
    try:
        values = with_defaults(values)
        return Plan.model_validate(values)
    except ValueError as error:  # with_defaults: a key that names itself
        if not isinstance(error, ValidationError):
            raise PlanError(str(error)) from None
        raise PlanError(_first_error(error, values)) from None
    except RecursionError:
        raise PlanError(f"{NAMESPACE}: config nested too deeply to be a plan") from None


def effective_config(plan: Plan) -> dict[str, Any]:
    """The plan as a stack file that spells every default out: ``python -m preflight STACK --plan``.
    Read back, it gives the same plan (omitted defaults stay omitted)."""
    values = plan.model_dump(mode="json", by_alias=True)
    if not any(values["omit"].values()):
        del values["omit"]
    return {"config": {f"{NAMESPACE}:{key}": value for key, value in values.items()}}


def check_config_key(full_key: Any, secret_keys: set[str] | frozenset[str]) -> None:
    """A key in a namespace this project reads, and stored as a secret when it names one."""
    if not isinstance(full_key, str) or ":" not in full_key:
        raise PlanError(f"config key {shown(full_key)}: expected '<namespace>:<name>', e.g. {NAMESPACE}:cloud")
    namespace, _, name = full_key.partition(":")
    if namespace not in NAMESPACES:
        guess = get_close_matches(namespace, NAMESPACES, n=1)
        hint = f"; did you mean {guess[0]}:{name}?" if guess else ""
        raise PlanError(
            f"{shown(full_key)}: unknown namespace {shown(namespace)}; this project reads "
            f"{', '.join(f'{n}:' for n in NAMESPACES)}{hint}"
        )
    if (name in SECRET_KEYS or looks_secret_key(name)) and full_key not in secret_keys:
        raise PlanError(
            f"{full_key} is stored in plain text: set it with "
            f"`pulumi config set --secret {full_key} ...` (or --secret --path for one field)"
        )


def check_secrets_present(plan: Plan, config: Mapping[str, str]) -> None:
    """Every database has its password and every service secret its value (only the key names
    are read, never the values)."""
    key = f"{NAMESPACE}:serviceSecrets"
    raw = _decode(config.get(key, "{}"))
    names = set(raw) if isinstance(raw, dict) else set()
    for service in plan.services:
        for name in service.secrets:
            if name not in names:
                raise PlanError(
                    f"{key}.{name}: not set (services {service.name} reads it); run "
                    f"`pulumi config set --secret --path '{key}.{name}' <value>`"
                )
    key = f"{NAMESPACE}:alertWebhook"
    if plan.runs_prometheus and key not in config:
        example = (
            "https://oapi.dingtalk.com/robot/send?access_token=..."
            if plan.monitoring.receiver == Receiver.DINGTALK
            else "https://hooks.slack.com/services/..."
        )
        raise PlanError(
            f"{key}: not set; Alertmanager on this host posts alerts there: run "
            f"`pulumi config set --secret {key} {example}`"
        )
    if not plan.databases:
        return
    key = f"{NAMESPACE}:dbPasswords"
    raw = _decode(config.get(key, "{}"))
    names = set(raw) if isinstance(raw, dict) else set()
    for db in plan.databases:
        if db.name not in names:
            raise PlanError(
                f"{key}.{db.name}: not set; run `pulumi config set --secret --path '{key}.{db.name}' <password>`"
            )


def _decode(raw: str) -> Any:
    """Pulumi hands objects and lists over as JSON text, plain strings as they are."""
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return raw


def _first_error(error: ValidationError, values: Mapping[str, Any] | None = None) -> str:
    detail = error.errors(include_url=False)[0]
    location = _location(_named(detail["loc"], values or {}))
    key = loc_name(detail["loc"])
    value = detail["input"]
    message = detail["msg"].removeprefix("Value error, ")
    if detail["type"] == "missing":
        return f"{location}: required but not set{_MISSING_HELP.get(key, '')}"
    if detail["type"] == "extra_forbidden":  # the value may be a secret pasted in the wrong place
        return f"{location}: unknown field; check the spelling against README.md"
    if detail["type"] == "union_tag_invalid":
        return f"{location}: mode {shown(value.get('mode'))} is not valid; expected 'create' or 'adopt'"
    if detail["type"] == "union_tag_not_found":
        return f"{location}: mode is required; expected 'create' or 'adopt'"
    if detail["type"] == "string_pattern_mismatch" and key in _PATTERN_HELP:
        return f"{location}: {shown(value, key)} is not valid; expected {_PATTERN_HELP[key]}"
    if detail["type"] == "enum":
        return f"{location}: {shown(value, key)} is not valid; {message.lower()}"
    if message.startswith(f"{NAMESPACE}:"):  # a cross-field check that names its own key
        return message
    if isinstance(value, dict | list | tuple):  # a check over a whole block
        return f"{location}: {message}"
    return f"{location}: {message} (got {shown(value, key)})"


_MISSING_HELP = {
    "release": (
        "; where the service's build comes from: {version, artifact: <an https URL>, sha256: <its digest>} "
        "(the host downloads it) or {version, upload: <a file or directory built on this machine>}"
    ),
}
_PATTERN_HELP = {
    "startCommand": "plain words (letters, digits, . / _ = : , -), no shell syntax: it lands in ExecStart",
    "image": "a full image reference with registry and tag, e.g. docker.io/library/mysql:8.0",
    "name": "lower-case letters, digits and '-', starting with a letter, at most 63 characters",
    "family": "a port-plan family name: lower-case letters, digits and '-'",
    "version": "letters, digits and . _ + -, e.g. 1.4.2",
    "sha256": "64 lower-case hex digits",
    "sshUser": "a Unix user name, e.g. root or ubuntu",
    "osFamilies": "an os-release ID such as ubuntu or rhel: lower-case letters, digits and . _ -",
    "healthPath": "a URL path of letters, digits and . _ ~ / -, e.g. /health",
    "zone": "a zone id such as cn-shenzhen-a or ap-guangzhou-3",
    "instanceType": "the cloud's instance type, e.g. ecs.t6-c1m1.large or S5.MEDIUM4",
    "imageId": "the cloud's image id: letters, digits and _ . -",
    "keyPairName": "the cloud's key pair name or id: letters, digits and _ . -",
    "dataDiskCategory": "a disk category such as cloud_essd or CLOUD_PREMIUM",
}
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def loc_name(loc: tuple[int | str, ...]) -> str:
    return next((str(part) for part in reversed(loc) if isinstance(part, str)), "")


def _named(loc: tuple[int | str, ...], values: Mapping[str, Any]) -> tuple[int | str, ...]:
    """A workload's index in a patched list (which the stack file never wrote) as the workload's name:
    ``databases[3]`` -> ``databases[production-neo4j]``."""
    if len(loc) < 2 or loc[0] not in PATCHED_SECTIONS or not isinstance(loc[1], int):
        return loc
    entries = values.get(str(loc[0]))
    entry = entries[loc[1]] if isinstance(entries, list | tuple) and loc[1] < len(entries) else None
    name = entry.get("name") if isinstance(entry, dict) else None
    if not isinstance(name, str) or not _NAME_IN_KEY.match(name):
        return loc
    return (loc[0], _WorkloadIndex(name), *loc[2:])


class _WorkloadIndex(str):
    """A list position shown by the workload's name."""


_NAME_IN_KEY = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def _location(loc: tuple[int | str, ...]) -> str:
    text = f"{NAMESPACE}:"
    parts = [p for p in loc if p not in ("create", "adopt")]  # discriminator tags are not config keys
    for index, part in enumerate(parts):
        if isinstance(part, int | _WorkloadIndex):
            text += f"[{part}]"
        else:
            # A key is shown as written only when it is plain (a key with a newline stays one line).
            name = part if _PLAIN_KEY.match(part) else f"[{shown(part)}]"
            text += name if index == 0 else f".{name}"
    return text
