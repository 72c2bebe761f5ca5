"""Render ``BENCHMARKS.md`` from the JSON files that ``run.py`` writes."""
import json
import os
import statistics

GOAL = """\
## Goal

1. **The plugin adds no measurable overhead**: on each brainpy line, the median paired
   ratio plugin / upstream of steady-state run time is 1.00 within noise (at most 1.01).
2. **The fastest configuration we ship beats every peer measured here** on the seed
   network (time per biological second, one core's worth of work on this machine).

Each table below says how far the measured numbers are from these goals.
"""

NOTES_PEERS = """\
Integrators and model differences (all use the same parameters: tau_m 20 ms, V_th -50,
V_reset -60, refractory 5 ms, Expon synapses tau 5/10 ms, COBA reversal 0/-80 mV,
weights 0.6/6.7 in units of the leak conductance, I_ext 20, 80 expected inputs per neuron,
V0 ~ N(-55, 2), dt 0.1 ms, 1-step (0.1 ms) transmission):

- brainpy: exponential Euler for V (`exp_auto`), exact exponential decay of g; JIT
  connectivity draws a fresh Bernoulli(p) pattern from a seed (no stored synapses), CSR
  stores a `FixedProb` matrix.
- Brian2: `exponential_euler` for v and exact decay of g, Bernoulli(p) `connect(p=...)`,
  `delay = dt`. cpp_standalone with 1 thread (no OpenMP); runtime target = cython.
- NEST `iaf_cond_exp`: adaptive GSL RKF45 integration of the full ODE, C_m 200 pF,
  g_L 10 nS, weights 6 / 67 nS, I_e 200 pA, `pairwise_bernoulli`, delay 0.1 ms, 1 thread.
- ANNarchy 5: see the per-case note (`integrator` field).

Firing rates differ somewhat between simulators: random connectivity differs, and so do
integrators; a rate within a few Hz of brainpy's is "the same regime".
"""


def load(results_dir):
    out = {}
    if not os.path.isdir(results_dir):
        return out
    for fn in sorted(os.listdir(results_dir)):
        if fn.endswith('.json'):
            with open(os.path.join(results_dir, fn)) as f:
                doc = json.load(f)
            if 'records' in doc:  # our sections; others (microcircuit.json) have their own report
                out[doc.get('section', fn[:-5])] = doc
    return out


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def f(x, fmt='{:.2f}'):
    return '–' if x is None else fmt.format(x)


def table(header, rows):
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(str(c) for c in r) + ' |' for r in rows]
    return '\n'.join(lines) + '\n'


def ok(recs):
    return [r for r in recs if 'error' not in r]


def errors(recs):
    seen, out = set(), []
    for r in recs:
        if 'error' in r:
            key = (r.get('impl'), r.get('line'), r.get('kernel'), r['error'][:200])
            if key not in seen:
                seen.add(key)
                what = ' '.join(str(r[k]) for k in ('line', 'impl', 'kernel', 'n') if r.get(k))
                out.append(f'- `{what}`: {r["error"][-600:]}')
    return ('\n**Failed cases**\n\n' + '\n'.join(out) + '\n') if out else ''


def pin(r):
    return 'taskset -c 0' if r.get('pinned') else 'unpinned'


def line_of(r):
    return r.get('line') or r.get('versions', {}).get('brainpy', '?')


def summary_rows(recs, keys):
    """Group ``recs`` by ``keys`` (functions), yield (key values, records)."""
    groups = {}
    for r in ok(recs):
        groups.setdefault(tuple(k(r) for k in keys), []).append(r)
    return groups


