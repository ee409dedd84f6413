"""Cross-cloud replication, Alibaba primary -> Tencent replica, over TLS that verifies the peer.

The steps (each a remote command built by ``provisioning.run_step``; every one converges and says
"unchanged" when the host already is so):

- ``tls_step`` (Alibaba, before the containers): each source's CA, server certificate and key in
  ``tls_dir(<db>)``, which its container mounts read-only (``engines.quadlet_unit(..., tls_dir)``
  turns TLS and the replication settings on); a running engine reloads a changed file.
- ``source_step`` (Alibaba, after the source's container): the replication user, limited to
  replication, reachable from the peer only and only over TLS (``repl_source.sh``).
- ``replica_step`` (Tencent): the host's existing native engine follows its source, verifying the
  source's certificate against the program's CA (``repl_replica.sh``).
- ``health_step`` (Tencent): ``repl_health.sh`` on a one-minute timer, one line per replica and a
  textfile-collector metric file.
- ``source_counts_step`` (Alibaba) and ``replica_counts_step`` (Tencent): ``repl_counts.sh`` on a
  five-minute timer, each side's row counts by source and table for the consistency alert.

Every replication command renders ``TLS_VERIFY=verify-full`` and a non-empty ``CA_FILE``
(the ``replication-over-tls`` policy checks them). Passwords and private keys travel only on
the commands' stdin (``*_stdin`` below give its exact text).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

from components.engines import (
    IMAGE_ENGINE_OWNER,
    POSTGRES_SUPERUSER,
    TLS_CA,
    data_dir,
    hook,
    secret_file,
    server_id,
)
from components.provisioning import Params, Step, render
from components.timer_checks import TimerCheck
from plan import (
    BACKUP_RUNNER_MEMORY_MIB,
    REPLICABLE_KINDS,
    REPLICATION_USER,
    Database,
    ExistingWorkload,
    Layout,
    Paths,
)
from policies.facts import metrics_dir

LIB = "lib/repl.sh"
TLS_VERIFY = "verify-full"
# Chosen here: the publication on each source database and the subscription that follows it.
PUBLICATION = "platform_replication"
SUBSCRIPTION = "platform_replication"
# Chosen here: how long a replica step waits for its first sync (the replica keeps syncing after).
SYNC_TIMEOUT_S = 300
HEALTH_SERVICE = "platform-replication-health"
# Chosen here: how often the health check runs, and how long one run may take.
HEALTH_INTERVAL = "1min"
HEALTH_TIMEOUT_S = 50
COUNTS_SERVICE = "platform-replication-counts"
# Chosen here: a COUNT(*) of every replicated table is cheap on the seeds' small databases, but not
# worth a minute's cadence; ReplicaRowsDiffer's window is read from this.
COUNTS_INTERVAL_S = 300
COUNTS_TIMEOUT_S = 240
# Chosen here: the replica side runs the hosts' own clients (mysql, psql, redis-cli), as the health
# check does under the same limit.
REPLICA_COUNTS_MEMORY_MIB = 64


# --- where things live on the hosts ---------------------------------------------------------------


def tls_dir(name: str, paths: Paths) -> str:
    """A TLS engine's files on the Alibaba host (ca.crt, server.crt, server.key): a replication
    source's, or a database's with clients (``plan.tls_engines``)."""
    return f"{paths.secrets}/tls/{name}"


def replica_dir(name: str, paths: Paths) -> str:
    """A replica's public TLS files on the Tencent host: readable by the engine's own user (0755)."""
    return f"{paths.root}/replication/{name}"


def replica_ca_file(name: str, paths: Paths) -> str:
    return f"{replica_dir(name, paths)}/{TLS_CA}"


def replica_pass_file(name: str, paths: Paths) -> str:
    """The replica's copy of its replication password for pg_dump and the health check (0600)."""
    return f"{paths.secrets}/{name}-replication.pgpass"


def metrics_file(paths: Paths) -> str:
    return f"{metrics_dir(paths.state)}/replication.prom"


def health_program(paths: Paths) -> str:
    return f"{paths.root}/bin/{HEALTH_SERVICE}"


# --- TLS files of the sources (Alibaba) -----------------------------------------------------------


