"""Reading the one pipeline YAML out of a .zip or .tar.gz upload, in memory.

Nothing is ever extracted to disk: members are only *read*, so traversal and
link tricks could do no harm here, but an archive carrying them is refused all
the same, because it was built to attack some other extractor (Argo's
CVE-2025-62156 zip slip and CVE-2025-66626 symlink bypass).

Selection follows KFP's API server: a member named ``pipeline.yaml`` wins;
otherwise the archive must hold exactly one ``.yaml``/``.yml`` file. Directory
entries and macOS metadata (``__MACOSX/``, ``._*``) are ignored.
"""

from __future__ import annotations

import gzip
import io
import re
import stat
import struct
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from typing import Literal

from .errors import PipelineImportError
from .limits import DEFAULT_LIMITS, ImportLimits

ArchiveKind = Literal["zip", "tar.gz", "tar"]

_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_GZIP_MAGIC = b"\x1f\x8b"
_EOCD = b"PK\x05\x06"
_DRIVE = re.compile(r"[A-Za-z]:")


@dataclass(frozen=True)
class ArchiveMember:
    """The pipeline file found in an archive."""

    name: str
    data: bytes


def sniff_archive(data: bytes) -> ArchiveKind | None:
    """Which archive format the bytes are, by their magic numbers, or None."""
    if data.startswith(_ZIP_MAGICS):
        return "zip"
    if data.startswith(_GZIP_MAGIC):
        return "tar.gz"
    if len(data) >= 262 and data[257:262] == b"ustar":
        return "tar"
    return None


def read_pipeline_member(
    data: bytes, filename: str, kind: ArchiveKind, *, limits: ImportLimits = DEFAULT_LIMITS
) -> ArchiveMember:
    """Return the pipeline YAML member of the archive, or raise PipelineImportError."""
    if kind == "zip":
        return _read_zip(data, filename, limits)
    return _read_tar(data, filename, kind, limits)


def _refuse(filename: str, message: str) -> PipelineImportError:
    return PipelineImportError(message, filename=filename)


def _check_name(name: str, filename: str) -> None:
    """Refuse member names that would escape an extraction directory."""
    if not name or "\x00" in name:
        raise _refuse(filename, f"archive member {name!r} has an empty or NUL-containing name")
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise _refuse(filename, f"archive member '{name}' has an absolute path; refusing the archive")
    if ".." in re.split(r"[/\\]", name):
        raise _refuse(
            filename, f"archive member '{name}' points outside the archive ('..'); refusing the archive"
        )


def _is_yaml(name: str) -> bool:
    return name.lower().endswith((".yaml", ".yml"))


def _is_metadata(name: str) -> bool:
    base = name.rstrip("/").rsplit("/", 1)[-1]
    return name.startswith("__MACOSX/") or base.startswith("._")


def _choose(names: list[str], filename: str, kind: str) -> str:
    """Pick the pipeline file among regular-file member names, KFP's way."""
    if not names:
        raise _refuse(filename, f"the {kind} archive is empty: it holds no files")
    candidates = [n for n in names if not _is_metadata(n) and _is_yaml(n)]
    preferred = [n for n in candidates if n.rsplit("/", 1)[-1] == "pipeline.yaml"]
    if len(preferred) == 1:
        return preferred[0]
    if len(candidates) == 1:
        return candidates[0]
    listing = ", ".join(f"'{n}'" for n in (candidates or names)[:5])
    if len(candidates or names) > 5:
        listing += ", ..."
    if not candidates:
        raise _refuse(filename, f"the {kind} archive holds no .yaml or .yml file (it holds {listing})")
    raise _refuse(
        filename,
        f"the {kind} archive holds {len(candidates)} YAML files ({listing}); it must hold exactly one "
        "pipeline YAML, or one named pipeline.yaml",
    )


def _too_big(filename: str, member: str, limit: int) -> PipelineImportError:
    return _refuse(
        filename,
        f"archive member '{member}' decompresses to more than {limit:,} bytes; refusing a possible zip bomb",
    )


def _zip_entry_count(data: bytes) -> int | None:
    """Entry count from the end-of-central-directory record, read before zipfile parses every entry."""
    pos = data.rfind(_EOCD, max(0, len(data) - 65_557))
    if pos < 0 or pos + 22 > len(data):
        return None
    (total,) = struct.unpack_from("<H", data, pos + 10)
    return None if total == 0xFFFF else int(total)  # 0xFFFF: zip64 keeps the real count elsewhere


