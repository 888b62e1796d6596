"""The stack's images without Docker Hub: stand-in base images, and ours built from docker/.

The upstream images compose.yaml pins cannot be pulled here. Local stand-ins take their names:
Debian's root filesystems (`debootstrap --variant=minbase`) with Debian's Python or Prometheus,
shaped like the real images where our files rely on them (the `python` and `pip` commands and
pip's own site; Prometheus at /bin/prometheus, run as nobody in /prometheus). Our images build
from docker/*.Dockerfile, unchanged, with the build arguments of a user behind a mirror: the
package index is a wheelhouse downloaded on the host (with the host's pip settings) and served
over HTTPS on loopback, its CA given as EXTRA_CA_CERT.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trustme

from tests.stack._engine import CACHE, ROOT, Engine, _run

_RELEASE = "bookworm"
_MIRROR_PORT = 3141
_DROP = ("usr/share/doc", "usr/share/man", "usr/share/locale", "var/cache/apt", "var/lib/apt/lists")


@dataclass(frozen=True)
class StandIn:
    """A local image under an upstream image's name: Debian packages, then shaping commands."""

    name: str
    packages: tuple[str, ...]
    shape: tuple[str, ...]
    changes: tuple[str, ...]


STAND_INS = (
    StandIn(
        "python:3.11.11-slim-bookworm",
        ("python3", "python3-venv", "python3-pip", "python-is-python3", "ca-certificates"),
        # pip installs into the system as in the real image (no PEP 668 marker there).
        ("rm -f /usr/lib/python3*/EXTERNALLY-MANAGED",),
        ("ENV LANG=C.UTF-8", 'CMD ["python3"]'),
    ),
    StandIn(
        "prom/prometheus:v2.53.2",
        ("prometheus", "ca-certificates"),
        # The web UI's JavaScript (200 MB) is not needed for the API; the image's data folder
        # belongs to nobody, as upstream.
        (
            "dpkg --purge --force-depends libjs-moment-timezone",
            "mkdir -p /prometheus && chown 65534:65534 /prometheus",
        ),
        (
            "USER nobody",
            "WORKDIR /prometheus",
            "EXPOSE 9090",
            'ENTRYPOINT ["/bin/prometheus"]',
            'CMD ["--config.file=/etc/prometheus/prometheus.yml",'
            ' "--storage.tsdb.path=/prometheus"]',
        ),
    ),
)


def _rootfs_tar(stand_in: StandIn) -> Path:
    """The stand-in's root filesystem as a tar file, built once by debootstrap."""
    slug = re.sub(r"[^a-z0-9]+", "-", stand_in.name)
    tar = CACHE / "rootfs" / f"{slug}.tar"
    if tar.exists():
        return tar
    tar.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tar.parent) as scratch:
        tree = Path(scratch) / "root"
        include = ",".join(stand_in.packages)
        try:
            _run(
                ["debootstrap", "--variant=minbase", f"--include={include}", _RELEASE, str(tree)],
                timeout_s=900,
            )
            for command in stand_in.shape:
                _run(["chroot", str(tree), "sh", "-c", command])
        finally:
            _unmount_under(tree)
        for folder in _DROP:
            shutil.rmtree(tree / folder, ignore_errors=True)
        partial = tar.with_suffix(".partial")
        _run(["tar", "-C", str(tree), "-cf", str(partial), "."])
        partial.rename(tar)
    return tar


def _unmount_under(tree: Path) -> None:
    """Unmount what a failed debootstrap left mounted in TREE (/proc, /sys), deepest first."""
    mounted = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for point in sorted((m for m in mounted if m.startswith(f"{tree}/")), reverse=True):
        subprocess.run(["umount", "--lazy", point], check=False)


def ensure_stand_ins(engine: Engine) -> None:
    """Import each stand-in the engine does not hold yet (their root filesystems side by side)."""
    missing = [
        stand_in
        for stand_in in STAND_INS
        if engine.docker("image", "inspect", stand_in.name, check=False).returncode != 0
    ]
    with ThreadPoolExecutor() as pool:
        tars = list(pool.map(_rootfs_tar, missing))
    for stand_in, tar in zip(missing, tars, strict=True):
        changes = [arg for change in stand_in.changes for arg in ("--change", change)]
        engine.docker("import", *changes, str(tar), stand_in.name, timeout_s=900)


def _wheelhouse() -> Path:
    """loadgen's dependencies (and its build backend) as wheels, for the pyproject of today."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    house = CACHE / f"wheelhouse-{digest}"
    if house.exists():
        return house
    for old in CACHE.glob("wheelhouse-*"):
        shutil.rmtree(old)
    partial = house.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    download = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:"]
    _run([*download, "--dest", str(partial), str(ROOT), "setuptools>=77"], timeout_s=900)
    partial.rename(house)
    return house


def _simple_index(house: Path, into: Path) -> None:
    """A PEP 503 simple index of the wheelhouse: one folder a project, its files linked."""
    for wheel in house.glob("*.whl"):
        project = re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()
        (into / project).mkdir(parents=True, exist_ok=True)
        (into / project / wheel.name).symlink_to(wheel)


def _mirror_ca() -> trustme.CA:
    """The mirror's CA, kept in CACHE: build arguments that stay the same keep the build cache."""
    cert, key = CACHE / "mirror-ca.pem", CACHE / "mirror-ca.key"
    if not cert.exists():
        ca = trustme.CA()
        key.write_bytes(ca.private_key_pem.bytes())
        cert.write_bytes(ca.cert_pem.bytes())
    return trustme.CA.from_pem(cert.read_bytes(), key.read_bytes())


def _bind_mirror(handler: functools.partial[_QuietHandler]) -> http.server.ThreadingHTTPServer:
    """Bind the mirror to devpi's usual port (the same URL each run), else any free port."""
    try:
        return http.server.ThreadingHTTPServer(("127.0.0.1", _MIRROR_PORT), handler)
    except OSError:
        return http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)


@contextmanager
def package_mirror() -> Iterator[tuple[str, str]]:
    """Serve the wheelhouse as an HTTPS package index on loopback: (index URL, its CA in PEM)."""
    ca = _mirror_ca()
    with tempfile.TemporaryDirectory() as scratch:
        index = Path(scratch) / "simple"
        _simple_index(_wheelhouse(), index)
        server = _bind_mirror(functools.partial(_QuietHandler, directory=scratch))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"https://127.0.0.1:{server.server_port}/simple/", ca.cert_pem.bytes().decode()
        finally:
            server.shutdown()
            server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Requests go unlogged (pytest would show them all)."""


def build_image(engine: Engine, dockerfile: str, tag: str) -> float:
    """Build docker/DOCKERFILE as TAG through the loopback mirror; the seconds it took."""
    started = time.monotonic()
    with package_mirror() as (index_url, ca_pem):
        engine.docker(
            "build",
            "--network=host",
            f"--build-arg=PIP_INDEX_URL={index_url}",
            f"--build-arg=EXTRA_CA_CERT={ca_pem}",
            "--file",
            str(ROOT / "docker" / dockerfile),
            "--tag",
            tag,
            str(ROOT),
            timeout_s=1200,
        )
    return time.monotonic() - started


def image_size_mb(engine: Engine, tag: str) -> float:
    """The image's size as the engine reports it, in MB."""
    size = engine.docker("image", "inspect", "--format={{.Size}}", tag).stdout.strip()
    return int(size) / 1e6


def remove_dangling(engine: Engine) -> None:
    """Drop images that a rebuild left untagged (vfs keeps a full copy of every layer)."""
    engine.docker("image", "prune", "--force", check=False)
