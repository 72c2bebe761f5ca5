"""Run one benchmark case in this process and print one ``RESULT {json}`` line.

Run it in a fresh interpreter per case (``run.py`` does), so that peak RSS and compile
time belong to that case alone.

    python benchmarks/case.py --impl upstream --kernel jit --n 4000 --steps 10000
"""
import argparse
import json
import os
import platform
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def peak_rss_mb():
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(self_kb, child_kb) / 1024.


def cpu_busy_s():
    """Seconds of CPU time all processes on the machine have used so far (from /proc/stat)."""
    try:
        with open('/proc/stat') as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf('SC_CLK_TCK')


def own_cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def wait_for_quiet(max_wait_s=10., window_s=0.5, threshold=0.25):
    """Wait (at most ``max_wait_s``) until other processes use under ``threshold`` cores.

    Returns the cores used by others in the last window. The lock only keeps out other
    locked runs; this keeps a timed call from starting in the middle of someone's build.
    """
    t_end = time.perf_counter() + max_wait_s
    while True:
        b0, o0, t0 = cpu_busy_s(), own_cpu_s(), time.perf_counter()
        if b0 is None:
            return None
        time.sleep(window_s)
        others = ((cpu_busy_s() - b0) - (own_cpu_s() - o0)) / (time.perf_counter() - t0)
        if others < threshold or time.perf_counter() > t_end:
            return others


