"""The plan's schema: its bounded sections as pydantic models, and the names every part shares."""

from __future__ import annotations

import ipaddress
from collections import Counter
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from plan_values import (
    MAX_MEMORY_MIB,
    NAME_PATTERN,
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
    calendar_times_per_day,
    changes_what_runs,
    count,
    looks_secret_variable,
)
from policies import facts
from policies.facts import OS_RESERVE_MIB, is_below, reaches_world, span_text

NAMESPACE = "platform"
# Namespaces a stack file of this project may set: the program's own and its providers'.
NAMESPACES = (NAMESPACE, "alicloud", "tencentcloud", "command", "pulumi")

# Config keys that hold secrets: they must be set with `pulumi config set --secret`.
SECRET_KEYS = ("sshPrivateKey", "dbPasswords", "serviceSecrets", "alertWebhook", "alertSigningSecret", "heartbeatUrl")

# The replication user on every source (quoted from the seeds: "复制用户: replication").
REPLICATION_USER = "replication"

# Command names a workload's name must not start with (or be): each names one of the commands the
# provisioning components add beside the workloads' own (<component>-<prefix><workload>), so a
# workload called so would collide with, or be mistaken for, one of them.
RESERVED_PREFIXES = ("retire-", "backup-", "restore-", "repl-", "replica-", "replication-", "tls-", "exporter-")
RESERVED_NAMES = ("bootstrap", "tls", "proxy", "monitoring")
# A database is the unit <name>.service (Quadlet): never the name of a unit the OS, its packages or the
# clouds' agents run, which the database would shadow and its retire would stop.
SYSTEM_UNIT_NAMES = frozenset(
    {"ssh", "sshd", "cron", "crond", "dbus", "rsyslog", "networking", "chrony", "chronyd", "ntp", "ntpd", "ufw"}
    | {"firewalld", "nftables", "iptables", "auditd", "polkit", "udev", "multipathd", "snapd", "atd", "getty"}
    | {"nginx", "apache2", "httpd", "docker", "containerd", "podman", "mysql", "mysqld", "mariadb", "postgresql"}
    | {"redis", "redis-server", "neo4j", "elasticsearch", "prometheus", "grafana-server", "unattended-upgrades"}
    | {"aegis", "aliyun", "assist-daemon", "cloudmonitor", "yunjing", "stargate", "barad-agent", "tat-agent"}
)
SYSTEM_UNIT_PREFIXES = ("systemd-", "cloud-", "getty", "serial-getty", "prometheus-", "platform-")
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


# What each pattern allows, in words: an error says this, never the regular expression.
PATTERN_WORDS: dict[str, str] = {
    NAME_PATTERN: "lower-case letters, digits and '-', starting with a letter, at most 63 characters",
}


def _pattern(regex: str, max_length: int | None = None, *, says: str) -> Any:
    PATTERN_WORDS[regex] = says
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
    ssh_user: Annotated[
        str,
        _pattern(
            r"^[a-z_][a-z0-9_-]{0,31}$",
            says="a Unix user name, e.g. root or ubuntu",
        ),
    ] = "root"
    ssh_port: Port = 22
    allow_undeclared: Bool = Field(
        default=False,
        description="the host check proceeds despite TCP listeners beyond loopback that no workload declares",
    )
    os_families: tuple[
        Annotated[
            str,
            _pattern(
                r"^[a-z0-9._-]{1,32}$",
                says="an os-release ID such as ubuntu or rhel: lower-case letters, digits and . _ -",
            ),
        ],
        ...,
    ] = Field(
        max_length=32,
        default=("ubuntu", "debian", "alinux", "rhel", "centos", "rocky", "almalinux", "opencloudos", "tencentos"),
        description="values of ID / ID_LIKE in /etc/os-release the provisioning supports",
    )


