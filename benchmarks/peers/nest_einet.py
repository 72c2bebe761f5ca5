"""The seed E/I network in NEST with ``iaf_cond_exp``.

brainpy's conductances are relative to the leak conductance; with C_m = 200 pF and
g_L = 10 nS (tau_m = 20 ms) the weights become 6 nS and 67 nS and I_ext = 20 mV becomes
I_e = 200 pA. NEST integrates the whole ODE with adaptive GSL RKF45; brainpy uses
exponential Euler. Timing: build = creating nodes and connecting, compile = 0 (nothing is
compiled), first call = a first ``Simulate``; run = a second ``Simulate`` of the same length.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as c  # noqa: E402

C_M, G_L = 200., 10.


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument('--n', type=int, default=4000)
    ap.add_argument('--steps', type=int, default=10000)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--seed', type=int, default=42)
    args = ap.parse_args(argv)

    import nest
    nest.set_verbosity('M_ERROR')
    nest.ResetKernel()
    nest.SetKernelStatus({'resolution': c.DT, 'local_num_threads': args.threads,
                          'rng_seed': args.seed, 'print_time': False})
    n = args.n
    ne = int(0.8 * n)
    prob = c.K_IN / n
    t0 = time.perf_counter()
    params = dict(V_th=c.V_TH, V_reset=c.V_RESET, E_L=c.V_REST, t_ref=c.TAU_REF, C_m=C_M,
                  g_L=G_L, tau_syn_ex=c.TAU_E, tau_syn_in=c.TAU_I, E_ex=c.E_E, E_in=c.E_I,
                  I_e=c.I_EXT * G_L)
    pop = nest.Create('iaf_cond_exp', n, params=params)
    pop.V_m = nest.random.normal(mean=-55., std=2.)
    rec = nest.Create('spike_recorder')
    conn = {'rule': 'pairwise_bernoulli', 'p': prob}
    nest.Connect(pop[:ne], pop, conn, {'weight': c.W_E * G_L, 'delay': c.DT})
    nest.Connect(pop[ne:], pop, conn, {'weight': -c.W_I * G_L, 'delay': c.DT})
    nest.Connect(pop, rec)
    build_s = time.perf_counter() - t0
    t_sim = args.steps * c.DT
    t0 = time.perf_counter()
    nest.Simulate(t_sim)
    first_s = time.perf_counter() - t0
    first_spikes = rec.n_events
    _, fields = c.timed(lambda: nest.Simulate(t_sim))
    run_s = fields['timed_wall_s']
    c.emit(impl='nest', config=f'iaf_cond_exp, {args.threads} thread(s)', n=n, steps=args.steps,
           integrator='GSL RKF45 (adaptive) for V and g', build_s=build_s, compile_s=0.,
           first_call_s=first_s, run_s=run_s, spikes=rec.n_events - first_spikes,
           **fields, versions={'nest-simulator': nest.__version__})


if __name__ == '__main__':
    main()