def sec_machine(docs):
    doc = next(iter(docs.values()))
    m = doc['machine']
    vers = {}
    for d in docs.values():
        for r in ok(d['records']):
            v = r.get('versions')
            v = {a: b for a, b in (v or {}).items() if a != 'brainpy-halfproj'}
            if v and 'brainpy' in v:
                vers[v['brainpy']] = v
            elif v:
                vers[r.get('impl', '?')] = v
    lines = ["## Machine and versions\n",
             f"- CPU: {m['cpu']} ({m['cores']} cores), {f(m['mem_gib'], '{:.0f}')} GiB RAM, "
             f"{m['os']}; shared with other developers' jobs (timed runs hold "
             f"`flock /tmp/halfproj-cpu.lock`, but not every job on the machine does: see the "
             f"`others (cores)` columns).",
             f"- Code: commit `{m.get('commit', '?')}` of this repository (plugin imported from "
             f"the working tree via PYTHONPATH).",
             "- Generated from results dated: " + ', '.join(
                 f"{k} {d['machine']['date']}" for k, d in docs.items()) + '.']
    for k, v in sorted(vers.items()):
        lines.append(f"- `{k}`: " + ', '.join(f'{a} {b}' for a, b in sorted(v.items())))
    return '\n'.join(lines) + '\n'


def sec_overhead(doc):
    recs = doc['records']
    pairs = {}
    for r in ok(recs):
        pairs.setdefault((line_of(r), pin(r), r['pair']), {})[r['impl']] = r
    groups = {}
    for (line, p, _), d in pairs.items():
        if 'plugin' in d and 'upstream' in d:
            groups.setdefault((line, p), []).append(d)
    rows = []
    for (line, p), ds in sorted(groups.items()):
        ratio = [d['plugin']['run_s'] / d['upstream']['run_s'] for d in ds]
        cratio = [d['plugin']['run_cpu_s'] / d['upstream']['run_cpu_s'] for d in ds]
        bratio = [d['plugin']['build_s'] / d['upstream']['build_s'] for d in ds]
        fratio = [d['plugin']['first_call_s'] / d['upstream']['first_call_s'] for d in ds]
        m = med(ratio)
        rows.append([line, p, len(ds),
                     f(med(d['upstream']['us_per_step'] for d in ds), '{:.1f}'),
                     f(med(d['plugin']['us_per_step'] for d in ds), '{:.1f}'),
                     f'**{m:.3f}**', f'{min(ratio):.3f}–{max(ratio):.3f}',
                     f"{min(d['plugin']['run_s'] for d in ds) / min(d['upstream']['run_s'] for d in ds):.3f}",
                     f(med(cratio), '{:.3f}'), f(med(bratio), '{:.2f}'), f(med(fratio), '{:.2f}'),
                     f"{med(d['upstream']['rate_hz'] for d in ds):.2f} / "
                     f"{med(d['plugin']['rate_hz'] for d in ds):.2f}",
                     quiet_ratio(ds),
                     f(med(pair_others(d) for d in ds), '{:.2f}'),
                     'met' if m <= 1.01 else f'missed by {100 * (m - 1.01):.1f} points'])
    return ('## (a) Plugin overhead against upstream\n\n'
            'Seed network (4000 LifRef, JIT connectivity), 10000 steps per call; steady-state '
            'run time of the second call of the compiled function. Each pair is one upstream '
            'and one plugin process run back to back, alternating which goes first. Ratio = '
            'plugin / upstream, per pair; the table gives the median over pairs, the ratio of '
            'the fastest run of each, and the median ratio of process CPU time during the '
            'timed call (less sensitive to other jobs on the machine), and the median over the '
            'pairs in which neither timed call shared the CPU with other jobs.\n\n' + OTHERS_NOTE
            + table(['line', 'cores', 'pairs', 'upstream µs/step', 'plugin µs/step',
                     'median ratio (wall)', 'range', 'ratio of minima', 'median ratio (CPU time)',
                     'build ratio', 'first-call ratio', 'rate Hz up / plugin',
                     f'median ratio, quiet pairs (others < {QUIET})', 'others (cores)',
                     'goal ≤ 1.01'], rows) + errors(recs))


def pair_others(d):
    xs = [d[k].get('others_cores_during') for k in ('plugin', 'upstream')]
    xs = [x for x in xs if x is not None]
    return max(xs) if xs else None


