"""The database platform: host check and bootstrap, then one Quadlet container per database, its
backup timer, the weekly restore drill, and (for the databases the peer reaches) TLS, the
replication user, its row counts on a timer and the clients' users.

Order on the host: bootstrap -> TLS files of the TLS engines -> containers -> per source its
replication user, then per MySQL and PostgreSQL its clients' users; per watched database its
exporter's user, per backed-up database its backup timer -> the restore drill. The monitoring
step (program.py) runs after the exporters' users.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi_command import remote

from components.backups import OffHostTarget, backup_step, drill_step, lock_file
from components.clients import STEP_KINDS as CLIENT_STEP_KINDS
from components.clients import clients_stdin, clients_step
from components.engines import data_dir, quadlet_unit, secret_content, secret_file
from components.exporters import exporter_password, exporter_step, redis_acl_line
from components.pki import ReplicationCredentials
from components.provisioning import GUARDS, Step, host_check_params, retire_step_name, run_step
from components.replication import source_counts_step, source_stdin, source_step, tls_dir, tls_stdin, tls_step
from plan import Database, DatabaseKind, HostCheck, Layout, Plan, RetiredDatabase
from policies.facts import DATABASES

# Podman 4.5 is the first whose Quadlet reads PodmanArgs= (the --memory limit).
MIN_PODMAN = "4.5"


@dataclass(frozen=True)
class DatabasesArgs:
    plan: Plan
    connection: remote.ConnectionArgs
    passwords: pulumi.Output[dict[str, str]]
    """Secret: database name -> password."""
    off_host: OffHostTarget | None = None
    """Where the backups are copied (None: local backups only)."""
    off_host_ready: pulumi.Resource | None = None
    """The bucket and the instance's RAM role: the backup timers are installed after them."""
    replication: ReplicationCredentials | None = None
    """The sources' CA, certificates and replication passwords (None: no database is a source)."""


