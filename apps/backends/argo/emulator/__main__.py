"""Start the emulated cluster by hand: ``python -m apps.backends.argo.emulator --port 8011``.

``--s3-endpoint URL --s3-bucket B`` keeps the pods' artifacts in that bucket
(``S3ArtifactRepository``; credentials and region from the ``AWS_*``
variables), as an Argo installation's S3 artifact repository would.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from apps.backends.argo.emulator.emulator import Emulator
from apps.backends.argo.local_runner import ArtifactError, ArtifactRepository
from apps.backends.argo.s3_artifacts import S3ArtifactRepository
from apps.backends.local import LocalBackend


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m apps.backends.argo.emulator",
        description="An emulated Kubernetes API server with Argo Workflows on 127.0.0.1, for tests and "
        "demos. Workflows run through Canal's Argo interpreter; their pods' containers run as sandboxed "
        "host processes with their own root filesystem (the host's programs, not the images').",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8011, help="port (default: 8011; 0 picks a free one)")
    parser.add_argument("--token", help="the bearer token clients must send (default: a random one, printed)")
    parser.add_argument("--namespace", default="default", help="the kubeconfig's default namespace")
    parser.add_argument("--kubeconfig-out", type=Path, help="write a kubeconfig for this cluster here")
    parser.add_argument(
        "--state-dir", type=Path, help="keep objects, pod logs and files here across restarts"
    )
    parser.add_argument(
        "--status-subresource",
        action="store_true",
        help="serve workflows/status (stock Argo's CRD does not, so a real cluster answers 404 there)",
    )
    parser.add_argument(
        "--s3-endpoint",
        metavar="URL",
        help="keep artifacts in an S3-compatible service at this URL (http://127.0.0.1:9000); credentials "
        "and region come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, ...",
    )
    parser.add_argument(
        "--s3-bucket", metavar="BUCKET", help="the artifact repository's bucket (it must exist)"
    )
    parser.add_argument("--terminate-grace", type=float, default=5.0, help="seconds from SIGTERM to SIGKILL")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return parser


def artifact_repository(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> ArtifactRepository | None:
    """The S3 repository the options ask for (its bucket reachable), None for the local one.

    Exits through ``parser.error`` on an unusable option.
    """
    if args.s3_endpoint and not args.s3_bucket:
        parser.error("--s3-endpoint needs --s3-bucket")
    if not args.s3_bucket:
        return None
    try:
        repository = S3ArtifactRepository(args.s3_bucket, endpoint_url=args.s3_endpoint)
        repository.check()
    except (ValueError, ArtifactError) as exc:
        parser.error(str(exc))
    return repository


def main(argv: list[str] | None = None) -> int:
    """Run until interrupted."""
    parser = build_parser()
    args = parser.parse_args(argv)
    artifacts = artifact_repository(parser, args)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(message)s"
    )
    backend = LocalBackend(terminate_grace=args.terminate_grace)
    emulator = Emulator(
        backend=backend,
        token=args.token,
        host=args.host,
        port=args.port,
        state_dir=args.state_dir,
        status_subresource=args.status_subresource,
        artifacts=artifacts,
    )
    emulator.start()
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    auth = f"-H 'Authorization: Bearer {emulator.token}'"
    print(f"Canal's emulated Kubernetes API server (with Argo) listens on {emulator.url}")
    print(f"  bearer token: {emulator.token}")
    if args.s3_bucket:
        print(f"  artifacts:    s3://{args.s3_bucket} at {args.s3_endpoint or 'AWS S3'}")
    else:
        print(f"  artifacts:    {emulator.artifacts_dir}")
    if args.kubeconfig_out is not None:
        path = emulator.write_kubeconfig(args.kubeconfig_out, args.namespace)
        print(f"  kubeconfig:   {path}")
        print(f"  use it:       export CANAL_KUBECONFIG={path} CANAL_ARGO_NAMESPACE={args.namespace}")
        print(f"                kubernetes.config.load_kube_config(config_file='{path}')")
    else:
        print("  (pass --kubeconfig-out PATH to write a kubeconfig for clients)")
    fault = '{"code": 503, "count": 3}'
    print(f"  faults:       curl -X POST {auth} -d '{fault}' {emulator.url}/_emulator/faults")
    print(f"                curl -X DELETE {auth} {emulator.url}/_emulator/faults")
    print(f"                curl -X POST {auth} {emulator.url}/_emulator/controller/restart")
    print("Ctrl-C stops it.", flush=True)
    try:
        while not done.wait(1.0):
            pass
    finally:
        emulator.stop()
        backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
