"""Shared bits of the peer scripts: the seed network's numbers and the RESULT line."""
import json
import os
import platform
import resource

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
