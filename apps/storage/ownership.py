"""Which storage a namespace owns, decided on normalised locations (pure: no Django).

A run writes its artifacts under ``<pipeline_root>/<pipeline_name>/<run_id>/…`` (see
:func:`run_dir_uri`), and its pipeline root must be a configured root or inside one.
A namespace owns the run directories of its own runs, plus the external prefixes an
administrator allowed for importers; nothing else. :func:`owning_prefix` answers
"which prefix of this URI does the namespace own", given a lookup of the namespace's
runs by id, so the Django side only has to scope that lookup to one namespace.

Locations are compared segment by segment after normalisation, never as raw strings:
``file://`` URIs become local paths, local paths have their symlinks resolved, and
``.``/``..`` segments, queries, fragments, control characters and backslashes are
refused rather than interpreted, so a URI means one place or none.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from apps.storage.paths import UnsafePathError, check_relative, resolve_within, safe_segment

__all__ = [
    "ROOT_SCHEMES",
    "Location",
    "LocationError",
    "RunDir",
    "StorageScope",
    "check_pipeline_root",
    "confine_path",
    "owning_prefix",
    "parse_location",
    "run_dir_uri",
    "run_id_candidates",
    "storage_scope",
]

# The schemes Canal has a store for, so the only ones a pipeline root may use.
ROOT_SCHEMES = frozenset({"", "s3", "minio"})

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")
_RUN_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# A run id is one segment of an artifact URI; a URI with more candidates than this is
# not one Canal wrote, and looking them all up would only cost queries.
MAX_RUN_ID_CANDIDATES = 8


class LocationError(ValueError):
    """A URI or path that does not name exactly one storage location (or is not allowed)."""


@dataclass(frozen=True)
class Location:
    """A normalised storage location: scheme ('' for a local path), authority (bucket or
    host) and path segments. Local paths are absolute and have their symlinks resolved."""

    scheme: str
    authority: str
    segments: tuple[str, ...]

    @property
    def uri(self) -> str:
        """The canonical text form: ``/a/b`` or ``s3://bucket/a/b``."""
        path = "/".join(self.segments)
        if not self.scheme:
            return "/" + path
        return f"{self.scheme}://{self.authority}/{path}" if path else f"{self.scheme}://{self.authority}"

    def contains(self, other: Location) -> bool:
        """Whether ``other`` is this location or lies inside it (segment-wise: ``/a/b``
        does not contain ``/a/bc``)."""
        return (
            self.scheme == other.scheme
            and self.authority == other.authority
            and other.segments[: len(self.segments)] == self.segments
        )

    def overlaps(self, other: Location) -> bool:
        """Whether either location contains the other."""
        return self.contains(other) or other.contains(self)


def parse_location(uri: str, *, resolve_symlinks: bool = True) -> Location:
    """Normalise ``uri`` (an absolute path, ``file://``, or ``scheme://authority/key``).

    Raises LocationError for anything ambiguous: relative paths, ``.``/``..`` segments,
    empty key segments in object-store URIs (``a//b`` is a different key from ``a/b``),
    queries, fragments, credentials, control characters, backslashes, and ``file://``
    URIs naming another host, and ``?``/``#`` anywhere. ``file://`` paths are percent-decoded once, as the
    filesystem store reads them; other URIs are taken literally.
    """
    if not isinstance(uri, str) or not uri:
        raise LocationError("it is empty")
    if _UNSAFE_CHARS.search(uri):
        raise LocationError("it contains a control character or a backslash")
    if "?" in uri or "#" in uri:
        # Some layer (a URL, a client library) would cut them off: refuse, don't guess.
        raise LocationError("it has a query or a fragment ('?' or '#')")
    scheme, authority = "", ""
    if uri.startswith("/"):
        path = uri
    else:
        match = _SCHEME.match(uri)
        if match is None:
            raise LocationError("it must be an absolute path or a URI such as s3://bucket/prefix")
        scheme = match.group(1).lower()
        parts = urlsplit(uri)
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise LocationError("a file:// URI may not name a host")
            path = unquote(parts.path)
            scheme = ""
            if not path.startswith("/") or _UNSAFE_CHARS.search(path):
                raise LocationError("its file:// path is not a clean absolute path")
        else:
            authority = parts.netloc
            if not authority:
                raise LocationError(f"a {scheme}:// URI needs a bucket or host")
            if "@" in authority:
                raise LocationError("it may not carry credentials")
            path = parts.path
    raw = path.split("/")
    segments: list[str] = []
    for index, segment in enumerate(raw):
        if segment in (".", ".."):
            raise LocationError("it has a '.' or '..' segment")
        if segment == "":
            # '//' is one '/' on a filesystem; in an object key it is a different key,
            # so only the leading and trailing slashes of a key are dropped.
            if scheme and 0 < index < len(raw) - 1:
                raise LocationError("it has an empty segment ('//')")
            continue
        segments.append(segment)
    location = Location(scheme, authority, tuple(segments))
    if not scheme and resolve_symlinks:
        real = os.path.realpath(location.uri)
        location = Location("", "", tuple(s for s in real.split("/") if s))
    return location


def run_dir_uri(pipeline_root: str, pipeline_name: str, run_id: str) -> str:
    """``<pipeline_root>/<pipeline_name>/<run_id>``: the directory of one run's artifacts,
    each name one safe path segment (as :func:`apps.storage.build_artifact_uri` writes them)."""
    if not pipeline_root:
        raise ValueError("pipeline_root is empty")
    return "/".join([pipeline_root.rstrip("/"), safe_segment(pipeline_name), safe_segment(run_id)])


