"""The application platform: native services under systemd, deployed batch by batch, and the
host's existing engines that follow the Alibaba databases (``replicaOf``).

Batch N+1 depends on every command of batch N; a deploy command fails when its service
does not answer its health path in time (after rolling back), so a failed batch stops the
later ones. The replicas do not wait for the services (nor they for them).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pulumi
from pulumi_command import remote

from components.formats import unit_assignment, unit_value, unit_word
from components.provisioning import GUARDS, Step, host_check_params, retire_step_name, run_step
from components.replication import health_step, replica_counts_step, replica_stdin, replica_step
from components.uploads import LocalRelease, host_artifact, remote_path
from plan import (
    NAMESPACE,
    REPLICATION_USER,
    ExistingWorkload,
    HostCheck,
    Layout,
    Paths,
    Plan,
    Proxy,
    RetiredService,
    Runtime,
    Service,
    database_variable,
)
from policies.facts import SERVICES

# Chosen here: the uv the hosts build the Python services' virtualenvs with (the Makefile's).
HOST_UV_VERSION = "0.13.9"


@dataclass(frozen=True)
class ReplicationSource:
    """The Alibaba stack's replication outputs, as its StackReference reads them."""

    stack: str
    replication: pulumi.Output[Any]
    """``{"caCert", "sourceAddress", "sources": {db: {"kind", "port", "user", "database"}}}``."""
    passwords: pulumi.Output[Any]
    """Secret: source database -> the replication user's password."""


@dataclass(frozen=True)
class DatabaseEndpoints:
    """The Alibaba stack's database outputs, as its StackReference reads them."""

    stack: str
    databases: pulumi.Output[Any]
    """``{name: {"kind", "host", "port", "tls", "caCert", "clients": {service: {"user", "database",
    "keyPrefix"}}}}`` (program.py: export_databases)."""
    passwords: pulumi.Output[Any]
    """Secret: database name -> service -> the password of its user."""


@dataclass(frozen=True)
class ServicesArgs:
    plan: Plan
    connection: remote.ConnectionArgs
    replication_source: ReplicationSource | None = None
    """Required when the plan has replicas (``plan.replicas``)."""
    databases: DatabaseEndpoints | None = None
    """Required when a service lists databases."""
    secrets: pulumi.Output[Any] | None = None
    """Secret: ``platform:serviceSecrets`` (name -> value); required when a service lists secrets."""
    uploads: Mapping[str, LocalRelease] = field(default_factory=dict)
    """Each service with ``release.upload``: its file on this machine (components/uploads.py)."""