def versions():
    from importlib import metadata
    out = {'python': platform.python_version()}
    for dist in ('brainpy', 'jax', 'jaxlib', 'numpy', 'brainevent', 'brainpylib', 'taichi',
                 'numba'):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--impl', choices=['upstream', 'plugin'], default='upstream')
    ap.add_argument('--kernel', choices=['jit', 'csr'], default='jit')
    ap.add_argument('--model', choices=['einet', 'multipop'], default='einet')
    ap.add_argument('--n', type=int, default=4000, help='neurons (einet) or per group (multipop)')
    ap.add_argument('--groups', type=int, default=8, help='multipop: number of populations')
    ap.add_argument('--unmerged', action='store_true', help='multipop: HalfProjAlignPost')
    ap.add_argument('--fused', action='store_true', help='plugin: fused merge groups (fused=True)')
    ap.add_argument('--native', action='store_true',
                    help='brainpy_halfproj.use_native_kernels() before building (any impl: it reroutes '
                         "brainevent's kernels, upstream's too)")
    ap.add_argument('--steps', type=int, default=10000, help='steps of dt=0.1 ms per call')
    ap.add_argument('--seed', type=int, default=42)
    ap.add_argument('--pin-self', action='store_true',
                    help='os.sched_setaffinity to one core before importing anything '
                         '(what a script can do in place of taskset)')
    ap.add_argument('--ab', type=int, default=0, metavar='K',
                    help='einet only: build upstream AND plugin in this process and time K '
                         'alternating steady-state calls of each (ignores --impl)')
    ap.add_argument('--calls', type=int, default=0, metavar='K',
                    help='per-call cost of one event kernel: K alternating timed loops of the '
                         "brainevent bridge and the native handler, at 0 %% / 1 %% / 10 %% active inputs")
    ap.add_argument('--compare-programs', action='store_true',
                    help='einet only: trace upstream and plugin, report whether the traced '
                         'programs (jaxprs) are identical up to variable names; no timing')
    args = ap.parse_args(argv)
    if args.fused and args.impl != 'plugin':
        ap.error('--fused needs --impl plugin (upstream has no fused mode)')
    if args.compare_programs:
        return main_compare(args)
    if args.calls:
        return main_calls(args)
    if args.ab:
        return main_ab(args)
    if args.pin_self:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    t_import = time.perf_counter()
    sys.path.insert(0, HERE)
    import brainpy as bp
    import brainpy.math as bm
    import numpy as np
    import workloads

    import brainpy_halfproj
    if args.native:
        brainpy_halfproj.use_native_kernels()
    if args.impl == 'plugin':
        dyn = brainpy_halfproj.dyn
        plugin_file = brainpy_halfproj.__file__
    else:
        dyn = bp.dyn
        plugin_file = None
    import_s = time.perf_counter() - t_import

    bm.set_dt(0.1)
    t0 = time.perf_counter()
    if args.model == 'einet':
        model = workloads.make_einet(dyn, n=args.n, kernel=args.kernel, seed=args.seed, fused=args.fused)
        n_total = args.n
    else:
        model = workloads.make_multipop(dyn, n_groups=args.groups, n_pop=args.n,
                                        merged=not args.unmerged, kernel=args.kernel,
                                        seed=args.seed, fused=args.fused)
        n_total = args.n * args.groups
    build_s = time.perf_counter() - t0
    syn_state, total_state = workloads.state_sizes(model)

    def body(i):
        return bm.sum(model.step_run(i, workloads.I_EXT))

    @bm.jit
    def run(indices):
        return bm.for_loop(body, indices)

    indices = np.arange(args.steps)
    t0 = time.perf_counter()
    jax_block(run(indices))
    first_s = time.perf_counter() - t0
    others_before = wait_for_quiet()
    load1 = os.getloadavg()[0]
    c0, b0 = own_cpu_s(), cpu_busy_s()
    t0 = time.perf_counter()
    counts = np.asarray(jax_block(run(indices + args.steps)))
    run_s = time.perf_counter() - t0
    cpu_s = own_cpu_s() - c0
    others_during = None if b0 is None else ((cpu_busy_s() - b0) - cpu_s) / run_s

    bio_s = args.steps * 0.1e-3
    result = dict(
        impl=args.impl, kernel=args.kernel, pin_self=args.pin_self, model=args.model, n=n_total, steps=args.steps,
        native=args.native, fused=args.fused, kernel_calls_per_step=workloads.kernel_calls_per_step(model, body),
        groups=args.groups if args.model == 'multipop' else None,
        merged=(not args.unmerged) if args.model == 'multipop' else None,
        import_s=import_s, build_s=build_s, first_call_s=first_s,
        compile_s=max(first_s - run_s, 0.), run_s=run_s, s_per_bio_s=run_s / bio_s,
        us_per_step=run_s / args.steps * 1e6, run_cpu_s=cpu_s, loadavg_before_run=load1,
        others_cores_before=others_before, others_cores_during=others_during,
        rate_hz=float(counts.sum()) / n_total / bio_s,
        syn_state_elems=syn_state, state_elems=total_state, state_counter=2,
        peak_rss_mb=peak_rss_mb(), versions=versions(), plugin_file=plugin_file,
        env={k: os.environ[k] for k in sorted(os.environ)
             if k.startswith(('XLA_', 'TI_', 'OMP_', 'JAX_', 'NUMBA_', 'OPENBLAS_', 'MKL_'))},
        kind=platform.machine(),
    )
    print('RESULT ' + json.dumps(result), flush=True)


