"""What every benchmark here shares: the sides run on the same inputs in the same process, in an
order that rotates at each repetition (so that none is always first, on a cold cache, or last,
on a hot machine), at least three times; each side's min and median are printed, then the ratio
on the last line. Outputs are checked by each benchmark before it reports.
"""

import os
import resource
import statistics
import time

MIN_REPEATS = 3


def cores():
    """The CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _cpu_seconds():
    """User + system CPU seconds of this process and of its finished children."""
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def compare(sides, repeats=MIN_REPEATS):
    """Runs every side `repeats` times, the order rotating at each repetition.

    sides: {name: run(repeat) -> output}. Returns {name: {"wall": [s...], "cpu": [s...],
    "outputs": [output...]}} in the order of `sides`.
    """
    repeats = max(repeats, MIN_REPEATS)
    names = list(sides)
    runs = {name: {"wall": [], "cpu": [], "outputs": []} for name in names}
    for repeat in range(repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            cpu, start = _cpu_seconds(), time.perf_counter()
            output = sides[name](repeat)
            runs[name]["wall"].append(time.perf_counter() - start)
            runs[name]["cpu"].append(_cpu_seconds() - cpu)
            runs[name]["outputs"].append(output)
    return runs


def rates(run, work):
    """(best, median) of `work` units per wall second over a side's repetitions."""
    return work / min(run["wall"]), work / statistics.median(run["wall"])


def report(runs, work, unit, per_core=False):
    """Prints each side's wall seconds (min, median), rate and CPU seconds per unit."""
    scale = cores() if per_core else 1
    for name, run in runs.items():
        best, median = (rate / scale for rate in rates(run, work))
        print(f"{name:<34} wall min {min(run['wall']):7.2f} s, median "
              f"{statistics.median(run['wall']):7.2f} s ({len(run['wall'])} runs) | "
              f"{median:8.2f} {unit}/s{' per core' if per_core else ''} (best {best:.2f}) | "
              f"CPU {statistics.median(run['cpu']) / work:.3f} s per {unit}")


def ratio(runs, ours, theirs, label):
    """Prints `label` with the ratio of the medians' rates, ours / theirs: the last line."""
    value = statistics.median(runs[theirs]["wall"]) / statistics.median(runs[ours]["wall"])
    print(f"{label}: {value:.2f}x")
    return value
