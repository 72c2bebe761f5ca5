"""Shared bits of the peer scripts: the seed network's numbers and the RESULT line."""
import json
import os
import platform
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from case import cpu_busy_s, wait_for_quiet  # noqa: E402

# Same numbers as ``benchmarks/workloads.py`` (brainpy units: mV, ms; g relative to g_L).
V_REST, V_TH, V_RESET, TAU_M, TAU_REF = -60., -50., -60., 20., 5.
TAU_E, TAU_I, E_E, E_I, W_E, W_I = 5., 10., 0., -80., 0.6, 6.7
I_EXT = 20.
K_IN = 80
DT = 0.1


def peak_rss_mb():
    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024.


def emit(**kw):
    n, steps, run_s = kw['n'], kw['steps'], kw['run_s']
    bio_s = steps * DT * 1e-3
    kw.setdefault('peak_rss_mb', peak_rss_mb())
    kw.update(s_per_bio_s=run_s / bio_s, us_per_step=run_s / steps * 1e6,
              rate_hz=kw.pop('spikes') / n / bio_s, model='einet', kernel=None,
              loadavg_before_run=kw.get('loadavg_before_run'), kind=platform.machine())
    kw['versions'] = dict(kw.get('versions', {}), python=platform.python_version())
    print('RESULT ' + json.dumps(kw), flush=True)


def loadavg():
    return os.getloadavg()[0]


def own_and_children_cpu_s():
    out = 0.
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        out += r.ru_utime + r.ru_stime
    return out


def timed(fn):
    """Call ``fn()`` after waiting for a quiet machine, as ``case.py`` times its run.

    Returns (fn's result, fields for the RESULT line).
    """
    fields = dict(others_cores_before=wait_for_quiet(), loadavg_before_run=loadavg())
    c0, b0, t0 = own_and_children_cpu_s(), cpu_busy_s(), time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    cpu = own_and_children_cpu_s() - c0
    fields.update(run_cpu_s=cpu, others_cores_during=None if b0 is None
                  else ((cpu_busy_s() - b0) - cpu) / wall, timed_wall_s=wall)
    return out, fields
