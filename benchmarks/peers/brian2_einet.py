"""The seed E/I network in Brian2: cpp_standalone (1 thread) or the cython runtime target.

Timing maps onto ``case.py``'s fields: build = Python-side network construction and code
generation, compile = C++ compile (standalone) or the first run's extra time (cython),
run = the simulation loop of a second run (standalone: the compiled binary run again, its
own ``last_run_info``; cython: a second ``run()`` of the same network).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as c  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument('--target', choices=['cpp_standalone', 'cython'], default='cpp_standalone')
    ap.add_argument('--n', type=int, default=4000)
    ap.add_argument('--steps', type=int, default=10000)
    ap.add_argument('--seed', type=int, default=42)
    args = ap.parse_args(argv)

    import brian2 as b2
    from brian2 import ms, mV
    workdir = tempfile.mkdtemp(prefix='halfproj_brian2_')
    if args.target == 'cpp_standalone':
        b2.set_device('cpp_standalone', directory=workdir, build_on_run=False)
        b2.prefs.devices.cpp_standalone.openmp_threads = 0
        b2.prefs.devices.cpp_standalone.extra_make_args_unix = ['-j2']
    else:
        b2.prefs.codegen.target = 'cython'
    b2.defaultclock.dt = c.DT * ms
    b2.seed(args.seed)

    n = args.n
    ne = int(0.8 * n)
    prob = c.K_IN / n
    t0 = time.perf_counter()
    eqs = '''
    dv/dt = (v_rest - v + I_ext + ge * (E_e - v) + gi * (E_i - v)) / tau_m : volt (unless refractory)
    dge/dt = -ge / tau_e : 1
    dgi/dt = -gi / tau_i : 1
    '''
    ns = dict(v_rest=c.V_REST * mV, I_ext=c.I_EXT * mV, E_e=c.E_E * mV, E_i=c.E_I * mV,
              tau_m=c.TAU_M * ms, tau_e=c.TAU_E * ms, tau_i=c.TAU_I * ms)
    P = b2.NeuronGroup(n, eqs, threshold=f'v >= {c.V_TH}*mV', reset=f'v = {c.V_RESET}*mV',
                       refractory=c.TAU_REF * ms, method='exponential_euler', namespace=ns)
    P.v = '(-55 + 2 * randn()) * mV'
    Ce = b2.Synapses(P[:ne], P, on_pre=f'ge += {c.W_E}', delay=c.DT * ms)
    Ci = b2.Synapses(P[ne:], P, on_pre=f'gi += {c.W_I}', delay=c.DT * ms)
    Ce.connect(p=prob)
    Ci.connect(p=prob)
    mon = b2.SpikeMonitor(P, record=False)
    net = b2.Network(P, Ce, Ci, mon)
    duration = args.steps * c.DT * ms
    res = dict(impl='brian2', config=args.target + (' (1 thread)' if args.target ==
                                                      'cpp_standalone' else ''),
               n=n, steps=args.steps, integrator='exponential_euler (v), exact (g)',
               versions={'brian2': b2.__version__, 'numpy': __import__('numpy').__version__})
    if args.target == 'cpp_standalone':
        net.run(duration, report=None)
        res['build_s'] = time.perf_counter() - t0  # code generation happens in build()
        t0 = time.perf_counter()
        b2.device.build(directory=workdir, compile=True, run=True, debug=False)
        gen_and_first = time.perf_counter() - t0
        compile_s = b2.device.timers['compile']['make'] or 0.
        res['build_s'] += gen_and_first - compile_s - (b2.device.timers['run_binary'] or 0.)
        res['compile_s'] = compile_s
        res['first_call_s'] = compile_s + (b2.device.timers['run_binary'] or 0.)
        # second run of the same compiled binary, as a child we wait for ourselves
        binary = os.path.join(workdir, 'main')

        def second_run():
            proc = subprocess.Popen([binary], cwd=workdir, stdout=subprocess.DEVNULL)
            return os.wait4(proc.pid, 0)

        (_, status, ru), fields = c.timed(second_run)
        res.update(fields)
        if status != 0:
            raise RuntimeError(f'second run of {binary} failed with status {status}')
        with open(os.path.join(workdir, 'results', 'last_run_info.txt')) as f:
            res['run_s'] = float(f.read().split()[0])
        res['peak_rss_mb'] = ru.ru_maxrss / 1024.
        res['rss_note'] = 'the simulation binary alone'
        # after the 2nd run the results dir holds that run's counts
        res['spikes'] = int(mon.num_spikes)
    else:
        res['build_s'] = time.perf_counter() - t0
        t0 = time.perf_counter()
        net.run(duration, report=None)
        res['first_call_s'] = time.perf_counter() - t0
        first_spikes = int(mon.num_spikes)
        _, fields = c.timed(lambda: net.run(duration, report=None))
        res.update(fields)
        res['run_s'] = fields['timed_wall_s']
        res['compile_s'] = max(res['first_call_s'] - res['run_s'], 0.)
        res['spikes'] = int(mon.num_spikes) - first_spikes
    shutil.rmtree(workdir, ignore_errors=True)
    c.emit(**res)


if __name__ == '__main__':
    main()
