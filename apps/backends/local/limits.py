"""Resource limits from the pipeline spec (``set_memory_limit``, ``set_cpu_limit``) for local steps.

Where Canal may create cgroups (it runs as root, or in a delegated cgroup v2
subtree), each step with a limit gets its own cgroup: ``memory.max`` and
``cpu.max`` on cgroup v2, ``memory.limit_in_bytes`` and ``cpu.cfs_quota_us`` on
the v1 hierarchies. A step that exceeds its memory is killed by the kernel's
OOM killer, which the cgroup counts, so the failure names the limit as KFP's
``OOMKilled`` does.

Without cgroups, the step process caps itself: ``RLIMIT_AS`` for memory (an
address-space cap: the limit on top of what the starting interpreter already
maps, so it bounds what the step allocates, not its resident memory), and CPU
affinity to ``ceil(limit)`` CPUs for CPU (whole CPUs only). Both are weaker
than cgroups, and the README says so.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

__all__ = ["CgroupTree", "ResourceLimits", "StepCgroup", "parse_limits", "parse_quantity"]

logger = logging.getLogger(__name__)

_SUFFIXES: dict[str, int | Decimal] = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": 1,
    "k": 10**3,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}
_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?\s*([A-Za-z]{0,2})\s*$")
_CPU_PERIOD_US = 100_000


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes quantity ('650M', '500Mi', '0.5', '250m', '1e3') as a number; ValueError otherwise.

    Written here rather than taken from the ``kubernetes`` package because the
    local backend must not import the whole Kubernetes client to read one field.
    """
    match = _QUANTITY.match(text)
    if not match or match.group(3) not in _SUFFIXES:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    number, exponent, suffix = match.groups()
    try:
        value = Decimal(number) * Decimal(_SUFFIXES[suffix])
        if exponent:
            value *= Decimal(10) ** int(exponent)
    except InvalidOperation:
        raise ValueError(f"not a Kubernetes quantity: {text!r}") from None
    return value


@dataclass(frozen=True)
class ResourceLimits:
    """A step's limits: memory in bytes, CPU in cores, and how the spec wrote them."""

    memory_bytes: int | None = None
    cpu: float | None = None
    memory_text: str = ""
    cpu_text: str = ""

    def __bool__(self) -> bool:
        return self.memory_bytes is not None or self.cpu is not None

    def memory_message(self) -> str:
        """The failure message of a step that went over its memory."""
        return f"the step exceeded its memory limit of {self.memory_text} and was killed (OOMKilled)"


def parse_limits(memory: str = "", cpu: str = "") -> ResourceLimits:
    """Limits from the spec's ``resourceMemoryLimit`` / ``resourceCpuLimit`` texts (empty: none)."""
    memory_bytes = None
    cpu_cores = None
    if memory:
        value = parse_quantity(memory)
        if value <= 0:
            raise ValueError(f"memory limit must be positive: {memory!r}")
        memory_bytes = int(value)
    if cpu:
        value = parse_quantity(cpu)
        if value <= 0:
            raise ValueError(f"CPU limit must be positive: {cpu!r}")
        cpu_cores = float(value)
    return ResourceLimits(memory_bytes=memory_bytes, cpu=cpu_cores, memory_text=memory, cpu_text=cpu)


def _own_cgroups() -> dict[str, str]:
    """Controller -> this process's cgroup path (``''`` is the v2 unified hierarchy)."""
    out: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            out[controller] = path
    return out


