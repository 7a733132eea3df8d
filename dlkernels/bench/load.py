"""How much of the CPUs other processes took while something was measured. On a 2-CPU machine any
of it stalls a 2-thread kernel (a parallel region waits for its slowest thread), so a measurement
taken meanwhile is suspect."""

from __future__ import annotations

import os
import time


class CpuShare:
    """CPU time taken by other processes (and by the hypervisor, as steal time) since creation, as
    fractions of all CPUs' time. From /proc/stat (Linux); None elsewhere."""

    def __init__(self):
        self.start = self._snapshot()

    @staticmethod
    def _snapshot():
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        hz = os.sysconf("SC_CLK_TCK")
        user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        times = os.times()
        return {
            "busy": (user + nice + system + irq + softirq) / hz,
            "steal": steal / hz,
            "self": times.user + times.system,
            "wall": time.monotonic(),
        }

    def result(self) -> dict | None:
        end = self._snapshot()
        if self.start is None or end is None:
            return None
        d = {k: end[k] - self.start[k] for k in end}
        capacity = d["wall"] * (os.cpu_count() or 1)
        if capacity <= 0:
            return None
        return {
            "others": round(max(0.0, d["busy"] - d["self"]) / capacity, 3),
            "steal": round(d["steal"] / capacity, 3),
        }


def disturbance(used: dict | None) -> float:
    """The share of the CPUs not ours while measuring (others + steal); 0 when unknown."""
    return used["others"] + used["steal"] if used else 0.0


def loadavg() -> list | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None