def _read_zip(data: bytes, filename: str, limits: ImportLimits) -> ArchiveMember:
    declared = _zip_entry_count(data)
    if declared is not None and declared > limits.max_archive_members:
        raise _refuse(
            filename,
            f"the zip archive has {declared:,} members; at most {limits.max_archive_members} are allowed",
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise _refuse(filename, f"not a valid zip archive ({exc})") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.max_archive_members:
            raise _refuse(
                filename,
                f"the zip archive has {len(infos):,} members; "
                f"at most {limits.max_archive_members} are allowed",
            )
        files: dict[str, zipfile.ZipInfo] = {}
        declared_total = 0
        for info in infos:
            name = info.filename
            _check_name(name, filename)
            # Unix zips keep st_mode in the high 16 bits; the file-type bits may be 0.
            file_type = stat.S_IFMT(info.external_attr >> 16) if info.create_system == 3 else 0
            if file_type:
                if file_type == stat.S_IFLNK:
                    raise _refuse(filename, f"archive member '{name}' is a symbolic link; links are refused")
                if file_type not in (stat.S_IFREG, stat.S_IFDIR):
                    raise _refuse(
                        filename,
                        f"archive member '{name}' is a device, FIFO or socket; only files are allowed",
                    )
            if info.is_dir():
                continue
            if info.flag_bits & 0x1:
                raise _refuse(
                    filename, f"archive member '{name}' is encrypted; encrypted archives are refused"
                )
            declared_total += info.file_size
            if declared_total > limits.max_uncompressed_bytes:
                raise _too_big(filename, name, limits.max_uncompressed_bytes)
            files[name] = info
        chosen = _choose(list(files), filename, "zip")
        try:
            with archive.open(files[chosen]) as member:
                # Bounded read: trust the decompressed byte count, not the header.
                content = member.read(limits.max_uncompressed_bytes + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, ValueError) as exc:
            raise _refuse(filename, f"archive member '{chosen}' is corrupt ({exc})") from None
        if len(content) > limits.max_uncompressed_bytes:
            raise _too_big(filename, chosen, limits.max_uncompressed_bytes)
        return ArchiveMember(name=chosen, data=content)


def _gunzip(data: bytes, filename: str, limit: int) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            raw = stream.read(limit + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise _refuse(filename, f"not a valid gzip file ({exc})") from None
    if len(raw) > limit:
        raise _refuse(
            filename, f"the archive decompresses to more than {limit:,} bytes; refusing a possible gzip bomb"
        )
    return raw


def _open_tar(raw: bytes, filename: str, kind: ArchiveKind) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=io.BytesIO(raw), mode="r:")
    except tarfile.TarError as exc:
        what = "the gzip file does not hold a tar archive" if kind == "tar.gz" else "not a valid tar archive"
        raise _refuse(filename, f"{what} ({exc}); upload a .tar.gz, .tgz, .zip or .yaml file") from None


def _read_tar(data: bytes, filename: str, kind: ArchiveKind, limits: ImportLimits) -> ArchiveMember:
    # The whole tar stream is decompressed into memory first, under the limit, so
    # walking its headers below cannot make gzip inflate more than that.
    raw = _gunzip(data, filename, limits.max_uncompressed_bytes) if kind == "tar.gz" else data
    files: dict[str, tarfile.TarInfo] = {}
    with _open_tar(raw, filename, kind) as archive:
        count = 0
        last = None
        while True:
            try:
                info = archive.next()
            except tarfile.TarError as exc:
                after = f" after member '{last}'" if last else ""
                raise _refuse(filename, f"the tar archive is corrupt{after} ({exc})") from None
            if info is None:
                break
            count += 1
            if count > limits.max_archive_members:
                raise _refuse(filename, f"the tar archive has more than {limits.max_archive_members} members")
            name = info.name
            last = name
            _check_name(name, filename)
            if info.issym() or info.islnk():
                kind_name = "symbolic link" if info.issym() else "hard link"
                raise _refuse(
                    filename,
                    f"archive member '{name}' is a {kind_name} to '{info.linkname}'; links are refused",
                )
            if info.isdev():
                raise _refuse(
                    filename, f"archive member '{name}' is a device or FIFO; only files are allowed"
                )
            if info.isdir():
                continue
            if not info.isreg():
                raise _refuse(
                    filename, f"archive member '{name}' has an unsupported type; only files are allowed"
                )
            files[name] = info
        chosen = _choose(list(files), filename, "tar")
        try:
            # extractfile() only returns a reader over the in-memory tar; nothing touches disk.
            member = archive.extractfile(files[chosen])
            content = member.read() if member is not None else b""
        except (tarfile.TarError, OSError) as exc:
            raise _refuse(filename, f"archive member '{chosen}' is corrupt ({exc})") from None
        return ArchiveMember(name=chosen, data=content)
