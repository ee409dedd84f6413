"""The platform's CrossGuard policy pack: memory budgets, the port plan, the network, secrets, data, backups.

``POLICIES`` is the pack in the order it reports. ``__main__.py`` only wraps it in a
``PolicyPack`` (which starts a gRPC server and blocks), so tests and ``preflight`` import this
module instead, and run exactly the policy objects the CLI runs.
"""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, Policy

from .backups import backup_waivers, database_backups
from .checkov import default_network, disk_encryption, user_data_secrets
from .data_protection import data_protection
from .egress import egress_least_privilege
from .firewall_plan import firewall_matches_plan
from .memory_budget import memory_budget, memory_headroom
from .port_plan import port_plan
from .public_database import no_public_database
from .replication_tls import replication_over_tls
from .safe_lifecycle import safe_lifecycle
from .secret_hygiene import secret_hygiene
from .services_tls import services_behind_tls

PACK_NAME = "platform-guardrails"
# A policy that names no level of its own is advisory; every policy here names one.
DEFAULT_LEVEL = EnforcementLevel.ADVISORY

POLICIES: tuple[Policy, ...] = (
    memory_budget,
    memory_headroom,
    port_plan,
    firewall_matches_plan,
    no_public_database,
    services_behind_tls,
    egress_least_privilege,
    secret_hygiene,
    data_protection,
    safe_lifecycle,
    database_backups,
    backup_waivers,
    replication_over_tls,
    disk_encryption,
    default_network,
    user_data_secrets,
)