def quiet_ratio(ds):
    qs = [d['plugin']['run_s'] / d['upstream']['run_s'] for d in ds
          if quiet(d['plugin']) and quiet(d['upstream'])]
    return f'{med(qs):.3f} ({len(qs)} pairs)' if qs else '– (0 pairs)'


def sec_programs(doc):
    rows = []
    for r in ok(doc['records']):
        rows.append([line_of(r), r['kernel'], r['n'],
                     f"{r['upstream_jaxpr_lines']} / {r['plugin_jaxpr_lines']}",
                     f"{r['upstream_state_vars']} / {r['plugin_state_vars']}",
                     f"{r['upstream_state_elems']} / {r['plugin_state_elems']}",
                     '**yes**' if r['identical'] else (
                         '**yes, up to the order of the state variables**'
                         if r.get('same_up_to_state_order') else 'no'),
                     ', '.join(f'{k} {v:+d}' for k, v in sorted(r['primitive_count_diff'].items()))
                     or 'none'])
    return ('### (a) by construction: the traced programs\n\n'
            'One 10-step `for_loop` of the seed network traced with `jax.make_jaxpr` from '
            'each namespace, then every variable name replaced by one placeholder and the texts '
            'compared: "identical" means the same primitives in the same order with the same '
            'shapes, dtypes and parameters (which variable feeds which is not compared). The '
            'compiled steady-state loop is then the same work, so the plugin adds no run time by '
            'construction, and the spread of the timed tables is measurement noise.\n\n'
            + table(['line', 'kernel', 'N', 'jaxpr lines up / plugin', 'state vars',
                     'state elems', 'identical', 'primitive count diff'], rows)
            + errors(doc['records']))


def median_ci(xs, level=0.95, resamples=2000, seed=0):
    """Percentile bootstrap confidence interval of the median (deterministic)."""
    import random

    rng = random.Random(seed)
    xs = list(xs)
    meds = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(resamples))
    a = (1 - level) / 2
    return meds[int(a * resamples)], meds[min(resamples - 1, int((1 - a) * resamples))]


def sec_overhead_ab(doc):
    recs = doc['records']
    rows = []
    for (line, p), rs in sorted(summary_rows(recs, [line_of, pin]).items()):
        ratios = [x for r in rs for x in r['ratios']]
        ups = [x for r in rs for x in r['upstream_run_s']]
        pls = [x for r in rs for x in r['plugin_run_s']]
        steps = rs[0]['steps']
        q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
        m = med(ratios)
        lo, hi = median_ci(ratios)
        rows.append([line, p, len(rs), len(ratios), f(med(ups) / steps * 1e6, '{:.1f}'),
                     f(med(pls) / steps * 1e6, '{:.1f}'), f'**{m:.3f}**',
                     f'{lo:.3f}–{hi:.3f}', f'{q[0]:.3f}–{q[2]:.3f}', f'{min(pls) / min(ups):.3f}',
                     f"{med(r['upstream_rate_hz'] for r in rs):.2f} / "
                     f"{med(r['plugin_rate_hz'] for r in rs):.2f}",
                     f(med(r.get('others_cores_during') for r in rs), '{:.2f}'),
                     'met' if m <= 1.01 else f'missed by {100 * (m - 1.01):.1f} points'])
    return ('### (a) in one process, calls alternating\n\n'
            'Upstream and plugin networks built in the same process, both compiled, then '
            'timed steady-state calls (10000 steps each) alternate upstream/plugin, swapping '
            'the order every pair. Each ratio is plugin / upstream for adjacent calls; the '
            'table gives the median, its 95 % bootstrap confidence interval (2000 resamples '
            'of the pairs) and the interquartile range over all pairs. This removes '
            'the process-to-process variation that dominates the table above. The goal '
            'column compares the median with 1.01; the interval says how finely this '
            'machine resolves it.\n\n'
            + table(['line', 'cores', 'processes', 'pairs', 'upstream µs/step',
                     'plugin µs/step', 'median ratio', '95 % CI', 'IQR', 'ratio of minima',
                     'rate Hz up / plugin', 'others (cores)', 'goal ≤ 1.01'], rows)
            + errors(recs))