class Services(pulumi.ComponentResource):
    """Host check and bootstrap, then per service its deploy command, batch by batch, and per
    retired service the command that takes it off the host."""

    def __init__(self, name: str, args: ServicesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        plan = args.plan
        super().__init__(SERVICES, name, {"plan": plan.props()}, opts)
        layout = plan.layout
        self.bootstrap = run_step(
            bootstrap_step(name, layout, plan.host_check, plan.services), args.connection, parent=self
        )
        self.deploys: dict[str, remote.Command] = {}
        self.uploads: dict[str, remote.CopyToRemote] = {}
        gate: list[pulumi.Resource] = [self.bootstrap]
        by_name = {s.name: s for s in plan.services}
        for batch in plan.batches:
            commands = [self._deploy(name, layout, by_name[service], args, gate) for service in batch]
            self.deploys.update(zip(batch, commands, strict=True))
            gate = list(commands)
        self.proxy: remote.Command | None = None
        if plan.proxy is not None:
            # After the last batch: the routes lead to services that passed their health checks.
            self.proxy = run_step(
                proxy_step(name, layout, plan.proxy, plan.services), args.connection, parent=self, depends_on=gate
            )
        self.retirements: dict[str, remote.Command] = {
            retired.name: run_step(
                retire_step(name, layout, retired), args.connection, parent=self, depends_on=[self.bootstrap]
            )
            for retired in plan.retired.services
        }
        self.replicas: dict[str, remote.Command] = {}
        self.health: remote.Command | None = None
        self.counts: remote.Command | None = None
        if plan.replicas:
            self._replicas(name, plan, args)
        self.register_outputs(
            {"deploys": list(self.deploys), "retired": list(self.retirements), "replicas": list(self.replicas)}
        )

    def _deploy(
        self, name: str, layout: Layout, service: Service, args: ServicesArgs, gate: list[pulumi.Resource]
    ) -> remote.Command:
        """The service's upload (a local release), then its deploy command."""
        artifact = ArtifactSource(service.release.artifact or "", service.release.sha256 or "")
        depends_on = list(gate)
        local = args.uploads.get(service.name)
        if service.release.upload is not None:
            if local is None:
                raise pulumi.RunError(f"{NAMESPACE}:services: {service.name}'s upload was not resolved")
            artifact = ArtifactSource(host_artifact(layout.paths, service, local), local.sha256)
            upload = remote.CopyToRemote(
                f"{name}-{service.name}-upload",
                connection=args.connection,
                source=pulumi.FileArchive(local.source) if local.directory else pulumi.FileAsset(local.source),
                remote_path=remote_path(layout.paths, service),
                # Nothing to delete: the deploy removes what it no longer needs. An unchanged release
                # uploads nothing (the provider copies only when the source's hash or the path changes).
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=[self.bootstrap], retain_on_delete=True, protect=False
                ),
            )
            self.uploads[service.name] = upload
            depends_on.append(upload)
        stdin = self._credentials(service, args)
        step = replace(deploy_step(name, layout, service, artifact), stdin=stdin, handles_secrets=stdin is not None)
        resolved = None
        if service.databases:  # the unit holds the endpoints the Alibaba stack exports
            if args.databases is None:  # the plan requires databaseStack with any service databases
                raise pulumi.RunError(f"{NAMESPACE}:databaseStack: required for {service.name}'s databases")
            source = args.databases
            resolved = source.databases.apply(
                lambda offered: deploy_step(
                    name, layout, service, artifact, select_endpoints(service, source.stack, offered)
                )
            )
        return run_step(step, args.connection, parent=self, depends_on=depends_on, resolved=resolved)

    def _credentials(self, service: Service, args: ServicesArgs) -> pulumi.Output[str] | None:
        """The deploy's stdin: each credential's value (the service's secrets, its databases'
        passwords and CA certificates)."""
        if not service.secrets and not service.databases:
            return None
        secrets: pulumi.Input[Any] = args.secrets if args.secrets is not None else {}
        passwords: pulumi.Input[Any] = args.databases.passwords if args.databases is not None else {}
        offered: pulumi.Input[Any] = args.databases.databases if args.databases is not None else {}
        values = pulumi.Output.all(secrets, passwords, offered).apply(
            lambda values: credentials_stdin(service, values[0] or {}, values[1] or {}, values[2] or {})
        )
        return pulumi.Output.secret(values)

    def _replicas(self, name: str, plan: Plan, args: ServicesArgs) -> None:
        source = args.replication_source
        if source is None:  # the plan requires replication.sourceStack with any replicaOf
            raise pulumi.RunError(f"{NAMESPACE}:databaseStack: required for the replicas")
        peer = plan.firewall.peer_address
        for index, workload in enumerate(plan.existing):
            if workload.replica_of is None:
                continue
            stdin = pulumi.Output.all(source.replication, source.passwords).apply(
                lambda values, index=index, workload=workload: _replica_stdin(peer, index, workload, *values)
            )
            self.replicas[workload.name] = run_step(
                replica_step(
                    name, plan.layout, peer, workload, replica_source(workload, peer), pulumi.Output.secret(stdin)
                ),
                args.connection,
                parent=self,
                depends_on=[self.bootstrap],
            )
        self.health = run_step(
            health_step(name, plan.layout, plan.replicas),
            args.connection,
            parent=self,
            depends_on=list(self.replicas.values()),
        )
        self.counts = run_step(
            replica_counts_step(name, plan.layout, plan.replicas),
            args.connection,
            parent=self,
            depends_on=list(self.replicas.values()),
        )