class CreatedHost(HostCommon):
    """A new instance the program creates and protects."""

    mode: Literal["create"]
    instance_type: Token
    image_id: Token
    zone: Annotated[
        str, _pattern(r"^[a-z]{2}-[a-z0-9-]{1,40}$", says="a zone id such as cn-shenzhen-a or ap-guangzhou-3")
    ]
    data_disk_gb: int = count(20, 65536)
    data_disk_category: (
        Annotated[
            str,
            _pattern(
                r"^[A-Za-z0-9_]{1,32}$",
                says="a disk category such as cloud_essd or CLOUD_PREMIUM",
            ),
        ]
        | None
    ) = Field(default=None, description="default: cloud_essd / CLOUD_PREMIUM")
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
# The engines without an exporter whose HTTP port (their first) answers a request without
# credentials: Neo4j's discovery document, Elasticsearch's root (401 with security on: the node
# answers), Weaviate's readiness (503 until ready). The peer's Prometheus probes these paths.
HTTP_HEALTH_PATHS: dict[DatabaseKind, str] = {
    DatabaseKind.NEO4J: "/",
    DatabaseKind.ELASTICSEARCH: "/",
    DatabaseKind.WEAVIATE: "/v1/.well-known/ready",
}


class Jvm(Model):
    heap_mib: MemoryMib
    page_cache_mib: int = count(0, MAX_MEMORY_MIB, default=0)
    transaction_mib: int = count(0, MAX_MEMORY_MIB, default=0)

    @property
    def floor_mib(self) -> int:
        return self.heap_mib + self.page_cache_mib + JVM_NATIVE_FLOOR_MIB


# Engines whose replication this platform sets up (facts.REPLICABLE_KINDS, as DatabaseKind).
REPLICABLE_KINDS = tuple(DatabaseKind(kind) for kind in facts.REPLICABLE_KINDS)
# Chosen here: the engines the other host's services may use, each over verified TLS with a user
# of their own (the ones the platform already serves TLS on, for replication).
CLIENT_KINDS = REPLICABLE_KINDS
# MySQL 8's longest user name.
MYSQL_USER_MAX = 32


def client_database(service: str) -> str:
    """The database a client owns on MySQL and PostgreSQL: its name with '_' for '-' (no quoting)."""
    return service.replace("-", "_")