def case_rows(recs, keys, extra=()):
    rows = []
    for key, rs in sorted(summary_rows(recs, keys).items(), key=lambda kv: str(kv[0])):
        rows.append(list(key) + [len(rs), f(med(r['build_s'] for r in rs)),
                                 f(med(r['compile_s'] for r in rs)),
                                 f(med(r['s_per_bio_s'] for r in rs), '{:.3f}'),
                                 f(med(r['us_per_step'] for r in rs), '{:.1f}'),
                                 f(min(r['us_per_step'] for r in rs), '{:.1f}'),
                                 f(med(r['peak_rss_mb'] for r in rs), '{:.0f}'),
                                 f(med(r['rate_hz'] for r in rs), '{:.2f}'),
                                 f(med(r.get('others_cores_during') for r in rs), '{:.2f}')]
                    + [fn(rs) for fn in extra])
    return rows


CASE_HEAD = ['runs', 'build s', 'compile s', 's / bio-s', 'µs/step', 'min µs/step', 'peak RSS MB', 'rate Hz',
             'others (cores)']

QUIET = 0.3  # a timed call is "quiet" when other processes used under this many cores


def quiet(r):
    o = r.get('others_cores_during')
    return o is not None and o < QUIET


OTHERS_NOTE = ('`others (cores)`: median CPU used by *other* processes during the timed call '
               '(from /proc/stat minus our own CPU time). The machine has 2 cores and is '
               'shared; values near 0 mean a clean measurement, values near 1 or above mean '
               'another job competed for the CPU and the time is inflated; `–` means not recorded '
               '(runs made before the harness measured it, while the machine was busy).\n\n')


def sec_kernels(doc):
    rows = case_rows(doc['records'], [line_of, lambda r: r['kernel'], lambda r: r['impl'], pin])
    return ('## (b) Kernel paths\n\n'
            'Seed network; `jit` = `EventJitFPHomoLinear`, `csr` = `EventCSRLinear` on a '
            '`FixedProb` matrix. Kernels come from brainevent on 2.8 and brainpylib (taichi) on '
            '2.5. Medians over runs; "compile" = first call minus steady run.\n\n' + OTHERS_NOTE
            + table(['line', 'kernel', 'impl', 'cores'] + CASE_HEAD, rows) + errors(doc['records']))


THREADS_NOTE = """\
What the code says (brainpy 2.5.0.post20240308, brainpylib 0.3.1, taichi 1.7.0):

- On 2.5 the event kernels are taichi kernels compiled ahead of time and launched through
  the taichi C API (`brainpylib/libtaichi_c_api.so`) from an XLA custom call. That runtime
  runs a kernel's outermost loop on its own CPU thread pool.
- The CSR event kernels used here (`brainpy/_src/math/event/csr_matvec.py`, transposed
  homogeneous case) start with `ti.loop_config(serialize=True)`: one thread. The JIT
  connectivity kernel behind `EventJitFPHomoLinear` (`atomic=True`, so
  `outdim_parallel=False`; `brainpy/_src/math/jitconn/event_matvec.py`) has no such line:
  its loop over the ~3200/800 presynaptic neurons is split over the pool and writes the
  outputs with atomic adds. It runs twice per step with only a handful of spiking neurons,
  so each call is mostly a hand-off to the pool's threads and back.
- `TI_CPU_MAX_NUM_THREADS` is read by taichi's Python package (`ti.init`), not by the C
  API library that brainpylib ships (the string does not occur in it), so it cannot change
  this pool.

So the JIT path pays a cross-core hand-off on every kernel call when the process may use
both cores; restricted to one core (`taskset -c 0`, or `os.sched_setaffinity` inside the
script before brainpy is imported) the same threads hand off on one core and the cost goes.
The table measures each setting.
"""