def main_ab(args):
    """Upstream and plugin in one process, timed calls alternating: ABAB... (then BABA...).

    Process-to-process variation (memory layout, which core, other jobs starting) cancels
    out of each adjacent pair, so small overheads show up with fewer runs.
    """
    if args.pin_self:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    sys.path.insert(0, HERE)
    import brainpy as bp
    import brainpy.math as bm
    import numpy as np
    import workloads

    import brainpy_halfproj
    bm.set_dt(0.1)
    runs, out = {}, dict(impl='ab', kernel=args.kernel, model='einet', n=args.n, steps=args.steps,
                         plugin_file=brainpy_halfproj.__file__, versions=versions())
    for impl, dyn in (('upstream', bp.dyn), ('plugin', brainpy_halfproj.dyn)):
        t0 = time.perf_counter()
        model = workloads.make_einet(dyn, n=args.n, kernel=args.kernel, seed=args.seed)
        out[f'{impl}_build_s'] = time.perf_counter() - t0

        def body(i, model=model):
            return bm.sum(model.step_run(i, workloads.I_EXT))

        run = bm.jit(lambda xs, body=body: bm.for_loop(body, xs))
        t0 = time.perf_counter()
        jax_block(run(np.arange(args.steps)))
        out[f'{impl}_first_call_s'] = time.perf_counter() - t0
        runs[impl] = run
    times = {'upstream': [], 'plugin': []}
    spikes = {'upstream': 0., 'plugin': 0.}
    others = []
    for k in range(args.ab):
        order = ('upstream', 'plugin') if k % 2 == 0 else ('plugin', 'upstream')
        for impl in order:
            wait_for_quiet(max_wait_s=3.)
            idx = np.arange(args.steps) + (k + 1) * args.steps
            b0, c0, t0 = cpu_busy_s(), own_cpu_s(), time.perf_counter()
            counts = np.asarray(jax_block(runs[impl](idx)))
            dt = time.perf_counter() - t0
            if b0 is not None:
                others.append(((cpu_busy_s() - b0) - (own_cpu_s() - c0)) / dt)
            times[impl].append(dt)
            spikes[impl] += float(counts.sum())
    bio_s = args.steps * 0.1e-3 * args.ab
    ratios = [p / u for p, u in zip(times['plugin'], times['upstream'], strict=True)]
    out.update(upstream_run_s=times['upstream'], plugin_run_s=times['plugin'], ratios=ratios,
               median_ratio=float(np.median(ratios)),
               upstream_rate_hz=spikes['upstream'] / args.n / bio_s,
               plugin_rate_hz=spikes['plugin'] / args.n / bio_s,
               others_cores_during=float(np.median(others)) if others else None,
               peak_rss_mb=peak_rss_mb(), pin_self=args.pin_self)
    print('RESULT ' + json.dumps(out), flush=True)


def main_calls(args):
    """Fixed cost per call and cost per active input of one event kernel: bridge against native.

    One JIT layer (or CSR layer) of the seed network's E projection (3200 -> 4000, p = 0.02), called
    ``--steps`` times in a jitted loop on a fixed spike vector with 0 %, 1 % or 10 % of its inputs
    active. The brainevent bridge and the native handler are compiled in this process and timed
    alternately, ``--calls`` times each; medians per call.
    """
    if args.pin_self:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import jax
    import numpy as np

    import brainpy_halfproj as bhp
    sys.path.insert(0, HERE)
    import workloads
    n_pre, n_post = int(args.n * 0.8), args.n
    comm = workloads._comm(args.kernel, n_pre, n_post, workloads.K_IN / args.n, workloads.W_E, args.seed)
    rng = np.random.default_rng(args.seed)
    fractions = (0.0, 0.01, 0.1)
    spikes = {f: jax.numpy.asarray(rng.random(n_pre) < f) for f in fractions}
    paths = ('bridge', 'native') if bhp._compat.event_kernel_library() == 'brainevent' else ('brainpylib',)
    loops = {}
    for path in paths:
        with bhp.native_kernels(path == 'native'):
            for frac in fractions:
                def loop(n, x):
                    # the spikes are an argument and ``x & (i >= 0)`` depends on i: XLA can neither
                    # fold nor hoist the call out of the loop
                    return jax.lax.fori_loop(0, n, lambda i, acc: acc + comm(x & (i >= 0))[i % n_post], 0.)

                f = jax.jit(loop, static_argnums=0)
                jax.block_until_ready(f(args.steps, spikes[frac]))
                loops[path, frac] = f
    times = {key: [] for key in loops}
    for k in range(args.calls):
        for key in (list(loops) if k % 2 == 0 else list(reversed(list(loops)))):
            t0 = time.perf_counter()
            jax.block_until_ready(loops[key](args.steps, spikes[key[1]]))
            times[key].append((time.perf_counter() - t0) / args.steps * 1e6)
    us = {f'{p}/{f}': float(np.median(times[p, f])) for p, f in loops}
    out = dict(impl='calls', kernel=args.kernel, n_pre=n_pre, n_post=n_post, steps=args.steps,
               repeats=args.calls, us_per_call=us, versions=versions(), peak_rss_mb=peak_rss_mb(),
               active={str(f): int(np.asarray(spikes[f]).sum()) for f in fractions})
    for p in paths:
        fixed = us[f'{p}/0.0']
        out[f'{p}_fixed_us'] = fixed
        out[f'{p}_us_per_spike'] = (us[f'{p}/0.1'] - fixed) / max(out['active']['0.1'], 1)
    print('RESULT ' + json.dumps(out), flush=True)