def tls_stdin(ca_pem: str, certificates: Mapping[str, tuple[str, str]]) -> str:
    """What ``tls_step`` reads: the CA, then each source's certificate and key (``{db: (cert, key)}``)."""
    sections = [("ca", ca_pem)]
    for name, (cert_pem, key_pem) in sorted(certificates.items()):
        sections += [(f"cert {name}", cert_pem), (f"key {name}", key_pem)]
    text = ""
    for header, pem in sections:
        if any(line.startswith("== ") for line in pem.splitlines()):
            raise ValueError(f"{header}: a PEM block cannot hold a line starting with '== '")
        text += f"== {header}\n{pem.strip()}\n"
    return text


def tls_params(paths: Paths, sources: Sequence[Database]) -> Params:
    return {
        "TLS_ROOT": f"{paths.secrets}/tls",
        "SOURCE_NAMES": " ".join(db.name for db in sources),
        "SOURCE_KINDS": " ".join(db.kind.value for db in sources),
        "SOURCE_DATA_DIRS": " ".join(data_dir(db.name, paths) for db in sources),
        "SOURCE_SECRET_FILES": " ".join(secret_file(db.name, paths) for db in sources),
        "IMAGE_ENGINE_OWNER": IMAGE_ENGINE_OWNER,
        "PG_SUPERUSER": POSTGRES_SUPERUSER,
        "TLS_VERIFY": TLS_VERIFY,
        "CA_FILE": TLS_CA,
    }


def tls_step(component: str, layout: Layout, sources: Sequence[Database], stdin: pulumi.Input[str]) -> Step:
    """Writes every TLS engine's files (``plan.tls_engines``; stdin: ``tls_stdin``); reloads the
    engines that run."""
    return Step(
        f"{component}-tls",
        files=(LIB, "repl_tls.sh"),
        params=tls_params(layout.paths, sources),
        label="platform-replication-tls",
        stdin=stdin,
        handles_secrets=True,
        sudo=layout.sudo,
    )


# --- the replication user on a source (Alibaba) ---------------------------------------------------


def source_stdin(password: str) -> str:
    return f"{password}\n"


# --- a step inside a database's container (Alibaba): its replication, exporter and clients' users --


def container_params(db: Database, paths: Paths) -> Params:
    """What lib/repl.sh needs to work inside ``db``'s container as its admin (podman exec): the
    container, its kind, the admin password's file, PostgreSQL's superuser, where markers live."""
    return {
        "NAME": db.name,
        "KIND": db.kind.value,
        "SECRET_FILE": secret_file(db.name, paths),
        "PG_SUPERUSER": POSTGRES_SUPERUSER,
        "STATE_DIR": paths.state,
    }


def in_container_step(
    component: str, layout: Layout, db: Database, role: tuple[str, str, str], params: Params, stdin: pulumi.Input[str]
) -> Step:
    """A step run after ``db``'s container, working inside it: lib/repl.sh, the engine's hook, then the
    script (``role``: the step's short name, the hook's part, the script), with ``container_params``
    and ``params``; the secrets it needs on its stdin."""
    short, part, script = role
    return Step(
        f"{component}-{short}-{db.name}",
        files=(LIB, hook(db.kind, part), script),
        params={**container_params(db, layout.paths), **params},
        label=f"platform-{short}-{db.name}",
        stdin=stdin,
        handles_secrets=True,
        sudo=layout.sudo,
    )


def source_params(paths: Paths, peer_address: str, db: Database) -> Params:
    """``peer_address``: the replica's host, the one address the replication user may log in from."""
    if db.kind not in REPLICABLE_KINDS:
        raise ValueError(f"{db.name}: {db.kind} cannot replicate across clouds")
    return {
        **container_params(db, paths),
        "PEER": peer_address,
        "REPL_USER": REPLICATION_USER,
        "PUBLICATION": PUBLICATION,
        "TLS_VERIFY": TLS_VERIFY,
        "CA_FILE": f"{tls_dir(db.name, paths)}/{TLS_CA}",
    }


def source_step(component: str, layout: Layout, peer_address: str, db: Database, stdin: pulumi.Input[str]) -> Step:
    """The replication user of ``db`` (stdin: ``source_stdin``); after its container."""
    role = ("repl", "source", "repl_source.sh")
    return in_container_step(component, layout, db, role, source_params(layout.paths, peer_address, db), stdin)


