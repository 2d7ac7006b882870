"""The local execution backend: steps run as host processes, lightweight Python
components in cached task environments forked from a warm zygote."""

from apps.backends.local.backend import DEFAULT_KFP_VERSION, LocalBackend
from apps.backends.local.prelude import LightweightCommand, PipInstall, parse_lightweight_command
from apps.backends.local.taskenv import EnvSpec, TaskEnv, TaskEnvManager, default_cache_dir

__all__ = [
    "DEFAULT_KFP_VERSION",
    "EnvSpec",
    "LightweightCommand",
    "LocalBackend",
    "PipInstall",
    "TaskEnv",
    "TaskEnvManager",
    "default_cache_dir",
    "parse_lightweight_command",
]
