"""What the peer authenticates with: a CA, a server certificate per TLS engine, a replication
password per source and a password per client of a database.

The replicas and the services verify the engines' certificates against the CA the program
generates here (``verify-full``: the chain and the Alibaba host's address); the replicas log in
as ``replication``, each service as its own user (``plan.Database.clients``), with passwords from
pulumi-random. Private keys and passwords are Pulumi secrets; they reach the hosts only on a
command's stdin (the Tencent host's services through the Alibaba stack's secret outputs).

Lifecycle (pulumi-tls and pulumi-random force no ``replaceOnChanges`` in their SDK
constructors, but their providers replace on any input change, and a certificate's too when
it is due for renewal):

- The CA (``<stack>-replication-ca``) is valid for ten years and due for renewal in its last;
  the server certificates (``<stack>-replication-cert-<db>``) for one year, due in their last
  30 days: the first ``pulumi up`` in that window replaces the certificate, so run ``up`` at
  least monthly. A certificate left to expire stops replication: the health check reports the
  replica down with the TLS error as its last error (no days-left figure yet).
- A replaced certificate or key is a new value on the stdin of ``<stack>-db-tls`` (and of
  the replicas' commands for a new CA): an *update* of those commands, which rewrites the
  files and reloads the engines; the commands themselves are never replaced (no triggers).
- Replace the CA on the Alibaba stack, then run ``up`` on the Tencent stack: until then the
  replicas trust the old CA only and replication pauses (it resumes from where it stopped).
- The keys and passwords have constant inputs: an ordinary change never rotates them. To
  rotate a password, ``pulumi up --replace <its URN>`` on Alibaba, then ``up`` on Tencent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_random as random
import pulumi_tls as tls

from plan import Database
from policies.facts import REPLICATION_CREDENTIALS

# Chosen here: ECDSA P-256 keys, which every engine's TLS library of the default images (chosen
# here; the seeds give no versions: MySQL 8.0, PostgreSQL 16, Redis 7) accepts, with short handshakes.
KEY_ALGORITHM = "ECDSA"
KEY_CURVE = "P256"
HOURS_PER_YEAR = 24 * 365
CA_VALIDITY_HOURS = 10 * HOURS_PER_YEAR
CA_EARLY_RENEWAL_HOURS = HOURS_PER_YEAR
CERT_VALIDITY_HOURS = HOURS_PER_YEAR
CERT_EARLY_RENEWAL_HOURS = 30 * 24
# Chosen here: 32 letters and digits (about 190 bits). No special characters: the password
# lands in MySQL's CHANGE REPLICATION SOURCE ... PASSWORD='...', Redis's `masterauth` line and
# a PostgreSQL conninfo / .pgpass entry, where quotes, backslashes, ':' and spaces each need
# their own escaping; letters and digits need none anywhere.
PASSWORD_LENGTH = 32


@dataclass(frozen=True)
class ReplicationCredentialsArgs:
    sources: tuple[Database, ...]
    """The replication sources (``plan.replication_sources``): a replication password each."""
    tls_engines: tuple[Database, ...]
    """The databases the peer reaches (``plan.tls_engines``): a server certificate each, and a
    password per client."""
    props: dict[str, Any]
    """The plan's props (``plan.props()``), registered for the policy pack."""
    source_address: pulumi.Input[str]
    """The Alibaba host's public address: the replicas connect to it, the certificates name it."""


@dataclass(frozen=True)
class ServerCertificate:
    cert_pem: pulumi.Output[str]
    key_pem: pulumi.Output[str]
    """Secret."""


class ReplicationCredentials(pulumi.ComponentResource):
    """The replication CA, one server certificate per source database, one password per source."""

    ca_cert_pem: pulumi.Output[str]
    certificates: dict[str, ServerCertificate]
    passwords: dict[str, pulumi.Output[str]]
    """Secret: source database name -> the replication user's password."""
    client_passwords: dict[str, dict[str, pulumi.Output[str]]]
    """Secret: database name -> client (a service of the peer) -> its user's password."""

    def __init__(self, name: str, args: ReplicationCredentialsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(REPLICATION_CREDENTIALS, name, {"plan": args.props}, opts)
        child = pulumi.ResourceOptions(parent=self)
        ca_key = tls.PrivateKey(f"{name}-ca-key", algorithm=KEY_ALGORITHM, ecdsa_curve=KEY_CURVE, opts=child)
        ca = tls.SelfSignedCert(
            f"{name}-ca",
            private_key_pem=ca_key.private_key_pem,
            is_ca_certificate=True,
            subject=tls.SelfSignedCertSubjectArgs(common_name=f"{name} CA", organization="platform"),
            allowed_uses=["cert_signing", "crl_signing"],
            validity_period_hours=CA_VALIDITY_HOURS,
            early_renewal_hours=CA_EARLY_RENEWAL_HOURS,
            opts=child,
        )
        self.ca_cert_pem = ca.cert_pem
        self.certificates = {
            db.name: self._server_certificate(name, db, ca_key, ca, args.source_address) for db in args.tls_engines
        }
        # Named outside the component's prefix, as the contract names them: <stack>-repl-password-<db>,
        # <stack>-client-password-<db>-<service>.
        stack = pulumi.get_stack()
        self.passwords = {db.name: self._password(f"{stack}-repl-password-{db.name}") for db in args.sources}
        self.client_passwords = {
            db.name: {client: self._password(f"{stack}-client-password-{db.name}-{client}") for client in db.clients}
            for db in args.tls_engines
            if db.clients
        }
        self.register_outputs(
            {
                "ca_cert_pem": self.ca_cert_pem,
                "certificates": list(self.certificates),
                "passwords": list(self.passwords),
                "client_passwords": {db: list(clients) for db, clients in self.client_passwords.items()},
            }
        )

    def _password(self, name: str) -> pulumi.Output[str]:
        return pulumi.Output.secret(
            random.RandomPassword(
                name,
                length=PASSWORD_LENGTH,
                special=False,
                min_lower=1,
                min_upper=1,
                min_numeric=1,
                opts=pulumi.ResourceOptions(parent=self),
            ).result
        )

    def _server_certificate(
        self,
        name: str,
        db: Database,
        ca_key: tls.PrivateKey,
        ca: tls.SelfSignedCert,
        address: pulumi.Input[str],
    ) -> ServerCertificate:
        """A key and a certificate of its own per engine: a key read out of one container opens no other."""
        child = pulumi.ResourceOptions(parent=self)
        key = tls.PrivateKey(f"{name}-key-{db.name}", algorithm=KEY_ALGORITHM, ecdsa_curve=KEY_CURVE, opts=child)
        request = tls.CertRequest(
            f"{name}-csr-{db.name}",
            private_key_pem=key.private_key_pem,
            # The address as the SAN (what verify-full checks) and as the CN (for clients that read only that).
            ip_addresses=[address],
            subject=tls.CertRequestSubjectArgs(common_name=address, organization="platform"),
            opts=child,
        )
        cert = tls.LocallySignedCert(
            f"{name}-cert-{db.name}",
            cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=ca_key.private_key_pem,
            ca_cert_pem=ca.cert_pem,
            allowed_uses=["digital_signature", "key_encipherment", "server_auth"],
            validity_period_hours=CERT_VALIDITY_HOURS,
            early_renewal_hours=CERT_EARLY_RENEWAL_HOURS,
            opts=child,
        )
        return ServerCertificate(cert_pem=cert.cert_pem, key_pem=pulumi.Output.secret(key.private_key_pem))