def main_compare(args):
    """Trace one 10-step loop of each network and compare the jaxprs."""
    import collections
    import re
    sys.path.insert(0, HERE)
    import brainpy as bp
    import brainpy.math as bm
    import jax
    import numpy as np
    import workloads

    import brainpy_halfproj
    bm.set_dt(0.1)
    texts, out = {}, dict(impl='compare', kernel=args.kernel, model='einet', n=args.n,
                          versions=versions(), plugin_file=brainpy_halfproj.__file__)
    for impl, dyn in (('upstream', bp.dyn), ('plugin', brainpy_halfproj.dyn)):
        model = workloads.make_einet(dyn, n=args.n, kernel=args.kernel, seed=args.seed)
        def fn(xs, m=model):
            return bm.for_loop(lambda i: bm.sum(m.step_run(i, workloads.I_EXT)), xs)

        texts[impl] = str(jax.make_jaxpr(fn)(np.arange(10)))
        out[f'{impl}_jaxpr_lines'] = len(texts[impl].splitlines())
        out[f'{impl}_state_vars'] = len(model.vars().unique())
        out[f'{impl}_state_elems'] = workloads.state_sizes(model)[1]

    def prims(t):
        return collections.Counter(re.findall(r'= ([a-z_][a-z_0-9]*)\b', t))

    def rename(t):  # jaxpr variable names (a, b, ..., ba, bb) -> v
        return re.sub(r'\b[a-z]{1,3}(?=[:\s)\],])', 'v', t)

    pu, pp = prims(texts['upstream']), prims(texts['plugin'])
    out['primitive_count_diff'] = {k: pp[k] - pu[k] for k in set(pu) | set(pp) if pp[k] != pu[k]}
    out['identical'] = rename(texts['upstream']) == rename(texts['plugin'])
    import difflib
    diff = [line for line in difflib.unified_diff(rename(texts['upstream']).splitlines(),
                                                  rename(texts['plugin']).splitlines(),
                                                  lineterm='', n=0)
            if line[:1] in '+-' and not line.startswith(('+++', '---'))]
    out['differing_lines'] = diff[:12]
    # differences confined to the signatures of the loop (the order of the state variables
    # in the scan carry): the same computation with its carried state listed in another order
    out['same_up_to_state_order'] = all(
        sorted(re.findall(r'[a-z]+\d*\[[\d,]*\]', a)) == sorted(re.findall(r'[a-z]+\d*\[[\d,]*\]', b))
        for a, b in zip([x[1:] for x in diff if x[0] == '-'], [x[1:] for x in diff if x[0] == '+'], strict=False))
    print('RESULT ' + json.dumps(out), flush=True)


def jax_block(x):
    import jax
    return jax.block_until_ready(x)


_COMPILES = []  # one entry per XLA compilation in this process, once compilations_so_far() was called


def compilations_so_far():
    """XLA compilations in this process since the first call (JAX's backend-compile events).

    A timed run must compile nothing: take the difference around it and record it.
    """
    if not hasattr(compilations_so_far, 'listening'):
        import jax

        def listen(name, duration, **kwargs):
            if name == '/jax/core/compile/backend_compile_duration':
                _COMPILES.append(duration)

        jax.monitoring.register_event_duration_secs_listener(listen)
        compilations_so_far.listening = True
    return len(_COMPILES)


if __name__ == '__main__':
    main()