# --- a replica (Tencent) ----------------------------------------------------------------------------


def replica_stdin(password: str, ca_pem: str) -> str:
    """What ``replica_step`` reads: the password on the first line, then the CA."""
    if "\n" in password:
        raise ValueError("a replication password is one line")
    return f"{password}\n{ca_pem.strip()}\n"


def replica_params(paths: Paths, peer_address: str, workload: ExistingWorkload, source: Mapping[str, Any]) -> Params:
    """``source``: the Alibaba stack's ``replication.sources[<db>]`` plus its ``sourceAddress``, which
    must be the replica's ``host`` or else the peer (``peer_address``)."""
    replica = workload.replica_of
    if replica is None:
        raise ValueError(f"{workload.name} has no replicaOf")
    if source.get("kind") != replica.kind:
        raise ValueError(f"{workload.name}: replicaOf.kind {replica.kind} but {replica.source} is {source.get('kind')}")
    address = str(source["sourceAddress"])
    if address != (replica.host or peer_address):
        raise ValueError(f"{workload.name}: {replica.source} is at {address}, not the peer {peer_address}")
    return {
        "NAME": workload.name,
        "KIND": replica.kind,
        "PORT": workload.ports[0].port,
        "SOURCE_NAME": replica.source,
        "SOURCE_HOST": address,
        "SOURCE_PORT": int(source["port"]),
        "SOURCE_USER": str(source.get("user") or REPLICATION_USER),
        "SOURCE_SERVER_ID": server_id(replica.source),
        "DATABASE": replica.replicated_database or "-",
        "PUBLICATION": PUBLICATION,
        "SUBSCRIPTION": SUBSCRIPTION,
        "CA_FILE": replica_ca_file(workload.name, paths),
        "REPLICA_DIR": replica_dir(workload.name, paths),
        "PASS_FILE": replica_pass_file(workload.name, paths),
        "LOCAL_SECRET_FILE": secret_file(workload.name, paths),
        "STATE_DIR": paths.state,
        "SYNC_TIMEOUT": SYNC_TIMEOUT_S,
        "TLS_VERIFY": TLS_VERIFY,
        "DUMP_DIR": dump_dir(workload.name, paths),
        "DISCARD": int(replica.discard),
    }


def dump_dir(name: str, paths: Paths) -> str:
    """Where a replica's own data is dumped before it first follows its source (a directory per
    attempt, named by its UTC time, with a manifest)."""
    return f"{paths.state}/replication/pre-replica/{name}"


def replica_step(
    component: str,
    layout: Layout,
    peer_address: str,
    workload: ExistingWorkload,
    source: Mapping[str, Any],
    stdin: pulumi.Input[str],
) -> Step:
    """``workload`` follows its source (stdin: ``replica_stdin``). ``source`` holds plain values
    (kind, port, user, sourceAddress): the script text is rendered from them."""
    params = replica_params(layout.paths, peer_address, workload, source)
    return Step(
        f"{component}-replica-{workload.name}",
        files=(LIB, hook(str(params["KIND"]), "replica"), "repl_replica.sh"),
        params=params,
        label=f"platform-replica-{workload.name}",
        stdin=stdin,
        handles_secrets=True,
        sudo=layout.sudo,
    )


# --- health (Tencent) -------------------------------------------------------------------------------


def health_params(paths: Paths, replicas: Sequence[ExistingWorkload]) -> Params:
    return {
        "REPLICA_NAMES": " ".join(w.name for w in replicas),
        "REPLICA_KINDS": " ".join(w.replica_of.kind for w in replicas if w.replica_of is not None),
        "REPLICA_PORTS": " ".join(str(w.ports[0].port) for w in replicas),
        "REPLICA_DATABASES": " ".join(
            (w.replica_of.replicated_database or "-") for w in replicas if w.replica_of is not None
        ),
        "REPLICA_SECRET_FILES": " ".join(secret_file(w.name, paths) for w in replicas),
        "REPLICA_PASS_FILES": " ".join(replica_pass_file(w.name, paths) for w in replicas),
        "SUBSCRIPTION": SUBSCRIPTION,
        "METRICS_FILE": metrics_file(paths),
        "TLS_VERIFY": TLS_VERIFY,
    }


