"""Releases that live on the machine running ``pulumi up`` (``release.upload``): where they are,
their digest, and where the upload puts them on the host.

The digest is computed here, before any resource exists, so a missing or changed file is a
one-line error at preview; the host checks the same digest before it unpacks anything.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from plan import NAMESPACE, Paths, Service

CHUNK = 1 << 20


@dataclass(frozen=True)
class LocalRelease:
    source: str
    """The path as the plan writes it (relative to the project, where the CLI runs the program):
    what the upload's asset names, so the same release reads the same from any checkout."""
    path: Path
    """Absolute, on this machine."""
    sha256: str
    """The file's sha256, or a directory's tree digest (``tree_digest``)."""
    directory: bool


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tree_digest(directory: Path) -> str:
    """The sha256 of ``sha256sum`` over every file, by path in byte order, as svc_deploy.sh computes
    it on the host: ``cd DIR && find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum``."""
    lines = []
    for path in sorted(directory.rglob("*"), key=lambda p: p.relative_to(directory).as_posix().encode()):
        if path.is_symlink():
            raise ValueError(f"{path} is a symbolic link; a release directory holds files and directories only")
        if path.is_file():
            lines.append(f"{file_digest(path)}  ./{path.relative_to(directory).as_posix()}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def resolve(services: Sequence[Service], project: Path) -> dict[str, LocalRelease]:
    """Every service's local release, checked: present, readable, and matching a pinned sha256.

    Raises ``ValueError`` with one line naming the key, the value and what to do.
    """
    found: dict[str, LocalRelease] = {}
    for service in services:
        upload = service.release.upload
        if upload is None:
            continue
        key = f"{NAMESPACE}:services[{service.name}].release.upload"
        path = (project / upload).resolve()
        if not path.is_relative_to(project.resolve()):
            raise ValueError(
                f"{key}: {upload!r} leads out of the project through a symbolic link; copy the release "
                "into the project instead"
            )
        if not path.exists():
            raise ValueError(
                f"{key}: {upload!r} does not exist on this machine (looked for {path}); build the release there "
                "before the preview, or give the service a release.artifact URL and its sha256 instead"
            )
        if not (path.is_file() or path.is_dir()):
            raise ValueError(f"{key}: {upload!r} is neither a file nor a directory")
        try:
            digest = tree_digest(path) if path.is_dir() else file_digest(path)
        except (OSError, ValueError) as error:
            raise ValueError(f"{key}: {upload!r} cannot be read: {error}") from None
        pinned = service.release.sha256
        if pinned is not None and pinned != digest:
            raise ValueError(
                f"{key}: {upload!r} has sha256 {digest}, the plan pins {pinned}: a changed release needs a new "
                "version (and its sha256), or the file is not the one that was built"
            )
        found[service.name] = LocalRelease(source=upload, path=path, sha256=digest, directory=path.is_dir())
    return found


def remote_path(paths: Paths, service: Service) -> str:
    """Where the upload writes the release on the host: one entry per version in the service's own
    directory (the bootstrap makes it, writable by the SSH user)."""
    return f"{paths.uploads}/{service.name}/{service.release.version}"


def host_artifact(paths: Paths, service: Service, local: LocalRelease) -> str:
    """The path the deploy reads: a file is written at the remote path; a directory is copied into
    it under its own name (pulumi-command's CopyToRemote, a source without a trailing slash)."""
    target = remote_path(paths, service)
    return posixpath.join(target, local.path.name) if local.directory else target