@dataclass(frozen=True)
class RunDir:
    """A run as far as ownership goes: its id, pipeline root and pipeline name."""

    run_id: str
    pipeline_root: str
    pipeline_name: str

    def location(self) -> Location | None:
        """Where its artifacts live, normalised; None when its root is not a usable location."""
        if not self.pipeline_root:
            return None
        try:
            return parse_location(
                run_dir_uri(self.pipeline_root, self.pipeline_name or "pipeline", self.run_id)
            )
        except (LocationError, UnsafePathError, ValueError):
            return None


@dataclass(frozen=True)
class StorageScope:
    """The configured pipeline roots and the external prefixes importers may reference."""

    roots: tuple[Location, ...]
    import_prefixes: tuple[Location, ...] = ()

    def root_of(self, location: Location) -> Location | None:
        """The configured root ``location`` lies in (the innermost), or None."""
        found = [root for root in self.roots if root.contains(location)]
        return max(found, key=lambda root: len(root.segments)) if found else None

    def allowed_prefix_of(self, location: Location) -> Location | None:
        """The allowed import prefix ``location`` lies in, or None."""
        return next((prefix for prefix in self.import_prefixes if prefix.contains(location)), None)

    def describe_roots(self) -> str:
        """The allowed roots, for error messages."""
        return ", ".join(root.uri for root in self.roots) or "none configured"

    def describe_prefixes(self) -> str:
        """The allowed import prefixes, for error messages."""
        return ", ".join(prefix.uri for prefix in self.import_prefixes) or "none configured"


def storage_scope(roots: Iterable[str], import_prefixes: Iterable[str] = ()) -> StorageScope:
    """Build the scope from configuration text; LocationError names the first bad entry.

    A root must use a scheme Canal has a store for and may not be ``/``. An import
    prefix may use any scheme but may not overlap a root: that would make every
    namespace's artifacts importable by every other.
    """
    parsed_roots: list[Location] = []
    for text in roots:
        try:
            root = parse_location(text.strip())
        except LocationError as exc:
            raise LocationError(f"pipeline root {text!r}: {exc}") from None
        if root.scheme not in ROOT_SCHEMES:
            raise LocationError(f"pipeline root {text!r}: Canal has no store for {root.scheme}://")
        if not root.scheme and not root.segments:
            raise LocationError(f"pipeline root {text!r}: the filesystem root cannot be a pipeline root")
        if root not in parsed_roots:
            parsed_roots.append(root)
    parsed_prefixes: list[Location] = []
    for text in import_prefixes:
        try:
            prefix = parse_location(text.strip())
        except LocationError as exc:
            raise LocationError(f"import prefix {text!r}: {exc}") from None
        if not prefix.scheme and not prefix.segments:
            raise LocationError(f"import prefix {text!r}: the whole filesystem cannot be importable")
        clash = next((root for root in parsed_roots if root.overlaps(prefix)), None)
        if clash is not None:
            raise LocationError(
                f"import prefix {text!r} overlaps the pipeline root {clash.uri}: it would let every "
                "namespace import every other namespace's artifacts"
            )
        if prefix not in parsed_prefixes:
            parsed_prefixes.append(prefix)
    return StorageScope(tuple(parsed_roots), tuple(parsed_prefixes))


def check_pipeline_root(value: str, scope: StorageScope) -> str:
    """The canonical form of a requested pipeline root, or LocationError naming the
    allowed roots: it must be a configured root or inside one, after normalisation."""
    allowed = scope.describe_roots()
    try:
        location = parse_location(value)
    except LocationError as exc:
        raise LocationError(
            f"pipeline_root {value!r} is not usable ({exc}); use one of the configured roots or a "
            f"directory inside one: {allowed}"
        ) from None
    if location.scheme not in ROOT_SCHEMES or scope.root_of(location) is None:
        raise LocationError(
            f"pipeline_root {value!r} is not one of the configured roots or inside one; allowed: {allowed}"
        )
    return location.uri


def run_id_candidates(location: Location) -> tuple[str, ...]:
    """The segments of ``location`` that could be a run id (UUIDs), outermost first."""
    found = [segment for segment in location.segments if _RUN_ID.match(segment)]
    return tuple(dict.fromkeys(found))[:MAX_RUN_ID_CANDIDATES]


def owning_prefix(
    uri: str,
    *,
    scope: StorageScope,
    runs: Callable[[Sequence[str]], Iterable[RunDir]],
) -> Location | None:
    """The prefix of ``uri`` that a namespace owns, or None when it owns none of it.

    Owned are: the allowed import prefixes, and the run directory of a run that ``runs``
    returns (the caller asks only its namespace's runs with the given ids), when that
    directory lies under a configured root. Anything else, including the artifact root
    itself, other namespaces' run directories and URIs that do not normalise, is not owned.
    """
    try:
        location = parse_location(uri)
    except LocationError:
        return None
    allowed = scope.allowed_prefix_of(location)
    if allowed is not None:
        return allowed
    if scope.root_of(location) is None:
        return None
    candidates = run_id_candidates(location)
    if not candidates:
        return None
    for run in runs(candidates):
        run_dir = run.location()
        if run_dir is not None and scope.root_of(run_dir) is not None and run_dir.contains(location):
            return run_dir
    return None


def confine_path(base: Location, user_path: str) -> Location:
    """``user_path`` (relative, user-supplied) inside ``base``, or UnsafePathError.

    Traversal (also percent-encoded), absolute paths, backslashes, fragments and empty
    segments are refused; on a filesystem the result is resolved (symlinks followed) and
    must still lie inside ``base``'s real path.
    """
    segments = check_relative(user_path)
    if not base.scheme:
        resolved = resolve_within(base.uri, user_path)
        return Location("", "", tuple(s for s in str(resolved).split("/") if s))
    return Location(base.scheme, base.authority, (*base.segments, *segments))