def health_script(paths: Paths, replicas: Sequence[ExistingWorkload]) -> str:
    """The health check as installed on the host (its parameters rendered in)."""
    return render([LIB, "repl_health.sh"], health_params(paths, replicas))


def health_check(paths: Paths) -> TimerCheck:
    """The health check as the timer runs it: every minute."""
    return TimerCheck(
        what="replication",
        service=HEALTH_SERVICE,
        program=health_program(paths),
        metrics_file=metrics_file(paths),
        description="Replication health of the replicas (metrics for the textfile collector)",
        timer_description="Run the replication health check every minute",
        timeout_s=HEALTH_TIMEOUT_S,
        memory_max="64M",
        timer=(f"OnBootSec={HEALTH_INTERVAL}", f"OnUnitActiveSec={HEALTH_INTERVAL}", "AccuracySec=5s"),
    )


def health_units(paths: Paths) -> tuple[str, str]:
    """The oneshot service and its timer."""
    return health_check(paths).units()


def health_step(component: str, layout: Layout, replicas: Sequence[ExistingWorkload]) -> Step:
    """Installs the health check and its timer; runs it once (an unhealthy replica is reported)."""
    paths = layout.paths
    return health_check(paths).step(f"{component}-replication-health", layout, health_script(paths, replicas))


# --- row counts for the consistency alert (both hosts) ---------------------------------------------


def counts_metrics_file(paths: Paths) -> str:
    return f"{metrics_dir(paths.state)}/replication_counts.prom"


def counts_program(paths: Paths) -> str:
    return f"{paths.root}/bin/{COUNTS_SERVICE}"


def counts_check(paths: Paths, memory_mib: int) -> TimerCheck:
    return TimerCheck(
        what="replication counts",
        service=COUNTS_SERVICE,
        program=counts_program(paths),
        metrics_file=counts_metrics_file(paths),
        description="Row counts of what replication carries (metrics for the textfile collector)",
        timer_description="Count the replicated rows every five minutes",
        timeout_s=COUNTS_TIMEOUT_S,
        memory_max=f"{memory_mib}M",
        timer=("OnBootSec=5min", f"OnUnitActiveSec={COUNTS_INTERVAL_S}s", "AccuracySec=10s"),
    )


def source_counts_step(component: str, layout: Layout, sources: Sequence[Database], lock_file: str) -> Step:
    """Each replication source's counts, inside its container. The run takes the backups' lock
    (``lock_file``) without waiting, so it holds the backup job's memory slot, never a second one."""
    counted = [(db.name, db.name, db.kind.value, db.ports[0].port, "-") for db in sources]
    return _counts_step(component, layout, "source", counted, lock_file, BACKUP_RUNNER_MEMORY_MIB)


def replica_counts_step(component: str, layout: Layout, replicas: Sequence[ExistingWorkload]) -> Step:
    """Each replica's counts, through its local socket, labelled with its source's name."""
    counted = [
        (w.name, w.replica_of.source, w.replica_of.kind, w.ports[0].port, w.replica_of.replicated_database or "-")
        for w in replicas
        if w.replica_of is not None
    ]
    return _counts_step(component, layout, "replica", counted, "", REPLICA_COUNTS_MEMORY_MIB)


def _counts_step(
    component: str,
    layout: Layout,
    side: str,
    counted: Sequence[tuple[str, str, str, int, str]],
    lock_file: str,
    memory_mib: int,
) -> Step:
    """repl_counts.sh on ``side`` for each (name, source, kind, port, database) in ``counted``."""
    paths = layout.paths

    def column(index: int) -> str:
        return " ".join(str(entry[index]) for entry in counted)

    params = {
        "SIDE": side,
        "NAMES": column(0),
        "SOURCES": column(1),
        "KINDS": column(2),
        "PORTS": column(3),
        "DATABASES": column(4),
        "SECRET_FILES": " ".join(secret_file(entry[0], paths) for entry in counted),
        "PG_SUPERUSER": POSTGRES_SUPERUSER,
        "METRICS_FILE": counts_metrics_file(paths),
        "LOCK_FILE": lock_file,
    }
    script = render([LIB, "repl_counts.sh"], params)
    return counts_check(paths, memory_mib).step(f"{component}-replication-counts", layout, script)
