"""Artifact store configuration from Django settings, for the pure storage package."""

from __future__ import annotations

import functools
import logging

from django.conf import settings
from django.core import checks

from apps.storage import LocationError, StorageScope, StoreConfig
from apps.storage import storage_scope as build_scope

logger = logging.getLogger(__name__)


def store_config() -> StoreConfig:
    """The store settings (endpoints). Where a read may go is decided by ownership
    (``storage_scope`` and ``apps.runs.selectors.storage_owned_prefix``), not here."""
    endpoint = settings.CANAL_S3_ENDPOINT_URL or None
    return StoreConfig(
        s3_endpoint_url=endpoint,
        minio_endpoint_url=endpoint,
    )


def _configured() -> tuple[tuple[str, ...], tuple[str, ...]]:
    # The default root is always a configured root: runs without one write there.
    roots = [str(settings.CANAL_PIPELINE_ROOT), *settings.CANAL_PIPELINE_ROOTS]
    return tuple(roots), tuple(settings.CANAL_IMPORT_ALLOWED_PREFIXES)


@functools.lru_cache(maxsize=8)
def _scope(roots: tuple[str, ...], prefixes: tuple[str, ...]) -> StorageScope:
    try:
        return build_scope(roots, prefixes)
    except LocationError as exc:
        # Refuse more, never less: drop the bad entries (the system check reports them
        # loudly) instead of failing every request.
        logger.error("storage configuration: %s; ignoring the invalid entries", exc)
    good_roots: list[str] = []
    for root in roots:
        try:
            build_scope([*good_roots, root])
        except LocationError:
            continue
        good_roots.append(root)
    good_prefixes: list[str] = []
    for prefix in prefixes:
        try:
            build_scope(good_roots, [*good_prefixes, prefix])
        except LocationError:
            continue
        good_prefixes.append(prefix)
    return build_scope(good_roots, good_prefixes)


def storage_scope() -> StorageScope:
    """The configured pipeline roots (``CANAL_PIPELINE_ROOT`` plus ``CANAL_PIPELINE_ROOTS``)
    and the external prefixes importers may use (``CANAL_IMPORT_ALLOWED_PREFIXES``), normalised."""
    roots, prefixes = _configured()
    return _scope(roots, prefixes)


@checks.register(checks.Tags.compatibility)
def check_storage_configuration(**kwargs: object) -> list[checks.CheckMessage]:
    """``manage.py check``: every configured root and import prefix must be usable."""
    roots, prefixes = _configured()
    try:
        build_scope(roots, prefixes)
    except LocationError as exc:
        return [
            checks.Error(
                str(exc),
                hint="Fix CANAL_PIPELINE_ROOT, CANAL_PIPELINE_ROOTS or CANAL_IMPORT_ALLOWED_PREFIXES.",
                id="canal.E101",
            )
        ]
    return []
