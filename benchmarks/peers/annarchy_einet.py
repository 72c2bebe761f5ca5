"""The seed E/I network in ANNarchy 5 (generated C++, compiled with the machine's g++).

The neuron is the COBA model of ANNarchy's own benchmark, with brainpy's parameters; all
three ODEs use ANNarchy's ``exponential`` method. Timing: build = populations and
projections, compile = ``net.compile()`` (code generation + g++), first call = a first
``simulate``; run = a second ``simulate`` of the same length. One OpenMP thread.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as c  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument('--n', type=int, default=4000)
    ap.add_argument('--steps', type=int, default=10000)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--seed', type=int, default=42)
    args = ap.parse_args(argv)

    import ANNarchy as ann
    n = args.n
    ne = int(0.8 * n)
    prob = c.K_IN / n
    t0 = time.perf_counter()
    net = ann.Network(dt=c.DT, seed=args.seed)
    net.config(num_threads=args.threads)
    coba = ann.Neuron(
        parameters=dict(El=c.V_REST, Vr=c.V_RESET, Erev_exc=c.E_E, Erev_inh=c.E_I, Vt=c.V_TH,
                        tau=c.TAU_M, tau_exc=c.TAU_E, tau_inh=c.TAU_I, I=c.I_EXT),
        equations=[
            'tau * dv/dt = (El - v) + g_exc * (Erev_exc - v) + g_inh * (Erev_inh - v) + I : exponential',
            'tau_exc * dg_exc/dt = - g_exc : exponential',
            'tau_inh * dg_inh/dt = - g_inh : exponential',
        ],
        spike='v >= Vt', reset='v = Vr', refractory=c.TAU_REF)
    pop = net.create(geometry=n, neuron=coba)
    pop.v = ann.Normal(-55., 2.)
    pe = net.connect(pre=pop[:ne], post=pop, target='exc')
    pe.fixed_probability(probability=prob, weights=c.W_E, allow_self_connections=True)
    pi = net.connect(pre=pop[ne:], post=pop, target='inh')
    pi.fixed_probability(probability=prob, weights=c.W_I, allow_self_connections=True)
    mon = net.monitor(pop, ['spike'])
    build_s = time.perf_counter() - t0
    workdir = tempfile.mkdtemp(prefix='halfproj_annarchy_')
    t0 = time.perf_counter()
    net.compile(directory=workdir, silent=True)
    compile_s = time.perf_counter() - t0
    t_sim = args.steps * c.DT
    t0 = time.perf_counter()
    net.simulate(t_sim)
    first_s = time.perf_counter() - t0
    mon.get('spike')  # drop the first run's spikes
    _, fields = c.timed(lambda: net.simulate(t_sim))
    run_s = fields['timed_wall_s']
    spikes = sum(len(v) for v in mon.get('spike').values())
    shutil.rmtree(workdir, ignore_errors=True)
    c.emit(impl='annarchy', config=f'openmp, {args.threads} thread(s)', n=n, steps=args.steps,
           integrator='exponential (per ODE, ANNarchy flag)', build_s=build_s,
           compile_s=compile_s, first_call_s=compile_s + first_s, run_s=run_s, spikes=spikes,
           **fields, versions={'annarchy': ann.__version__})


if __name__ == '__main__':
    main()