def sec_threads(doc):
    rows = case_rows(doc['records'], [line_of, lambda r: r['kernel'], lambda r: r['variant']],
                     extra=[lambda rs: f(med(r['run_cpu_s'] / r['run_s'] for r in rs), '{:.2f}')])
    return ('## Threads and pinning (the 2.5-line slowness on 2 cores)\n\n'
            'Upstream seed network; each variant in a fresh process. `CPU/wall` is process '
            'CPU time over wall time during the timed call (above 1 = more than one busy '
            'thread).\n\n' + THREADS_NOTE + '\n' + OTHERS_NOTE
            + table(['line', 'kernel', 'setting'] + CASE_HEAD + ['CPU/wall'], rows)
            + errors(doc['records']))


def sec_merging(doc):
    recs = doc['records']
    rows = []
    groups = summary_rows(recs, [line_of, lambda r: r['impl'], lambda r: r['merged']])
    for (line, impl, merged), rs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        r0 = rs[0]
        counted = r0.get('state_counter') == 2  # earlier runs missed nodes held in lists
        rows.append([line, impl, 'merged (Mg)' if merged else 'unmerged', len(rs),
                     r0['syn_state_elems'] if counted else '– (not counted)',
                     r0['state_elems'] if counted else '– (not counted)',
                     f(med(r['build_s'] for r in rs)), f(med(r['compile_s'] for r in rs)),
                     f(med(r['s_per_bio_s'] for r in rs), '{:.3f}'),
                     f(med(r['peak_rss_mb'] for r in rs), '{:.0f}'),
                     f(med(r['rate_hz'] for r in rs), '{:.2f}')])
    n = next((r for r in ok(recs)), {})
    return ('## Merging: multi-population network\n\n'
            f"{n.get('groups', '?')} populations of {n.get('n', 0) // max(n.get('groups') or 1, 1)} "
            'LifRef neurons connected all-to-all (self included), JIT connectivity, 80 '
            'expected inputs per neuron; the last quarter of the groups is inhibitory, so onto '
            'each post group the excitatory projections share one descriptor and the '
            'inhibitory ones another. Merged = `HalfProjAlignPostMg` with `Expon.desc`/'
            '`COBA.desc`; unmerged = `HalfProjAlignPost` with one `Expon`/`COBA` instance per '
            'projection. "syn state" counts the elements of all `Expon` state variables.\n\n'
            + table(['line', 'impl', 'projections', 'runs', 'syn state elems', 'all state elems',
                     'build s', 'compile s', 's / bio-s', 'peak RSS MB', 'rate Hz'], rows)
            + errors(recs))


def sec_calls(doc):
    recs = doc['records']
    rows = []
    for (line, kernel), rs in sorted(summary_rows(recs, [line_of, lambda r: r['kernel']]).items()):
        paths = [p for p in ('bridge', 'native', 'brainpylib') if f'{p}_fixed_us' in rs[0]]
        for p in paths:
            fixed = med(r[f'{p}_fixed_us'] for r in rs)
            rows.append([line, rs[0]['versions'].get('brainevent') or rs[0]['versions'].get('brainpylib', '–'),
                         kernel, {'bridge': "brainevent's Python bridge", 'native': 'native handler',
                                  'brainpylib': 'brainpylib (native custom call)'}[p], len(rs),
                         f(fixed, '{:.1f}'), f(med(r[f'{p}_us_per_spike'] for r in rs), '{:.2f}'),
                         f(med(r['us_per_call'][f'{p}/0.01'] for r in rs), '{:.1f}'),
                         f(med(r['us_per_call'][f'{p}/0.1'] for r in rs), '{:.1f}')])
    r0 = next(iter(ok(recs)), {})
    return ('## Kernel paths: fixed cost per call and cost per spike\n\n'
            f"One event kernel, the seed network's E projection ({r0.get('n_pre', '?')} -> "
            f"{r0.get('n_post', '?')}, p = 0.02, JIT or CSR connectivity), called {r0.get('steps', '?')} "
            'times in a compiled loop on a spike vector with 0 %, 1 % or 10 % of its inputs active. '
            "On brainpy 2.8/2.9 brainevent's Python bridge and the native handler "
            '(`brainpy_halfproj.use_native_kernels()`) are compiled in one process and timed '
            'alternately; the 2.5 line (brainpylib) runs pinned to one core. Fixed cost = time per '
            'call with no spikes; per spike = (time at 10 % - fixed) / active inputs. Medians over '
            'repeats and runs.\n\n'
            + table(['line', 'kernel library', 'connectivity', 'path', 'runs', 'fixed µs/call', 'µs per spike',
                     'µs/call at 1 %', 'µs/call at 10 %'], rows) + errors(recs))