def _cgroup_mounts() -> dict[str, str]:
    """Controller -> mount point of its hierarchy ('' for cgroup2)."""
    out: dict[str, str] = {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        fstype, _source, options = [*right.split(), "", "", ""][:3]
        mount_point = fields[4]
        if fstype == "cgroup2":
            out.setdefault("", mount_point)
        elif fstype == "cgroup":
            for option in options.split(","):
                if option in ("memory", "cpu"):
                    out.setdefault(option, mount_point)
    return out


class StepCgroup:
    """One step's cgroup(s): limits written, the step added, OOM kills counted, then removed."""

    def __init__(self, tree: CgroupTree, dirs: dict[str, Path]) -> None:
        self.tree = tree
        self.dirs = dirs  # controller ('' for v2) -> directory

    def add(self, pid: int) -> None:
        """Move ``pid`` (a host pid) into the step's cgroup(s)."""
        for directory in self.dirs.values():
            (directory / "cgroup.procs").write_text(str(pid))

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer killed something of the step."""
        if self.tree.version == 2:
            events = _read_keyed(self.dirs[""] / "memory.events")
            return events.get("oom_kill", 0) > 0
        memory = self.dirs.get("memory")
        if memory is None:
            return False
        return _read_keyed(memory / "memory.oom_control").get("oom_kill", 0) > 0

    def remove(self) -> None:
        """Remove the cgroup(s); best effort (a lingering process keeps one alive until it exits)."""
        for directory in self.dirs.values():
            with contextlib.suppress(OSError):
                directory.rmdir()


def _read_keyed(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    with contextlib.suppress(OSError, ValueError):
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                out[key] = int(value)
    return out


class CgroupTree:
    """Where this process may create per-step cgroups, if anywhere.

    ``root`` (``CANAL_CGROUP_ROOT``) names a delegated cgroup v2 directory to use
    as is. Otherwise: the v1 ``memory`` and ``cpu`` hierarchies when they are
    mounted and writable, else a v2 subtree under this process's own cgroup
    when its controllers can be enabled there.
    """

    def __init__(self, root: str | None = None) -> None:
        self.version = 0
        self.bases: dict[str, Path] = {}
        self.reason = ""
        try:
            self._detect(root)
        except OSError as exc:
            self.version, self.bases = 0, {}
            self.reason = f"cgroups are not writable here ({exc.strerror or exc})"

    @property
    def available(self) -> bool:
        """Whether per-step cgroups can be made."""
        return self.version != 0

    def describe(self) -> str:
        """'cgroup v1 (memory, cpu)', or why there are none."""
        if not self.available:
            return self.reason or "no cgroups"
        return f"cgroup v{self.version} ({', '.join(sorted(c or 'unified' for c in self.bases))})"

    def _detect(self, root: str | None) -> None:
        name = f"canal-steps-{os.getpid()}"
        if root:
            base = Path(root)
            controllers = set((base / "cgroup.controllers").read_text().split())
            if not {"memory", "cpu"} <= controllers:
                self.reason = f"{root} lacks the memory and cpu controllers"
                return
            (base / "cgroup.subtree_control").write_text("+memory +cpu")
            self.version, self.bases = 2, {"": base}
            return
        own, mounts = _own_cgroups(), _cgroup_mounts()
        v1 = {
            c: Path(mounts[c]) / own[c].lstrip("/") / name
            for c in ["memory", "cpu"]
            if c in mounts and c in own
        }
        if "memory" in v1:
            for directory in v1.values():
                directory.mkdir(exist_ok=True)
            self.version, self.bases = 1, v1
            return
        if "" in mounts and "" in own:
            parent = Path(mounts[""]) / own[""].lstrip("/")
            controllers = set((parent / "cgroup.controllers").read_text().split())
            if {"memory", "cpu"} <= controllers:
                base = parent / name
                base.mkdir(exist_ok=True)
                (base / "cgroup.subtree_control").write_text("+memory +cpu")
                self.version, self.bases = 2, {"": base}
                return
        self.reason = "no writable cgroup hierarchy with the memory controller"

    def create(self, step_id: str, limits: ResourceLimits) -> StepCgroup:
        """A new cgroup for one step with ``limits`` written (raises OSError)."""
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", step_id)[:100]
        dirs: dict[str, Path] = {}
        try:
            for controller, base in self.bases.items():
                directory = base / safe
                directory.mkdir(exist_ok=True)
                dirs[controller] = directory
            if self.version == 2:
                directory = dirs[""]
                if limits.memory_bytes is not None:
                    (directory / "memory.max").write_text(str(limits.memory_bytes))
                    with contextlib.suppress(OSError):
                        (directory / "memory.swap.max").write_text("0")
                if limits.cpu is not None:
                    quota = max(1000, int(limits.cpu * _CPU_PERIOD_US))
                    (directory / "cpu.max").write_text(f"{quota} {_CPU_PERIOD_US}")
            else:
                if limits.memory_bytes is not None and "memory" in dirs:
                    (dirs["memory"] / "memory.limit_in_bytes").write_text(str(limits.memory_bytes))
                    memsw = dirs["memory"] / "memory.memsw.limit_in_bytes"
                    if memsw.exists():
                        with contextlib.suppress(OSError):
                            memsw.write_text(str(limits.memory_bytes))
                if limits.cpu is not None and "cpu" in dirs:
                    (dirs["cpu"] / "cpu.cfs_period_us").write_text(str(_CPU_PERIOD_US))
                    quota = max(1000, int(limits.cpu * _CPU_PERIOD_US))
                    (dirs["cpu"] / "cpu.cfs_quota_us").write_text(str(quota))
        except OSError:
            StepCgroup(self, dirs).remove()
            raise
        return StepCgroup(self, dirs)

    def enforces_cpu(self) -> bool:
        """Whether CPU limits are enforced by cgroups (else by affinity)."""
        return self.version == 2 or "cpu" in self.bases


def fallback_policy(limits: ResourceLimits) -> dict[str, int]:
    """What the step applies to itself when there is no cgroup (see the module docstring)."""
    policy: dict[str, int] = {}
    if limits.memory_bytes is not None:
        policy["rlimit_as"] = limits.memory_bytes
    if limits.cpu is not None:
        policy["cpu_count"] = max(1, math.ceil(limits.cpu))
    return policy
