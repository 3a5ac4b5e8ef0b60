"""How many threads ``threads=None`` means: the CPUs this process may really use.

The affinity mask says which CPUs the process may run on, but a container's CPU
limit (``docker run --cpus 2``, a Kubernetes ``limits.cpu``) is a Linux cgroup
quota instead: every core of the host stays in the mask, and a process that starts
one compression thread per core is throttled. So the count is the smallest of:

- the affinity mask (``os.sched_getaffinity``; ``os.cpu_count`` where there is none);
- the cgroup CPU quota, rounded up: ``cpu.max`` (cgroup v2) or
  ``cpu.cfs_quota_us``/``cpu.cfs_period_us`` (v1), on every level from the process's
  cgroup up to the hierarchy's root, since a parent's quota binds its children too;
- :data:`MAX_THREADS_VAR` from the environment, when set, for the deployments that
  know better (several worker processes sharing a machine).

loky (joblib's process pool) takes the same minimum for its ``cpu_count``, with
``LOKY_MAX_CPU_COUNT`` as its variable.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable

from ._errors import InvalidArgumentError

#: The environment variable capping ``threads=None`` (an int >= 1).
MAX_THREADS_VAR = "ARRAYPICKLE_MAX_THREADS"

_CGROUP_ROOT = "/sys/fs/cgroup"
_PROC_CGROUP = "/proc/self/cgroup"


def usable_cores() -> int:
    """The number of CPUs this process may use: its affinity mask, bounded by a cgroup
    CPU quota (a container's CPU limit) and by ``ARRAYPICKLE_MAX_THREADS`` when set.

    Raises:
        InvalidArgumentError: ``ARRAYPICKLE_MAX_THREADS`` is set to anything but an
            int >= 1.

    Example::

        >>> usable_cores() >= 1
        True
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_limit()
    if quota is not None:
        cores = min(cores, quota)
    cap = os.environ.get(MAX_THREADS_VAR)
    if cap is not None:
        cores = min(cores, _parse_cap(cap))
    return max(1, cores)


def _parse_cap(text: str) -> int:
    try:
        cap = int(text.strip())
    except ValueError:
        cap = 0
    if cap < 1:
        raise InvalidArgumentError(
            f"the environment variable {MAX_THREADS_VAR} must be an int >= 1, got {text!r}"
        )
    return cap


@functools.lru_cache(maxsize=1)
def _cgroup_limit() -> int | None:
    # Read once per process: a quota seldom changes under a running process, and a
    # dump would otherwise open a dozen files to learn it.
    return cgroup_cpu_limit()


def cgroup_cpu_limit(root: str = _CGROUP_ROOT, proc: str = _PROC_CGROUP) -> int | None:
    """The CPUs the cgroup CPU quotas over this process grant, rounded up (at least
    1); None when no level sets a quota, or when none can be read (not Linux, no
    cgroup file system mounted).

    Parameters:
        root: where the cgroup file systems are mounted.
        proc: the process's cgroup membership, as ``/proc/self/cgroup`` lists it.

    Example::

        >>> limit = cgroup_cpu_limit()
        >>> limit is None or limit >= 1
        True
    """
    try:
        with open(proc, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    # Where each hierarchy holding the cpu controller may be mounted, once each (v1's
    # "cpu" is often also mounted, or linked, as "cpu,cpuacct").
    places: dict[tuple[str, str], Callable[[str], int | None]] = {}
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:  # v2: one unified hierarchy
            for mount in (os.path.join(root, "unified"), root):
                places[mount, path] = _v2_quota
        elif "cpu" in controllers.split(","):  # v1: the cpu controller's hierarchy
            for mount in (os.path.join(root, controllers), os.path.join(root, "cpu")):
                places[mount, path] = _v1_quota
    limits = [
        limit
        for (mount, path), quota_of in places.items()
        for limit in _levels(mount, path, quota_of)
    ]
    return min(limits) if limits else None


def _levels(mount: str, path: str, quota_of: Callable[[str], int | None]) -> list[int]:
    """The quotas set on ``path`` and each of its ancestors under ``mount``."""
    if not os.path.isdir(mount):
        return []
    found = []
    parts = [part for part in path.split("/") if part and part not in (".", "..")]
    for depth in range(len(parts), -1, -1):
        limit = quota_of(os.path.join(mount, *parts[:depth]))
        if limit is not None:
            found.append(limit)
    return found


def _v2_quota(directory: str) -> int | None:
    """``cpu.max`` holds "<quota> <period>" in microseconds, or "max <period>"."""
    text = _read(os.path.join(directory, "cpu.max"))
    if text is None:
        return None
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    return _cpus(fields[0], fields[1])


def _v1_quota(directory: str) -> int | None:
    """``cpu.cfs_quota_us`` is -1 when unlimited; ``cpu.cfs_period_us`` beside it."""
    quota = _read(os.path.join(directory, "cpu.cfs_quota_us"))
    period = _read(os.path.join(directory, "cpu.cfs_period_us"))
    if quota is None or period is None:
        return None
    return _cpus(quota, period)


def _cpus(quota: str, period: str) -> int | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    if q <= 0 or p <= 0:  # -1: no quota; anything else unreadable as one
        return None
    return max(1, math.ceil(q / p))


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read(256).strip()
    except (OSError, UnicodeDecodeError):
        return None
