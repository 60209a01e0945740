"""Host metrics collector (psutil): CPU, memory, swap, disks, network, load, processes.

Counters (disk and network bytes) are turned into per-second rates between two samples, so the
first sample after start has no rates. Pseudo file systems (tmpfs, overlay…) are skipped.
"""

from __future__ import annotations

import os
import time
from typing import Any

import psutil

from opsloop.store.telemetry.metrics import MetricSample

_SKIP_FSTYPES = {
    "tmpfs", "devtmpfs", "squashfs", "overlay", "proc", "sysfs", "cgroup", "cgroup2",
    "devpts", "mqueue", "nsfs", "autofs", "tracefs", "debugfs", "securityfs", "fusectl",
}  # fmt: skip


class HostCollector:
    """Take one sample of the host's resources per call to :meth:`sample`."""

    def __init__(self, host: str | None = None) -> None:
        self.host = host or os.uname().nodename
        self._last: dict[str, Any] | None = None
        psutil.cpu_percent(interval=None)  # primes the CPU counter

    def _mounts(self) -> list[Any]:
        seen: set[str] = set()
        out = []
        for part in psutil.disk_partitions(all=False):
            if part.fstype in _SKIP_FSTYPES or part.mountpoint in seen:
                continue
            seen.add(part.mountpoint)
            out.append(part)
        return out

    def sample(self, now: float | None = None) -> list[MetricSample]:
        """One round of samples, stamped ``now`` (default: the current time)."""
        now = time.time() if now is None else now
        base = {"host": self.host}
        out: list[MetricSample] = []

        def add(name: str, value: float, **labels: str) -> None:
            out.append(MetricSample(name, float(value), now, {**base, **labels}))

        add("host_cpu_percent", psutil.cpu_percent(interval=None))
        vm = psutil.virtual_memory()
        add("host_memory_used_bytes", vm.total - vm.available)
        add("host_memory_total_bytes", vm.total)
        add("host_memory_percent", vm.percent)
        sw = psutil.swap_memory()
        add("host_swap_used_bytes", sw.used)
        add("host_swap_percent", sw.percent)
        device_mount: dict[str, str] = {}
        for part in self._mounts():
            try:
                du = psutil.disk_usage(part.mountpoint)
            except OSError:
                continue
            add("host_disk_used_bytes", du.used, mount=part.mountpoint)
            add("host_disk_total_bytes", du.total, mount=part.mountpoint)
            add("host_disk_percent", du.percent, mount=part.mountpoint)
            device_mount[os.path.basename(part.device)] = part.mountpoint
        try:
            load1, load5, load15 = os.getloadavg()
            add("host_load1", load1)
            add("host_load5", load5)
            add("host_load15", load15)
        except OSError:
            pass
        add("host_processes", len(psutil.pids()))

        counters = {"t": now, "disk": {}, "net": {}}
        try:
            io = psutil.disk_io_counters(perdisk=True) or {}
        except (RuntimeError, OSError):
            io = {}
        for dev, c in io.items():
            if dev in device_mount:
                counters["disk"][dev] = (c.read_bytes, c.write_bytes)
        for nic, c in (psutil.net_io_counters(pernic=True) or {}).items():
            counters["net"][nic] = (c.bytes_recv, c.bytes_sent)
        last, self._last = self._last, counters
        if last is not None and now > last["t"]:
            dt = now - last["t"]
            for dev, (r, w) in counters["disk"].items():
                if dev in last["disk"]:
                    r0, w0 = last["disk"][dev]
                    labels = {"device": dev, "mount": device_mount[dev]}
                    add("host_disk_read_bytes_per_s", max(r - r0, 0) / dt, **labels)
                    add("host_disk_write_bytes_per_s", max(w - w0, 0) / dt, **labels)
            for nic, (rx, tx) in counters["net"].items():
                if nic in last["net"]:
                    rx0, tx0 = last["net"][nic]
                    add("host_network_receive_bytes_per_s", max(rx - rx0, 0) / dt, interface=nic)
                    add("host_network_transmit_bytes_per_s", max(tx - tx0, 0) / dt, interface=nic)
        return out