def replica_source(workload: ExistingWorkload, peer_address: str) -> dict[str, Any]:
    """Where ``workload`` replicates from, as the plan declares it (its ``host``, else the peer): known
    before any stack is read, so the replica's command text is too; ``_replica_stdin`` checks it
    against the Alibaba stack's outputs."""
    replica = workload.replica_of
    if replica is None:
        raise ValueError(f"{workload.name} has no replicaOf")
    return {
        "kind": replica.kind,
        "port": replica.source_port,
        "user": REPLICATION_USER,
        "database": replica.replicated_database,
        "sourceAddress": replica.host or peer_address,
    }


def _replica_stdin(
    peer_address: str,
    index: int,
    workload: ExistingWorkload,
    replication: Mapping[str, Any],
    passwords: Mapping[str, Any],
) -> str:
    """The replica's stdin (password and CA), once the Alibaba stack's outputs agree with the plan."""
    replica = workload.replica_of
    assert replica is not None
    where = f"{NAMESPACE}:existing[{index}].replicaOf"
    sources = replication.get("sources") or {}
    if replica.source not in sources or replica.source not in passwords:
        offered = ", ".join(sorted(sources)) or "none"
        raise pulumi.RunError(
            f"{where}.source: {replica.source!r} is not a replication source of the Alibaba stack (it offers: "
            f"{offered}); list it in its platform:replication.sources and run `pulumi up` there first"
        )
    offered = sources[replica.source]
    declared = replica_source(workload, peer_address)
    for key, declared_key in (("kind", "kind"), ("port", "port")):
        if offered.get(key) is not None and _same(offered[key], declared[key]) is False:
            raise pulumi.RunError(
                f"{where}.{declared_key}: the plan says {declared[key]!r}, the Alibaba stack's {replica.source} is "
                f"{offered[key]!r}; make them agree"
            )
    if replication.get("sourceAddress") != declared["sourceAddress"]:
        raise pulumi.RunError(
            f"{where}: the Alibaba stack's address is {replication.get('sourceAddress')!r}, not the peer "
            f"{declared['sourceAddress']!r} (firewall.peerAddress): the replica follows the peer only"
        )
    return replica_stdin(str(passwords[replica.source]), str(replication["caCert"]))


def _same(offered: Any, declared: Any) -> bool:
    """Equal, whatever JSON made of a number (a port may come back as 3306.0)."""
    if isinstance(declared, int) and isinstance(offered, int | float):
        return float(offered) == float(declared)
    return offered == declared


def bootstrap_step(name: str, layout: Layout, check: HostCheck, services: Sequence[Service]) -> Step:
    paths = layout.paths
    params = {
        **host_check_params(check, paths),
        "SERVICES_ROOT": paths.root,
        "UNIT_DIR": paths.units,
        "UPLOADS_DIR": paths.uploads,
        "UPLOADS_OWNER": check.host.ssh_user,
        "UPLOAD_SERVICES": " ".join(s.name for s in services if s.release.upload is not None),
        "UV": uv_path(paths),
        # Only a host with Python services needs uv.
        "UV_VERSION": HOST_UV_VERSION if any(s.runtime == Runtime.PYTHON for s in services) else "",
    }
    files = ("host_check.sh", "svc_bootstrap.sh")
    return Step(f"{name}-bootstrap", files, params, label="platform-bootstrap", sudo=layout.sudo)


@dataclass(frozen=True)
class ArtifactSource:
    """What the deploy fetches: a path on the host or an https URL, and the sha256 it must have."""

    path: str
    sha256: str


