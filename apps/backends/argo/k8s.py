"""The ``kubernetes`` client package, for the Argo cluster client.

Imported only when ``cluster.ArgoCluster`` makes its first client: importing
``kubernetes`` takes about 0.3 s, which every Canal process (the CLI, a worker of local
runs) would otherwise pay without talking to a cluster.
"""

import kubernetes
import kubernetes.client
import kubernetes.client.exceptions
import kubernetes.config

__all__ = ["kubernetes"]
