"""Artifact and log storage: pure Python (no Django). A filesystem store is the
default; an S3-compatible store is chosen by the ``s3://``/``minio://`` scheme."""