def deploy_step(
    name: str,
    layout: Layout,
    service: Service,
    artifact: ArtifactSource | None = None,
    endpoints: Mapping[str, Mapping[str, Any]] | None = None,
) -> Step:
    """``artifact``: default the plan's ``release.artifact``; ``endpoints``: the databases' settings
    (``select_endpoints``), required when the service lists databases."""
    if artifact is None:
        artifact = ArtifactSource(service.release.artifact or "", service.release.sha256 or "")
    python = service.python_runtime
    paths = layout.paths
    params = {
        "NAME": service.name,
        "PORT": service.port,
        "VERSION": service.release.version,
        "ARTIFACT": artifact.path,
        "ARTIFACT_SHA256": artifact.sha256,
        "UPLOADS_DIR": f"{paths.uploads}/{service.name}",
        "RUNTIME": service.runtime.value,
        "START_BINARY": service.start_command.split()[0],
        "UV": uv_path(paths),
        "PYTHON_VERSION": python.version if service.runtime == Runtime.PYTHON else "",
        "LOCK_FILE": python.lock_file if service.runtime == Runtime.PYTHON else "",
        "CREDENTIALS": " ".join(credential_names(service)),
        "CREDENTIALS_DIR": credentials_dir(paths, service),
        "SERVICES_ROOT": paths.root,
        "SERVICE_DIR": f"{paths.root}/{service.name}",
        "UNIT_FILE": f"{paths.units}/platform-{service.name}.service",
        "UNIT_NAME": f"platform-{service.name}.service",
        "UNIT_CONTENT": systemd_unit(service, paths, endpoints or {}),
        "HEALTH_URL": f"http://127.0.0.1:{service.port}{service.health_path}",
        "HEALTH_TIMEOUT": service.health_timeout_s,
        "KEEP_RELEASES": paths.keep_releases,
        "STATE_DIR": paths.state,
    }
    files = (GUARDS, "svc_deploy.sh")
    return Step(f"{name}-{service.name}", files, params, label=f"platform-{service.name}", sudo=layout.sudo)


def uv_path(paths: Paths) -> str:
    """The pinned uv the bootstrap installs (``.runtime`` cannot be a service: names start with a letter)."""
    return f"{paths.root}/.runtime/bin/uv"


def credentials_dir(paths: Paths, service: Service) -> str:
    """The service's credential files: 0600 root, read by systemd's ``LoadCredential=`` only."""
    return f"{paths.secrets}/services/{service.name}"


def credential_names(service: Service) -> tuple[str, ...]:
    """The service's secrets, then per database its user's password and the CA its certificate
    chains to (public, but a file the unit reads like the password)."""
    per_database = (f"{database_variable(db)}_{suffix}" for db in service.databases for suffix in ("PASSWORD", "CA"))
    return (*service.secrets, *per_database)


def credentials_stdin(
    service: Service, secrets: Mapping[str, Any], passwords: Mapping[str, Any], offered: Mapping[str, Any]
) -> str:
    """``NAME BASE64`` per credential, one per line (base64: a value may hold any byte but NUL).
    ``passwords``: the Alibaba stack's ``databaseClientPasswords``; ``offered``: its ``databases``."""
    values = {name: secrets.get(name) for name in service.secrets}
    for db in service.databases:
        values[f"{database_variable(db)}_PASSWORD"] = (passwords.get(db) or {}).get(service.name)
        values[f"{database_variable(db)}_CA"] = (offered.get(db) or {}).get("caCert")
    lines = []
    for credential, value in values.items():
        if value is None:
            raise pulumi.RunError(
                f"{NAMESPACE}:services: {service.name} needs credential {credential}, which has no value "
                "(platform:serviceSecrets, or the Alibaba stack's databaseClientPasswords and databases)"
            )
        lines.append(f"{credential} {base64.b64encode(str(value).encode()).decode()}\n")
    return "".join(lines)


# What a service is told about each database it lists (DB_<NAME>_<FIELD>).
_ENDPOINT_FIELDS = {
    "KIND": "kind",
    "HOST": "host",
    "PORT": "port",
    "USER": "user",
    "NAME": "database",
    "KEY_PREFIX": "keyPrefix",
    "TLS": "tls",
}


