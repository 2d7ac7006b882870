"""Argo Workflows support. ``interpreter``: runs Argo Workflow YAML on one machine (a pure
state machine); ``local_runner``: runs its pods with the sandboxed local backend."""