def _speed_rows(recs, base_of):
    rows = []
    keys = [line_of, lambda r: r.get('variant', r.get('impl')), pin]
    for (line, variant, p), rs in sorted(summary_rows(recs, keys).items(), key=lambda kv: str(kv[0])):
        base = base_of(line, p)
        s = med(r['s_per_bio_s'] for r in rs)
        rows.append([line, variant, p, len(rs), f(med(r['us_per_step'] for r in rs), '{:.1f}'),
                     f(s, '{:.3f}'), f(base / s if base and s else None, '{:.1f}x'),
                     rs[0].get('kernel_calls_per_step', '–'), f(med(r['first_call_s'] for r in rs)),
                     f(med(r['peak_rss_mb'] for r in rs), '{:.0f}'), f(med(r['rate_hz'] for r in rs), '{:.2f}')])
    return rows


def sec_speed(doc):
    recs = doc['records']
    groups = summary_rows(recs, [line_of, lambda r: r.get('variant'), pin])

    def plugin_time(line, p):
        rs = groups.get((line, 'plugin', p))
        return med(r['s_per_bio_s'] for r in rs) if rs else None

    rows = _speed_rows(recs, plugin_time)
    steps = next((r['steps'] for r in ok(recs) if 'steps' in r), '?')
    brian = groups.get(('brian2', 'Brian2 cpp_standalone', 'unpinned'))
    t_brian = med(r['s_per_bio_s'] for r in brian) if brian else None
    targets = []
    for line in sorted({k[0] for k in groups if k[0] not in ('brian2', '2.5')}):
        for variant in ('plugin, native', 'plugin, fused + native'):
            for p in ('unpinned', 'taskset -c 0'):
                rs, base = groups.get((line, variant, p)), plugin_time(line, p)
                if not rs or not base:
                    continue
                t = med(r['s_per_bio_s'] for r in rs)
                vs = (f'; {t / t_brian:.2f}x Brian2 cpp_standalone\'s time '
                      f'({"at or below it" if t <= t_brian else "above it"})') if t_brian else ''
                targets.append(f'- {line}, {variant}, {p}: {base / t:.1f}x faster than without '
                               f'({"at least 3x" if base / t >= 3 else "below 3x"}){vs}.')
    return ('## Speed options on the seed network\n\n'
            f'The seed network (4000 LifRef, JIT connectivity), {steps} steps of 0.1 ms '
            'per timed call, steady state, per line: upstream `bp.dyn`; the plugin as is (identical to '
            'upstream); with fused merge groups (`fused=True`: one kernel call per step on the '
            'stacked connectivity, read out of the JIT layers); with native kernel handlers '
            '(`use_native_kernels()`, brainpy 2.8/2.9 only); and both. Brian2 cpp_standalone ran '
            'in the same run. On 2.8/2.9 each case ran unpinned and pinned to one core '
            '(`taskset -c 0`); speed-up = plugin (as is, same pinning) / this case. Kernel calls '
            'per step are custom calls in the lowered step.\n\n'
            + table(['line', 'variant', 'cores', 'runs', 'µs/step', 's / bio-s', 'speed-up', 'kernel calls/step',
                     'first call s', 'peak RSS MB', 'rate Hz'], rows)
            + ('\nAgainst the targets (native kernels at least 3x faster than without, and at or below '
               'Brian2 cpp_standalone measured in the same run):\n\n' + '\n'.join(targets) + '\n'
               if targets else '') + errors(recs))