def client_key_prefix(service: str) -> str:
    """The keys (and channels) a client may touch on Redis."""
    return f"{service}:"


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
    database: (
        Annotated[
            str,
            _pattern(
                r"^[a-z_][a-z0-9_-]{0,62}$",
                says="a PostgreSQL database name: lower-case letters, digits, _ and -, at most 63",
            ),
        ]
        | None
    ) = Field(default=None, description="postgres: the database replicated (future_user); letters, digits, _ and -")
    discard: Bool = Field(
        default=False,
        description="the engine's own data may be replaced when it first becomes a replica: without it, an engine "
        "that holds data is refused (its dump is kept either way, README: 'Replication on by default')",
    )

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
    image: Annotated[
        str,
        _pattern(
            r"^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+:[A-Za-z0-9._-]+$",
            max_length=255,
            says="a full image reference with registry and tag, e.g. docker.io/library/mysql:8.0",
        ),
    ]
    ports: tuple[PortSpec, ...] = Field(min_length=1, max_length=8)
    memory_mib: MemoryMib
    jvm: Jvm | None = None
    health_timeout_s: int = count(1, 1800, default=300, description="bounded wait for the engine's health")
    backup: BackupNone | None = Field(
        default=None, description="None: backed up on platform:backups.schedule; {none: reason} to opt out"
    )
    clients: tuple[Name, ...] = Field(
        default=(),
        max_length=16,
        description=(
            "the other host's services that use it: each gets a user of its own, reachable from the peer "
            "only over verified TLS, with rights on its own database (MySQL, PostgreSQL) or key prefix "
            "(Redis) only"
        ),
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

    @model_validator(mode="after")
    def _clients_over_tls(self) -> Database:
        if self.clients and self.kind not in CLIENT_KINDS:
            served = ", ".join(kind.value for kind in CLIENT_KINDS)
            raise ValueError(
                f"clients: {self.kind} is not served to the other host's services: this platform gives it no "
                f"TLS, and its traffic would cross the Internet in plain text (only {served} have clients)"
            )
        if repeated := sorted(n for n, count in Counter(self.clients).items() if count > 1):
            raise ValueError(f"clients: listed twice: {', '.join(repeated)}")
        if self.kind == DatabaseKind.MYSQL and (long := [c for c in self.clients if len(c) > MYSQL_USER_MAX]):
            raise ValueError(f"clients: {long[0]!r} is longer than a MySQL user name may be ({MYSQL_USER_MAX})")
        return self

    @property
    def role(self) -> str:
        return f"database:{self.kind}"


class Release(Model):
    """Where a service's release comes from: exactly one of ``artifact`` (on the host or https) and
    ``upload`` (a file or directory on the machine running ``pulumi up``, sent over the pinned SSH
    connection). The host checks the sha256 before anything is swapped."""

    version: Annotated[
        str,
        _pattern(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$", says="letters, digits and . _ + -, e.g. 1.4.2"),
    ]
    artifact: Artifact | None = Field(
        default=None, description="release tarball: an https URL or an absolute path on the host"
    )
    upload: LocalPath | None = Field(
        default=None,
        description="a tarball or a directory on the machine running `pulumi up` (relative to the project)",
    )
    sha256: Annotated[str, _pattern(r"^[0-9a-f]{64}$", says="64 lower-case hex digits")] | None = None

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
    version: Annotated[str, _pattern(r"^3\.[0-9]{1,2}$", says="a Python 3 version such as 3.11")] = "3.11"
    lock_file: RelativePath = Field(
        default="requirements.lock",
        description="in the release: pinned requirements (`uv pip compile --generate-hashes`), installed exactly",
    )


# An environment variable name in a unit's Environment= (upper case, as services read them).
EnvName = Annotated[
    str,
    _pattern(
        r"^[A-Z][A-Z0-9_]{0,63}$",
        says="an environment variable name: upper-case letters, digits and _, starting with a letter, at most 64",
    ),
]
# A non-secret environment value: one line of plain characters (no quotes, %, $ or backslash, which
# systemd would interpret), at most 300.
EnvValue = Annotated[
    str,
    _pattern(
        r"^[A-Za-z0-9 ._:/,+=@?&#~-]{0,300}$",
        says="one line of letters, digits, spaces and . _ : / , + = @ ? & # ~ - (no quotes, %, $ or \\), at most 300",
    ),
]


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
    start_command: Annotated[
        str,
        _pattern(
            r"^[A-Za-z0-9_./][A-Za-z0-9_./ =:,-]*$",
            max_length=200,
            says="plain words (letters, digits, . / _ = : , -), no shell syntax: it lands in ExecStart",
        ),
    ] = Field(
        description="run from the release directory; plain words only (it lands in a unit's ExecStart)",
    )
    health_path: Annotated[
        str,
        _pattern(
            r"^/[A-Za-z0-9._~/-]*$", max_length=200, says="a URL path of letters, digits and . _ ~ / -, e.g. /health"
        ),
    ] = "/health"
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
    route: (
        Annotated[
            str,
            _pattern(
                r"^(/[a-z0-9][a-z0-9._-]{0,62}){1,4}/$",
                says="one to four segments of lower-case letters, digits and . _ -, ending in /, e.g. /api/crm/",
            ),
        ]
        | None
    ) = Field(default=None, description="its path behind the proxy; default /<name>/")

    @model_validator(mode="after")
    def _settings_fit(self) -> Service:
        if self.python is not None and self.runtime != Runtime.PYTHON:
            raise ValueError(f"python settings apply to runtime python only; {self.name} has runtime {self.runtime}")
        for key in self.environment:
            if changes_what_runs(key):
                raise ValueError(
                    f"environment.{key} changes what the service loads or runs (the loader's, an interpreter's or "
                    "the shell's start-up settings): the release decides that, never the stack file"
                )
            if looks_secret_variable(key):
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
DATABASE_VARIABLE_SUFFIXES = (
    "KIND",
    "HOST",
    "PORT",
    "USER",
    "NAME",
    "KEY_PREFIX",
    "TLS",
    "PASSWORD",
    "PASSWORD_FILE",
    "CA",
    "CA_FILE",
)


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


# The platform's own directories (scripts create and remove inside them), the persistent roots
# they may live below, and the drop-in directories of other programs the platform writes into.
OWN_PATHS = ("root", "data", "secrets", "state", "backups", "uploads", "monitoring")
OWN_PATH_ROOTS = ("/opt", "/srv", "/data", "/mnt", "/var/lib", "/var/opt", "/etc")
# Below these shared roots the platform's directory comes first (/var/lib/platform..., /etc/platform...):
# anything deeper is another program's.
SHARED_ROOTS = ("/var/lib", "/var/opt", "/etc")
DROP_IN_PATHS = {
    "units": ("/systemd/system",),
    "quadlet": ("/containers/systemd",),
    "sysctl": ("/sysctl.d",),
    "nginx": ("/nginx/conf.d", "/nginx/sites-enabled"),
    "credentials": ("/credentials",),
}


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
    def _where_they_belong(self) -> Paths:
        """The platform's own directories under a persistent root and a directory named for the
        platform (never another program's data or configuration, never tmpfs); each drop-in
        directory is the kind of directory its program reads."""
        for key in OWN_PATHS:
            path = getattr(self, key)
            root = next((r for r in OWN_PATH_ROOTS if is_below(path, r)), None)
            if root is None:
                raise ValueError(
                    f"{NAMESPACE}:paths.{to_camel(key)} {path} is not below {', '.join(OWN_PATH_ROOTS)}: the "
                    "platform keeps its files on the host's persistent disks (not /run, /tmp or a home)"
                )
            below = path.removeprefix(root + "/").split("/")
            if root in SHARED_ROOTS:
                below = below[:1]
            if not any(segment.startswith("platform") for segment in below):
                raise ValueError(
                    f"{NAMESPACE}:paths.{to_camel(key)} {path} is not in a directory of the platform's own (one "
                    f"named platform..., such as {root}/platform): another program's files would be the platform's"
                )
        for key, endings in DROP_IN_PATHS.items():
            path = getattr(self, key)
            if not path.endswith(endings):
                raise ValueError(
                    f"{NAMESPACE}:paths.{to_camel(key)} {path} is not a directory its program reads drop-ins from "
                    f"(it ends in {' or '.join(endings)}; default {type(self).model_fields[key].default})"
                )
        return self

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
        str,
        _pattern(
            r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$",
            max_length=253,
            says="a DNS name in lower case, such as api.example.com",
        ),
    ]
    certificate: HostPath = Field(description="PEM certificate chain on the host, e.g. certbot's fullchain.pem")
    certificate_key: HostPath = Field(description="its private key on the host (read by nginx only)")
    http_port: Port = 80
    https_port: Port = 443
    listen: (
        Annotated[str, _pattern(r"^[0-9]{1,3}(\.[0-9]{1,3}){3}$", says="an IPv4 address such as 10.0.0.5")] | None
    ) = Field(default=None, description="an IPv4 address of the host to listen on; default all")

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ipaddress.IPv4Address(value)
            except ValueError:
                raise ValueError("is not an IPv4 address (four numbers 0-255, no leading zeros)") from None
        return value


# ---------------------------------------------------------------------------------------
# Backups and replication
# ---------------------------------------------------------------------------------------

# An OSS bucket name: 3-63 lower-case letters, digits and '-', starting and ending with a letter or digit.
OSS_BUCKET_PATTERN = r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$"


class OffHost(Model):
    """The OSS bucket the Alibaba host copies its backups to (through its ECS RAM role)."""

    bucket: (
        Annotated[
            str,
            _pattern(
                OSS_BUCKET_PATTERN,
                says="an OSS bucket name: 3-63 lower-case letters, digits and -, a letter or digit at each end",
            ),
        ]
        | None
    ) = Field(
        default=None, description="OSS bucket name; default: derived from the project and stack (components/offsite.py)"
    )
    # Chosen here: one folder per platform, so the bucket may hold other prefixes, and the RAM
    # policy grants nothing outside it.
    prefix: Annotated[
        str,
        _pattern(
            r"^([a-z0-9][a-z0-9._-]{0,62}/){1,8}$",
            max_length=200,
            says="folders of lower-case letters, digits and . _ -, each ending in /, e.g. platform/ or prod/db/",
        ),
    ] = "platform/"


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

    @field_validator("schedule")
    @classmethod
    def _at_most_hourly(cls, schedule: str) -> str:
        per_hour, _ = calendar_times_per_day(schedule)
        if per_hour > 1:
            raise ValueError(
                f"fires up to {per_hour} times an hour: each run dumps every database (and stops Neo4j), so "
                "a backup runs at most hourly; give the minute and second one value each, e.g. '*-*-* 03:00:00'"
            )
        return schedule

    @field_validator("drill_schedule")
    @classmethod
    def _at_most_daily(cls, schedule: str) -> str:
        _, per_day = calendar_times_per_day(schedule)
        if per_day > 1:
            raise ValueError(
                f"fires up to {per_day} times a day: a restore drill restores every database in turn, so it "
                "runs at most daily; give the hour, minute and second one value each, e.g. 'Sun *-*-* 05:00:00'"
            )
        return schedule

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
    # How long a scrape target (a host's node exporter, an exporter, the database behind it) may
    # not answer before anyone is woken: six scrapes at 30 s, so a restart or a deploy passes.
    target_down_minutes: int = count(1, 60, default=3)
    # A host whose CPUs are this busy (100 - idle, all cores) for cpuBusyMinutes is saturated.
    cpu_busy_percent: int = count(1, 100, default=90)
    cpu_busy_minutes: int = count(1, 240, default=15)
    # A service's health check slower than this (blackbox probe duration) for 5 minutes.
    probe_slow_ms: int = count(10, 60000, default=2000)
    # A certificate this close to its end: pulumi-tls renews the platform's 30 days ahead, so one
    # closer did not reach the host (warning), and a week is the last call (critical).
    certificate_warning_days: int = count(1, 365, default=30)
    certificate_critical_days: int = count(1, 365, default=7)


# The monitoring programs' memory limits. Chosen here: the resident memory Debian's builds showed
# on the loopback test host (`make bench`, last run: node exporter 20 MiB, the MySQL, PostgreSQL
# and Redis exporters 17, 13 and 11, blackbox 14, Alertmanager 33, Prometheus 52 with one target)
# with room for their Go heaps to breathe, and for Prometheus the head block of a few thousand
# series at a 30 s interval. The node, PostgreSQL and Redis exporters gave 4 MiB each to the metrics
# tunnel's login on the Alibaba host (METRICS_LOGIN_MIB), keeping 7 MiB or more over what they
# showed. The DingTalk relay (components/scripts/alert_relay.py, Python's standard library)
# showed 22.4 MiB resident after a signed delivery. Grafana's is not measured here: it is in no
# Debian archive, so it cannot run on the test machine; 160 MiB leaves room over a Go web server
# with its SQLite database and three dashboards. Measure on the host.
MONITORING_MEMORY_MIB: dict[str, int] = {
    "node-exporter": 28,
    "mysqld-exporter": 24,
    "postgres-exporter": 20,
    "redis-exporter": 20,
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
# The metrics tunnel (README: "Metrics from the database host"). The Alibaba host's exporters listen
# on loopback only; the Tencent Prometheus reaches them through an SSH local forward, logged in as
# METRICS_USER with a key that may open those forwards and nothing else. Chosen here, measured on
# Debian 12 (OpenSSH 9.2) in a memory cgroup with the page cache dropped: the client peaked at
# 6.9 MiB; a session added 1.9 MiB to a running sshd (7.8 MiB for sshd and a session from cold).
METRICS_USER = "platform-metrics"
METRICS_TUNNEL = "metrics-tunnel"  # the ssh client on the Prometheus host, under its own unit
METRICS_TUNNEL_MIB = 12
METRICS_LOGIN = "metrics-login"  # its session on the scraped host, under that user's slice
METRICS_LOGIN_MIB = 8
# A peer exporter's forward listens on loopback at its default port plus this (node exporter: 19100).
TUNNEL_PORT_OFFSET = 10000
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
        "250 MiB left there before the monitoring, 187 on the Alibaba host before its exporters and backup jobs)",
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


StackName = Annotated[
    str,
    _pattern(
        r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$",
        says="<stack>, <organization>/<stack> or <organization>/<project>/<stack> (letters, digits, . _ -)",
    ),
]
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