def select_endpoints(service: Service, stack: str, offered: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The endpoints of ``service``'s databases among the Alibaba stack's ``databases`` output: the
    engine's address, and the user and database (or key prefix) that stack made for this service."""
    offered = offered or {}
    found: dict[str, dict[str, Any]] = {}
    for db in service.databases:
        if db not in offered:
            names = ", ".join(sorted(offered)) or "none"
            raise pulumi.RunError(
                f"{NAMESPACE}:services: {service.name} lists database {db!r}, which the stack {stack!r} does not "
                f"export (its databases: {names}); fix the name or run `pulumi up` on that stack first"
            )
        endpoint = offered[db]
        client = (endpoint.get("clients") or {}).get(service.name)
        if client is None or not endpoint.get("tls"):
            raise pulumi.RunError(
                f"{NAMESPACE}:services: {service.name} lists database {db!r}, but the stack {stack!r} makes no user "
                f"for it there: add {service.name} to platform:databases[{db}].clients in that stack's file and run "
                "`pulumi up` on it first (a service reaches a database of the other host only as its own user, "
                "over verified TLS)"
            )
        found[db] = {key: endpoint.get(key) for key in ("kind", "host", "port", "tls")} | dict(client)
    return found


def endpoint_environment(endpoints: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    settings: dict[str, str] = {}
    for db, endpoint in endpoints.items():
        prefix = database_variable(db)
        for suffix, key in _ENDPOINT_FIELDS.items():
            value = endpoint.get(key)
            if isinstance(value, float) and value.is_integer():  # JSON made a port a float
                value = int(value)
            if isinstance(value, bool):
                value = "true" if value else "false"
            settings[f"{prefix}_{suffix}"] = "" if value is None else str(value)
    return settings


def retire_step(name: str, layout: Layout, retired: RetiredService) -> Step:
    """Stop and disable the service, remove its unit and its releases."""
    paths = layout.paths
    params = {
        "NAME": retired.name,
        "SERVICES_ROOT": paths.root,
        "SERVICE_DIR": f"{paths.root}/{retired.name}",
        "UNIT_FILE": f"{paths.units}/platform-{retired.name}.service",
        "UNIT_NAME": f"platform-{retired.name}.service",
        "STATE_DIR": paths.state,
        "SECRETS_ROOT": paths.secrets,
        "CREDENTIALS_DIR": f"{paths.secrets}/services/{retired.name}",
        "UPLOADS_ROOT": paths.uploads,
        "UPLOADS_DIR": f"{paths.uploads}/{retired.name}",
    }
    label = f"platform-retire-{retired.name}"
    return Step(retire_step_name(name, retired.name), (GUARDS, "svc_retire.sh"), params, label=label, sudo=layout.sudo)


def service_title(service: Service) -> str:
    return f"{service.name}: {service.description}" if service.description else service.name


def systemd_unit(service: Service, paths: Paths, endpoints: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """The service's unit. Its state and caches live in systemd's ``StateDirectory=`` and
    ``CacheDirectory=`` (``%S``/``%C``: writable under the hardening, kept across restarts and
    releases); ``HOME`` points at the state, ``HF_HOME`` at the cache (the model cache). Secrets
    arrive as credentials (``$CREDENTIALS_DIRECTORY``, ``%d``), never in the unit."""
    service_dir = f"{paths.root}/{service.name}"
    # The plan allows plain words only; quoting keeps the line one argument to sh -c (single
    # quotes, as units written before the renderer have it).
    start_word = unit_word(f"exec {service.start_command}", command=True, quote="'")
    state, cache = f"%S/platform/{service.name}", f"%C/platform/{service.name}"
    environment = {
        "PORT": str(service.port),
        "HOST": "127.0.0.1",  # the proxy is the way in
        **service.environment,
        **endpoint_environment(endpoints or {}),
    }
    if service.runtime == Runtime.PYTHON:
        environment["VIRTUAL_ENV"] = f"{service_dir}/current/.venv"
        environment["PATH"] = f"{service_dir}/current/.venv/bin:/usr/local/bin:/usr/bin:/bin"
    # The unit's own specifiers (%S state, %C cache, %d credentials), written as they are.
    directories = {"HOME": state, "XDG_CACHE_HOME": cache, "HF_HOME": f"{cache}/huggingface"}
    for db in endpoints or {}:
        prefix = database_variable(db)
        directories |= {f"{prefix}_PASSWORD_FILE": f"%d/{prefix}_PASSWORD", f"{prefix}_CA_FILE": f"%d/{prefix}_CA"}
    credentials = [
        f"LoadCredential={name}:{unit_value(credentials_dir(paths, service))}/{name}"
        for name in credential_names(service)
    ]
    return "\n".join(
        [
            "# Managed by Pulumi (platform plan); edits are overwritten.",
            "[Unit]",
            f"Description={unit_value(service_title(service))}",
            "Wants=network-online.target",
            "After=network-online.target",
            "",
            "[Service]",
            "Type=simple",
            f"WorkingDirectory={unit_value(f'{service_dir}/current')}",
            f"ExecStart=/bin/sh -c {start_word}",
            # %-specifiers are the unit's own (%S, %C, %d); values from the plan hold none.
            *(f"Environment={unit_assignment(key, value)}" for key, value in environment.items()),
            *(f"Environment={key}={value}" for key, value in directories.items()),
            *credentials,
            f"MemoryMax={service.memory_mib}M",
            "MemorySwapMax=0",
            "Restart=on-failure",
            "RestartSec=5",
            "DynamicUser=yes",
            f"StateDirectory=platform/{service.name}",
            f"CacheDirectory=platform/{service.name}",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ]
    )


def nginx_config(proxy: Proxy, services: Sequence[Service]) -> str:
    """The proxy's server blocks: HTTP redirected to HTTPS, each service under its route."""
    address = f"{proxy.listen}:" if proxy.listen else ""
    port_suffix = "" if proxy.https_port == 443 else f":{proxy.https_port}"
    lines = [
        "# Managed by Pulumi (platform plan); edits are overwritten.",
        "server {",
        f"    listen {address}{proxy.http_port};",
        f"    server_name {proxy.server_name};",
        f"    return 301 https://$host{port_suffix}$request_uri;",
        "}",
        "",
        "server {",
        f"    listen {address}{proxy.https_port} ssl;",
        f"    server_name {proxy.server_name};",
        f"    ssl_certificate {proxy.certificate};",
        f"    ssl_certificate_key {proxy.certificate_key};",
        "    ssl_protocols TLSv1.2 TLSv1.3;",
        "    ssl_session_cache shared:platform_tls:1m;",
        '    add_header Strict-Transport-Security "max-age=31536000" always;',
        "    client_max_body_size 16m;",
    ]
    for service in sorted(services, key=lambda s: s.proxy_route):
        lines += [
            "",
            f"    location {service.proxy_route} {{",
            f"        proxy_pass http://127.0.0.1:{service.port}/;",
            "        proxy_http_version 1.1;",
            "        proxy_set_header Host $host;",
            "        proxy_set_header X-Real-IP $remote_addr;",
            "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
            "        proxy_set_header X-Forwarded-Proto https;",
            "        proxy_read_timeout 120s;",
            "    }",
        ]
    lines += ["}", ""]
    return "\n".join(lines)


def proxy_step(name: str, layout: Layout, proxy: Proxy, services: Sequence[Service]) -> Step:
    """Nginx's configuration for the services: written, checked with ``nginx -t``, reloaded."""
    params = {
        "CONF_FILE": f"{layout.paths.nginx}/platform-services.conf",
        "CONF_CONTENT": nginx_config(proxy, services),
        "NGINX_UNIT": "nginx.service",
    }
    return Step(f"{name}-proxy", ("svc_proxy.sh",), params, label="platform-proxy", sudo=layout.sudo)