def sec_fusing(doc):
    recs = doc['records']
    keys = [line_of, lambda r: r.get('variant'), lambda r: r.get('native', False)]
    groups = summary_rows(recs, keys)
    rows = []
    for (line, variant, native), rs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        s = med(r['s_per_bio_s'] for r in rs)
        merged = groups.get((line, 'merged', native))
        m = med(r['s_per_bio_s'] for r in merged) if merged else None
        rows.append([line, variant, 'yes' if native else 'no', len(rs), f(s, '{:.3f}'),
                     f(m / s if m and s else None, '{:.1f}x'), rs[0].get('kernel_calls_per_step', '–'),
                     rs[0].get('syn_state_elems', '–'), f(med(r['build_s'] for r in rs)),
                     f(med(r['peak_rss_mb'] for r in rs), '{:.0f}'), f(med(r['rate_hz'] for r in rs), '{:.2f}')])
    n = next(iter(ok(recs)), {})
    return ('## Fused merge groups: multi-population network\n\n'
            f"{n.get('groups', '?')} populations of {n.get('n', 0) // max(n.get('groups') or 1, 1)} LifRef "
            'neurons connected all-to-all, JIT connectivity, 80 expected inputs per neuron (the network of '
            'the merging section). Unmerged = `HalfProjAlignPost`, merged = `HalfProjAlignPostMg`, fused = '
            '`HalfProjAlignPostMg(..., fused=True)`; each with and without native kernel handlers. Speed-up '
            'against merged with the same kernel path; kernel calls per step read from the lowered step.\n\n'
            + table(['line', 'projections', 'native', 'runs', 's / bio-s', 'speed-up vs merged', 'kernel calls/step',
                     'syn state elems', 'build s', 'peak RSS MB', 'rate Hz'], rows) + errors(recs))


def sec_peers(doc, ours):
    recs = doc['records']
    rows = case_rows(recs, [lambda r: r['impl'], lambda r: r.get('config', '')],
                     extra=[lambda rs: rs[0].get('integrator', '')])
    text = ('## (c) Peers on the seed network\n\n' + NOTES_PEERS + '\n'
            + table(['simulator', 'config'] + CASE_HEAD + ['integrator'], rows))
    if ours:
        name, best = ours
        text += (f'\nFastest configuration of ours measured: **{name}**, '
                 f'{best:.3f} s per biological second. Ratio ours / peer (below 1 = we are '
                 f'faster; the goal is below 1 against every peer):\n\n')
        prow = []
        groups = summary_rows(recs, [lambda r: r['impl'], lambda r: r.get('config', '')])
        for (impl, conf), rs in sorted(groups.items()):
            t = med(r['s_per_bio_s'] for r in rs)
            prow.append([impl, conf, f'{t:.3f}', f'{best / t:.2f}',
                         'met' if best < t else f'missed: we are {best / t:.2f}x the peer time'])
        text += table(['peer', 'config', 'peer s / bio-s', 'ours / peer', 'goal'], prow)
    return text + errors(recs)