class Databases(pulumi.ComponentResource):
    """Host check and bootstrap, then per database the command that installs its container, and per
    retired database the command that takes it off the host."""

    def __init__(self, name: str, args: DatabasesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        plan = args.plan
        super().__init__(DATABASES, name, {"plan": plan.props()}, opts)
        self._name, self._connection, self._layout = name, args.connection, plan.layout
        self.bootstrap = self._run(bootstrap_step(name, self._layout, plan.host_check, plan.databases))
        credentials = args.replication
        tls = {db.name for db in plan.tls_engines} if credentials is not None else set()
        # The TLS engines' files are on the host before their containers start (they mount them).
        self.tls: remote.Command | None = None
        if credentials is not None and tls:
            stdin = pulumi.Output.secret(_tls_stdin(credentials))
            self.tls = self._run(tls_step(name, self._layout, plan.tls_engines, stdin), self.bootstrap)
        self.containers: dict[str, remote.Command] = {
            db.name: self._run(
                container_step(
                    name,
                    self._layout,
                    db,
                    args.passwords,
                    peer_facing=credentials if db.name in tls else None,
                    exported=db in plan.exported_databases.values(),
                ),
                self.bootstrap,
                *([self.tls] if db.name in tls and self.tls is not None else []),
            )
            for db in plan.databases
        }
        self.sources = self._replication_users(plan, credentials)
        # Each source's row counts on a timer, for the consistency alert (after its replication user).
        self.counts: remote.Command | None = None
        if self.sources:
            counts = source_counts_step(name, self._layout, plan.replication_sources, lock_file(self._layout.paths))
            self.counts = self._run(counts, *self.sources.values())
        self.clients = self._client_users(plan, credentials)
        self.exporters = self._exporter_users(plan, args.passwords)
        self.retirements: dict[str, remote.Command] = {
            retired.name: self._run(retire_step(name, self._layout, retired), self.bootstrap)
            for retired in plan.retired.databases
        }
        self.backups, self.drill = self._backups(plan, args)
        self.register_outputs(
            {
                "containers": list(self.containers),
                "retired": list(self.retirements),
                "backups": list(self.backups),
                "sources": list(self.sources),
                "clients": list(self.clients),
                "exporters": list(self.exporters),
            }
        )

    def _run(self, step: Step, *after: pulumi.Resource) -> remote.Command:
        return run_step(step, self._connection, parent=self, depends_on=after)

    def _replication_users(self, plan: Plan, credentials: ReplicationCredentials | None) -> dict[str, remote.Command]:
        """Per source, its replication user, once its engine runs."""
        if credentials is None:
            return {}
        peer = plan.firewall.peer_address
        return {
            db.name: self._run(
                source_step(
                    self._name,
                    self._layout,
                    peer,
                    db,
                    pulumi.Output.secret(credentials.passwords[db.name].apply(source_stdin)),
                ),
                self.containers[db.name],
            )
            for db in plan.replication_sources
        }

    def _client_users(self, plan: Plan, credentials: ReplicationCredentials | None) -> dict[str, remote.Command]:
        """Per MySQL and PostgreSQL database, its clients' users (and the former clients' logins
        taken away), once its engine runs and its replication user is made."""
        peer = plan.firewall.peer_address
        passwords = credentials.client_passwords if credentials is not None else {}
        return {
            db.name: self._run(
                clients_step(
                    self._name,
                    self._layout,
                    peer,
                    db,
                    pulumi.Output.secret(_resolved(passwords.get(db.name, {})).apply(clients_stdin)),
                ),
                self.containers[db.name],
                *([self.sources[db.name]] if db.name in self.sources else []),
            )
            for db in plan.databases
            if db.kind in CLIENT_STEP_KINDS
        }

    def _exporter_users(self, plan: Plan, passwords: pulumi.Output[dict[str, str]]) -> dict[str, remote.Command]:
        """Per watched database, its exporter's user and credential file, once its engine runs."""
        return {
            exporter: self._run(
                exporter_step(
                    self._name, self._layout, exporter, db, db.name in plan.tls_only, _exporter_stdin(passwords, db)
                ),
                self.containers[db.name],
            )
            for exporter, db in plan.exported_databases.items()
        }

    def _backups(self, plan: Plan, args: DatabasesArgs) -> tuple[dict[str, remote.Command], remote.Command | None]:
        """Per backed-up database its backup timer (after the bucket and role), then one drill for
        all: it restores each backed-up database's latest backup in turn."""
        ready = [args.off_host_ready] if args.off_host_ready is not None else []
        backups = {
            db.name: self._run(
                backup_step(self._name, self._layout, plan.backups, db, args.off_host),
                self.containers[db.name],
                *ready,
            )
            for db in plan.backed_up
        }
        if not backups:
            return backups, None
        drill = drill_step(self._name, self._layout, plan.backups, plan.unscheduled_backups)
        return backups, self._run(drill, *backups.values())


def _resolved(values: Mapping[str, pulumi.Output[str]]) -> pulumi.Output[dict[str, str]]:
    """One Output of a map of Outputs (an empty map too, which ``Output.all`` would make a list)."""
    return pulumi.Output.all(**values) if values else pulumi.Output.from_input({})


def _exporter_stdin(passwords: pulumi.Output[dict[str, str]], db: Database) -> pulumi.Output[str]:
    return pulumi.Output.secret(passwords.apply(lambda values: exporter_password(values[db.name], db)))


def bootstrap_step(name: str, layout: Layout, check: HostCheck, databases: Sequence[Database]) -> Step:
    paths = layout.paths
    params = {
        **host_check_params(check, paths),
        "MIN_PODMAN": MIN_PODMAN,
        "DATA_ROOT": paths.data,
        "QUADLET_DIR": paths.quadlet,
        "SECRETS_DIR": paths.secrets,
        "DATA_DIRS": " ".join(data_dir(db.name, paths) for db in databases),
        "SYSCTL_FILE": f"{paths.sysctl}/99-platform-elasticsearch.conf",
        "NEEDS_ES_SYSCTL": int(any(db.kind == "elasticsearch" for db in databases)),
    }
    files = ("host_check.sh", "db_bootstrap.sh")
    return Step(f"{name}-bootstrap", files, params, label="platform-bootstrap", sudo=layout.sudo)


def _tls_stdin(credentials: ReplicationCredentials) -> pulumi.Output[str]:
    certificates = {
        name: pulumi.Output.all(cert.cert_pem, cert.key_pem).apply(tuple)
        for name, cert in credentials.certificates.items()
    }
    return pulumi.Output.all(credentials.ca_cert_pem, pulumi.Output.all(**certificates)).apply(
        lambda values: tls_stdin(values[0], values[1])
    )


def container_step(
    name: str,
    layout: Layout,
    db: Database,
    passwords: pulumi.Output[dict[str, str]],
    peer_facing: ReplicationCredentials | None = None,
    exported: bool = False,
) -> Step:
    """The database's container; ``peer_facing``: it is a TLS engine (its TLS files mounted; a Redis
    one's auth file also defines the replication user and the clients' users, so their passwords
    join the stdin); ``exported``: an exporter watches it (a Redis one's auth file also defines the
    exporter's user)."""
    paths = layout.paths
    params = {
        "NAME": db.name,
        "IMAGE": db.image,
        "UNIT_FILE": f"{paths.quadlet}/{db.name}.container",
        "UNIT_CONTENT": quadlet_unit(db, paths, tls_dir(db.name, paths) if peer_facing is not None else None),
        "SECRET_FILE": secret_file(db.name, paths),
        "DATA_DIR": data_dir(db.name, paths),
        "PORTS": " ".join(str(p.port) for p in db.ports),
        "STATE_DIR": paths.state,
        "HEALTH_TIMEOUT": db.health_timeout_s,
    }
    # Presence of every password was checked before any resource (plan.check_secrets_present).
    redis_exporter = db.kind == DatabaseKind.REDIS and exported

    def acl(password: str) -> str | None:
        return redis_acl_line(exporter_password(password, db)) if redis_exporter else None

    if peer_facing is not None and db.kind == DatabaseKind.REDIS:
        replication = peer_facing.passwords.get(db.name)
        clients = _resolved(peer_facing.client_passwords.get(db.name, {}))
        stdin = pulumi.Output.all(passwords, replication, clients).apply(
            lambda values: secret_content(db, values[0][db.name], values[1], acl(values[0][db.name]), values[2])
        )
    else:
        stdin = passwords.apply(lambda values: secret_content(db, values[db.name], None, acl(values[db.name])))
    return Step(
        f"{name}-{db.name}",
        files=("db_container.sh",),
        params=params,
        label=f"platform-{db.name}",
        stdin=pulumi.Output.secret(stdin),
        handles_secrets=True,
        sudo=layout.sudo,
    )


def retire_step(name: str, layout: Layout, retired: RetiredDatabase) -> Step:
    """Stop the database and remove its unit and secret; its data goes only with ``purge: true``."""
    paths = layout.paths
    params = {
        "NAME": retired.name,
        "UNIT_FILE": f"{paths.quadlet}/{retired.name}.container",
        "SECRET_FILE": secret_file(retired.name, paths),
        "DATA_ROOT": paths.data,
        "DATA_DIR": data_dir(retired.name, paths),
        "STATE_DIR": paths.state,
        "PURGE": int(retired.purge),
    }
    label = f"platform-retire-{retired.name}"
    return Step(retire_step_name(name, retired.name), (GUARDS, "db_retire.sh"), params, label=label, sudo=layout.sudo)
