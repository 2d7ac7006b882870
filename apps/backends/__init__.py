"""Execution backends: pure Python (no Django). A backend runs one step (a
container command) and reports how it ended; ``local`` runs steps as host
processes, ``argo`` submits Argo Workflows to Kubernetes."""