def sec_scaling(doc, docs):
    recs = list(doc['records'])
    have = {(r.get('line') or r.get('impl'), r.get('n')) for r in ok(recs)}
    # the seed size, where the scaling run did not repeat it, from the kernels and peers runs
    for r in ok(docs.get('kernels', {}).get('records', [])):
        if (r['impl'] == 'plugin' and r['kernel'] == 'jit' and r['pinned'] == line_of(r).startswith('2.5')
                and (line_of(r), r['n']) not in have):
            recs.append(dict(r, from_section='kernels'))
    for r in ok(docs.get('peers', {}).get('records', [])):
        if r.get('config', '').startswith('cython'):
            continue
        if (r['impl'], r['n']) not in have:
            recs.append(dict(r, from_section='peers'))
    rows = []
    groups = summary_rows(recs, [lambda r: r.get('line') or r['impl'], lambda r: r.get('config', ''),
                                 lambda r: r['n']])
    for (who, conf, n), rs in sorted(groups.items(), key=lambda kv: (str(kv[0][:2]), kv[0][2])):
        r = rs[0]
        rows.append([who, conf or pin(r), f'{n:,}', r['steps'], f(r['build_s']), f(r['compile_s']),
                     f(r['s_per_bio_s'], '{:.3f}'), f(r['peak_rss_mb'], '{:.0f}'),
                     f(r['rate_hz'], '{:.2f}')])
    return ('## Scaling with N (80 inputs per neuron)\n\n'
            'E/I network grown with `prob = 0.02 * 4000 / N`, in the style of Fig. 8A of the '
            'BrainPy paper (eLife 2023). brainpy rows use the plugin with JIT connectivity. '
            'N above 4000 runs 1000 steps per call (column `steps`); time is per biological '
            'second either way. One run per point (the first run, where the seed size comes '
            'from the kernels or peers tables). 2.5 runs pinned to one core (`taskset -c 0`), '
            '2.8 unpinned.\n\n'
            + table(['who', 'config', 'N', 'steps', 'build s', 'compile s', 's / bio-s',
                     'peak RSS MB', 'rate Hz'], rows) + errors(recs))


def fastest_ours(docs):
    best = None
    for sec in ('kernels', 'overhead'):
        if sec not in docs:
            continue
        groups = summary_rows(docs[sec]['records'],
                              [line_of, lambda r: r['kernel'], lambda r: r['impl'], pin])
        for key, rs in groups.items():
            t = med(r['s_per_bio_s'] for r in rs)
            if key[2] == 'plugin' and (best is None or t < best[1]):
                best = (f'brainpy {key[0]}, {key[1]} kernel, plugin, {key[3]}', t)
    if 'speed' in docs:  # the speed options (native kernels, fused groups)
        groups = summary_rows(docs['speed']['records'], [line_of, lambda r: r.get('variant', ''), pin])
        for (line, variant, p), rs in groups.items():
            t = med(r['s_per_bio_s'] for r in rs)
            if variant.startswith('plugin') and (best is None or t < best[1]):
                best = (f'brainpy {line}, JIT kernel, {variant}, {p}', t)
    return best


def render(results_dir):
    docs = load(results_dir)
    parts = ['# Benchmarks\n',
             'Generated by `python benchmarks/run.py` (see `benchmarks/README.md`); raw JSON in '
             '`benchmarks/results/`. Every number below comes from those files.\n',
             GOAL]
    if any(d.get('smoke') for d in docs.values()):
        parts.insert(1, '**SMOKE RUN: tiny sizes, numbers mean nothing.**\n')
    if docs:
        parts.append(sec_machine(docs))
    for name, fn in (('overhead', sec_overhead), ('programs', sec_programs),
                     ('overhead_ab', sec_overhead_ab),
                     ('kernels', sec_kernels), ('calls', sec_calls), ('speed', sec_speed),
                     ('fusing', sec_fusing),
                     ('threads', sec_threads), ('merging', sec_merging)):
        if name in docs:
            parts.append(fn(docs[name]))
    if 'peers' in docs:
        parts.append(sec_peers(docs['peers'], fastest_ours(docs)))
    if 'scaling' in docs:
        parts.append(sec_scaling(docs['scaling'], docs))
    # sections written by their own scripts
    for verbatim in ('microcircuit.md', 'breakdown.md', 'partition.md', 'state.md', 'state_profile.md'):
        path = os.path.join(results_dir, verbatim)
        if os.path.exists(path):
            with open(path) as fh:
                parts.append(fh.read().rstrip() + '\n')
    return '\n'.join(parts)
