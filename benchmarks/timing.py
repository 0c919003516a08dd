"""What every benchmark here shares: the sides run on the same inputs in the same process, in an
order that rotates at each repetition (so that none is always first, on a cold cache, or last,
on a hot machine), at least three times and until every side has run MIN_SECONDS in all (a
ratio of sub-second runs moves by a third from one run to the next); each side's min and median
are printed, then the ratio of the medians on the last line with its spread over the
repetitions. Outputs are checked by each benchmark before it reports.
"""

import os
import resource
import statistics
import time

MIN_REPEATS = 3
MIN_SECONDS = 10.0  # each side's wall time over its repetitions, at least (--quick: none)


def cores():
    """The CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _cpu_seconds():
    """User + system CPU seconds of this process and of its finished children."""
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def compare(sides, repeats=MIN_REPEATS, min_seconds=MIN_SECONDS, prepare=None):
    """Runs every side at least `repeats` times and until it has run `min_seconds` in all (a
    fast side more often than a slow one), the order rotating at each repetition.

    sides: {name: run(repeat) -> output}; prepare(name, repeat), when given, runs untimed
    before each run (clearing what an earlier run left, say). Returns {name: {"wall": [s...],
    "cpu": [s...], "outputs": [output...]}} in the order of `sides`.
    """
    repeats = max(repeats, MIN_REPEATS)
    names = list(sides)
    runs = {name: {"wall": [], "cpu": [], "outputs": []} for name in names}

    def wanted(name):
        return len(runs[name]["wall"]) < repeats or sum(runs[name]["wall"]) < min_seconds

    repeat = 0
    while any(wanted(name) for name in names):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            if wanted(name):
                if prepare is not None:
                    prepare(name, repeat)
                cpu, start = _cpu_seconds(), time.perf_counter()
                output = sides[name](repeat)
                runs[name]["wall"].append(time.perf_counter() - start)
                runs[name]["cpu"].append(_cpu_seconds() - cpu)
                runs[name]["outputs"].append(output)
        repeat += 1
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
    """Prints `label` with the ratio of the medians' rates, ours / theirs, and its spread (the
    least and greatest ratio of the two sides' runs of one repetition, over the repetitions
    both ran): the last line."""
    value = statistics.median(runs[theirs]["wall"]) / statistics.median(runs[ours]["wall"])
    each = [t / o for t, o in zip(runs[theirs]["wall"], runs[ours]["wall"])]
    print(f"{label}: {value:.2f}x (spread {min(each):.2f}..{max(each):.2f} over {len(each)} "
          "repetitions)")
    return value
