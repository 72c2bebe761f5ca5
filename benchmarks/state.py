"""brainpy.state beside bp.dyn: the seed network, the 8-population network and the microcircuit.

Side by side in one run, each case in its own process (build, compile, run time and peak RSS
are its own), the cases of a repetition in alternating order, all under
``flock /tmp/halfproj-cpu.lock`` (``run.py``'s lock, released every 10 minutes):

* ``seed``: the seed E/I network (4000 neurons) as stock brainpy.state (``EventFixedProb``, as
  upstream's example writes it, and JIT connectivity as the ``bp.dyn`` network has), with and
  without native kernels; the plugin's ``brainpy_halfproj.state`` as is, fused, fused + native
  (``AlignPostProj(..., fused=True)``; JIT, and ``EventFixedProb`` fused + native); the ``bp.dyn``
  rows of ``case.py`` (upstream, plugin, native, fused + native); Brian2 cpp_standalone.
* ``multipop``: the 8-population network (64 projections), brainpy.state and ``bp.dyn``: stock
  merged, the plugin merged and fused (with native kernels), each also pinned to one core
  (``--one-core``: XLA runs one thunk at a time), where the fused program gains most (its
  thunks are few and short, and on two cores handing them between threads costs more than it
  saves).
* ``XLA flags`` rows (seed: fused + native; 8 populations: merged and fused, with native
  kernels): the same case with ``XLA_FLAGS`` set to :data:`XLA_FLAGS` in its environment (two
  options of XLA's CPU compiler that the fused programs gain from; jax >= 0.10, so not the 2.5
  line).
* ``microcircuit``: the Potjans & Diesmann model from brainpy.state
  (``models.state_microcircuit``) and from ``bp.dyn`` (``microcircuit.py``'s worker), with and
  without native kernels, at ``--mc-scale`` (0.1 by default; 1 for the full model).

Medians over ``--reps`` processes per row. Kernel calls per step are custom calls in the
compiled program of one step. Results: ``results/state.json`` (its records under ``cases``, so
that ``report.py`` leaves them to this script); ``results/state.md`` (included in
``BENCHMARKS.md`` by ``run.py --report-only``).

    python benchmarks/state.py                                  # all sections, then results/state.md
    python benchmarks/state.py --only seed --reps 5 --brian2 /tmp/vbrian/bin/python
    python benchmarks/state.py --only microcircuit --mc-scale 1 --reps 1 --append   # keeps the other rows
    python benchmarks/state.py --smoke --out /tmp/s             # seconds, tiny sizes, no lock (tested)
    python benchmarks/state.py --markdown-only                  # rewrite results/state.md from the JSON

The brainpy.state rows need brainpy >= 2.9 in the interpreter given by ``--python`` (default: this
one); a row whose case fails is kept with its error.
"""
import argparse
import json
import os
import statistics
import sys
import time

from machine import machine_info  # benchmarks/, next to this script

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SECTIONS = ('seed', 'multipop', 'microcircuit')
DEFAULT_BRIAN2 = '/tmp/vbrian/bin/python'


# ---------------------------------------------------------------- worker (one case, this process)

def worker(a):
    """Build and run one brainpy.state case; return its record."""
    t0 = time.perf_counter()
    sys.path.insert(0, HERE)
    import brainstate
    import brainunit as u
    import case
    import numpy as np

    import brainpy_halfproj as bhp
    if a.one_core:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # before XLA sizes its thread pool
    case.compilations_so_far()  # count from here on
    brainstate.environ.set(dt=0.1 * u.ms)
    if a.native:
        bhp.use_native_kernels()
    if a.ns == 'plugin':
        import brainpy_halfproj.state as ns  # not on every branch yet: the case then fails, and says so
    else:
        import brainpy.state as ns
    import state_workloads as sw
    import_s = time.perf_counter() - t0
    out = dict(api='brainpy.state', model=a.model, ns=ns.__name__, conn=a.conn, native=a.native, fused=a.fused,
               one_core=a.one_core, versions=case.versions(), import_s=import_s)
    if a.model == 'microcircuit':
        out.update(_worker_microcircuit(a, ns))
    else:
        t0 = time.perf_counter()
        if a.model == 'seed':
            net = sw.make_einet(ns, n=a.n, conn=a.conn, fused=a.fused)
            n_total = a.n
        else:
            net = sw.make_multipop(ns, n_groups=a.groups, n_pop=a.n, conn=a.conn, fused=a.fused)
            n_total = a.n * a.groups
        build_s = time.perf_counter() - t0
        calls = sw.kernel_calls_per_step(net.update)
        run = brainstate.transform.jit(lambda idx: brainstate.transform.for_loop(net.update, idx))
        t0 = time.perf_counter()
        case.jax_block(run(np.arange(a.steps)))
        first_s = time.perf_counter() - t0
        case.wait_for_quiet()
        compiled = case.compilations_so_far()
        b0, c0, t0 = case.cpu_busy_s(), case.own_cpu_s(), time.perf_counter()
        spikes = np.asarray(case.jax_block(run(np.arange(a.steps) + a.steps)))
        run_s = time.perf_counter() - t0
        compilations = case.compilations_so_far() - compiled
        others = None if b0 is None else ((case.cpu_busy_s() - b0) - (case.own_cpu_s() - c0)) / run_s
        bio_s = a.steps * 0.1e-3
        out.update(n=n_total, steps=a.steps, build_s=build_s, first_call_s=first_s,
                   compile_s=max(first_s - run_s, 0.), run_s=run_s, s_per_bio_s=run_s / bio_s,
                   kernel_calls_per_step=calls, rate_hz=float(spikes.sum()) / n_total / bio_s,
                   state_elems=sw.state_elems(net), others_cores_during=others, compilations_during_run=compilations)
    out['peak_rss_mb'] = case.peak_rss_mb()
    return out


def _worker_microcircuit(a, ns):
    """``microcircuit.py``'s protocol: 100 ms chunks of transient (the first compiles), then the run."""
    import brainstate
    import brainunit as u
    import case
    import state_workloads as sw

    from brainpy_halfproj.models import PUBLISHED_RATES, population_rates, simulate_state, state_microcircuit

    t0 = time.perf_counter()
    net = state_microcircuit(a.scale, seed=a.seed, state=ns)
    build_s = time.perf_counter() - t0

    def step(i):
        with brainstate.environ.context(i=i, t=i * 0.1 * u.ms):
            return net.update()

    calls = sw.kernel_calls_per_step(step)
    chunk, n_chunks = 100.0, max(2, int(round(a.transient / 100.0)))
    times = []
    for k in range(n_chunks):  # the loop of the measured run (1000 steps a call): its first chunk compiles it
        t0 = time.perf_counter()
        simulate_state(net, chunk, record='counts', start_step=k * 1000)
        times.append(time.perf_counter() - t0)
    steady = statistics.mean(times[1:])
    net.reset_spike_counts()
    compiled = case.compilations_so_far()
    t0 = time.perf_counter()
    simulate_state(net, a.duration, record='counts', start_step=n_chunks * 1000)
    run_s = time.perf_counter() - t0
    return dict(scale=a.scale, seed=a.seed, neurons=int(sum(net.sizes.values())), projections=len(net.projections),
                build_s=build_s, compile_s=times[0] - steady, transient_ms=n_chunks * chunk, duration_ms=a.duration,
                s_per_bio_s=run_s / (a.duration * 1e-3), compilations_during_run=case.compilations_so_far() - compiled,
                kernel_calls_per_step=calls,
                rates=population_rates(net, a.duration), published_full_scale=PUBLISHED_RATES)


# ---------------------------------------------------------------- driver

#: XLA's CPU compiler options of the ``XLA flags`` rows (set in the worker's environment): copy insertion
#: that sees through the step loop's regions (fewer copies of loop-carried states), and the memory-minimising
#: instruction order instead of the concurrency-optimised one (fewer hand-offs between XLA's threads).
XLA_FLAGS = ('--xla_cpu_copy_insertion_use_region_analysis=true '
             '--xla_cpu_enable_concurrency_optimized_scheduler=false')


def _with_flags(rows):
    """Each (name, args) row twice: as is, and with ``XLA_FLAGS`` (name + ', XLA flags')."""
    return [(name, flags, {}) for name, flags in rows] + [
        (f'{name}, XLA flags', flags, {'XLA_FLAGS': XLA_FLAGS}) for name, flags in rows]


def _cases(cfg):
    """(section, row name, python, script, args, env) of every case of one repetition, in order."""
    py, dyn_py = cfg.python, cfg.python_dyn
    out = []
    if 'seed' in cfg.only:
        common = ['--n', cfg.n, '--steps', cfg.steps]
        state = [('brainpy.state, EventFixedProb', ['--conn', 'fixedprob']),
                 ('brainpy.state, EventFixedProb, native', ['--conn', 'fixedprob', '--native']),
                 ('plugin state, EventFixedProb, fused + native', ['--conn', 'fixedprob', '--ns', 'plugin', '--fused',
                                                                   '--native']),
                 ('brainpy.state, JIT', ['--conn', 'jit']),
                 ('brainpy.state, JIT, native', ['--conn', 'jit', '--native']),
                 ('plugin state, JIT', ['--conn', 'jit', '--ns', 'plugin']),
                 ('plugin state, JIT, fused', ['--conn', 'jit', '--ns', 'plugin', '--fused']),
                 ('plugin state, JIT, fused + native', ['--conn', 'jit', '--ns', 'plugin', '--fused', '--native']),
                 ('plugin state, JIT, fused + native, XLA flags',
                  ['--conn', 'jit', '--ns', 'plugin', '--fused', '--native'], {'XLA_FLAGS': XLA_FLAGS})]
        out += [('seed', name, py, 'state.py', ['--worker', '--model', 'seed', *flags, *common], *env)
                for name, flags, *env in state]
        dyn = [('bp.dyn upstream, JIT', ['--impl', 'upstream']), ('bp.dyn plugin, JIT', ['--impl', 'plugin']),
               ('bp.dyn plugin, JIT, native', ['--impl', 'plugin', '--native']),
               ('bp.dyn plugin, JIT, fused + native', ['--impl', 'plugin', '--fused', '--native']),
               ('bp.dyn plugin, JIT, fused + native, XLA flags', ['--impl', 'plugin', '--fused', '--native'],
                {'XLA_FLAGS': XLA_FLAGS})]
        out += [('seed', name, dyn_py, 'case.py', [*flags, '--kernel', 'jit', *common], *env)
                for name, flags, *env in dyn]
        if cfg.brian2:
            out.append(('seed', 'Brian2 cpp_standalone', cfg.brian2, os.path.join('peers', 'brian2_einet.py'),
                        ['--target', 'cpp_standalone', *common]))
    if 'multipop' in cfg.only:
        common = ['--model', 'multipop', '--groups', cfg.groups, '--n', cfg.n_pop, '--steps', cfg.steps]
        state = [('brainpy.state, JIT, merged', []),
                 ('brainpy.state, JIT, merged, native', ['--native']),
                 *_with_flags([('plugin state, JIT, merged, native', ['--ns', 'plugin', '--native']),
                               ('plugin state, JIT, fused + native', ['--ns', 'plugin', '--fused', '--native'])]),
                 ('plugin state, JIT, merged, native, one core', ['--ns', 'plugin', '--native', '--one-core']),
                 ('plugin state, JIT, fused + native, one core',
                  ['--ns', 'plugin', '--fused', '--native', '--one-core'])]
        out += [('multipop', name, py, 'state.py', ['--worker', '--conn', 'jit', *flags, *common], *env)
                for name, flags, *env in state]
        dyn = [('bp.dyn plugin, JIT, merged', []),
               *_with_flags([('bp.dyn plugin, JIT, merged, native', ['--native']),
                             ('bp.dyn plugin, JIT, fused + native', ['--fused', '--native'])]),
               ('bp.dyn plugin, JIT, merged, native, one core', ['--native', '--pin-self']),
               ('bp.dyn plugin, JIT, fused + native, one core', ['--fused', '--native', '--pin-self'])]
        out += [('multipop', name, dyn_py, 'case.py', ['--impl', 'plugin', *flags, *common], *env)
                for name, flags, *env in dyn]
    if 'microcircuit' in cfg.only:
        for scale in cfg.mc_scales:
            common = ['--scale', scale, '--seed', 1, '--transient', cfg.mc_transient, '--duration', cfg.mc_duration]
            for native in (False, True):
                flag, tag = (['--native'], ', native') if native else ([], '')
                out.append(('microcircuit', f'brainpy.state, scale {scale}{tag}', py, 'state.py',
                            ['--worker', '--model', 'microcircuit', *flag, *common]))
                out.append(('microcircuit', f'bp.dyn plugin merged, scale {scale}{tag}', dyn_py, 'microcircuit.py',
                            ['--worker', '--variant', 'merged', *flag, *common]))
    return out


def _normalise(rec, script):
    """The fields the tables use, whatever script measured the row."""
    if script == 'microcircuit.py' and 'error' not in rec:
        rec = dict(rec, api='bp.dyn', s_per_bio_s=rec['run_s_per_bio_s'], peak_rss_mb=rec['peak_rss_gib'] * 1024)
    elif script == 'case.py' and 'error' not in rec:
        rec = dict(rec, api='bp.dyn')
    return rec


def run(cfg):
    sys.path.insert(0, HERE)
    import run as runner  # run.py's process runner and lock

    records = []
    cases = _cases(cfg)
    for rep in range(cfg.reps):
        for section, name, python, script, args, *env in (cases if rep % 2 == 0 else cases[::-1]):
            if not python or not os.path.exists(python):
                rec = dict(error=f'interpreter {python!r} not found')
            else:
                rec = runner.run_case(python, script, [str(x) for x in args], locked=cfg.locked,
                                      timeout=cfg.timeout, env=env[0] if env else None)
            rec = _normalise(rec, script)
            rec.update(section=section, row=name, rep=rep, date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))
            runner.log(f"{section} | {name} | rep {rep}: " + (rec['error'][-200:] if 'error' in rec else
                       f"{rec['s_per_bio_s']:.3f} s per bio s, build {rec.get('build_s', 0):.1f} s, "
                       f"calls {rec.get('kernel_calls_per_step', '-')}, rss {rec.get('peak_rss_mb', 0):.0f} MB"))
            records.append(rec)
            if cfg.save:
                cfg.save(records)
    runner.CPU_LOCK.release()
    return records


# ---------------------------------------------------------------- report

def _median(rows, key):
    vals = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
    return statistics.median(vals) if vals else None


def _rates(rows):
    """Median rate per population over the processes of one row."""
    return {p: statistics.median(r['rates'][p] for r in rows) for p in rows[0]['rates']}


def _rates_reference(rows, rec):
    """The rates a microcircuit row is compared with: published at scale 1, else the bp.dyn row's."""
    if rec['scale'] == 1.0:
        return rec['published_full_scale']
    if rec.get('api') != 'brainpy.state':
        return None
    same = [r for r in rows if 'error' not in r and r.get('api') == 'bp.dyn' and r['scale'] == rec['scale']
            and bool(r.get('native')) == bool(rec.get('native'))]
    return _rates(same) if same else None


def _dates(recs, machine):
    """When the rows ran: the first and last case's date (the run's start where cases have none)."""
    dates = sorted(r['date'] for r in recs if r.get('date'))
    if not dates:
        return machine.get('date', '?')
    return dates[0] if dates[0] == dates[-1] else f'{dates[0]} to {dates[-1]}'


def _fmt(x, spec):
    return '–' if x is None else format(x, spec)


def markdown(doc):
    """``results/state.md`` from the records of one run."""
    recs, m = doc['cases'], doc.get('machine', {})
    versions = next((r['versions'] for r in recs if r.get('api') == 'brainpy.state' and 'versions' in r), {})
    lines = ['## brainpy.state beside bp.dyn', '',
             'Written by `python benchmarks/state.py` (its docstring says how the rows are built). '
             'Every row is a median over processes of the same run, on this shared 2-core machine '
             f"({m.get('cpu', '?')}, {m.get('cores', '?')} cores; Python {m.get('python', '?')}; "
             + ', '.join(f'{k} {v}' for k, v in versions.items() if k != 'python') + f"; run {_dates(recs, m)}, "
             f"commit {m.get('commit', '?')}). s per bio s: wall time per biological second of a "
             'steady-state call (the microcircuit: after its transient); build: constructing the model; '
             'compile: first call minus a steady call; kernel calls: custom calls in the compiled step. '
             f'*XLA flags*: the process ran with `XLA_FLAGS="{XLA_FLAGS}"` (fewer copies of the step '
             "loop's states, and XLA's memory-minimising instruction order instead of the concurrency-optimised "
             "one); *one core*: the process pinned to one core.", '']
    if doc.get('smoke'):
        lines += ['**SMOKE RUN: tiny sizes, not measurements.**', '']
    titles = {'seed': 'Seed E/I network (4000 neurons, 80 inputs per neuron, 1 s per call)',
              'multipop': '8-population network (8 x 500 neurons, 64 projections, 2 merged synapse states '
                          'per population)',
              'microcircuit': 'Cortical microcircuit (Potjans & Diesmann 2014), seed 1'}
    for section in SECTIONS:
        rows = [r for r in recs if r['section'] == section]
        if not rows:
            continue
        lines += [f'### {titles[section]}', '']
        if section == 'microcircuit':
            lines += ['Rates over the measured second; max |Δ|: the largest relative deviation over the 8 '
                      'populations from the published full-scale rates (scale 1), or, at smaller scales, of a '
                      'brainpy.state row from the bp.dyn row of the same scale and kernel path.', '',
                      '| row | kernel calls / step | build (s) | compile (s) | s per bio s | peak RSS (MiB) '
                      '| rates (spikes/s) L23E L23I L4E L4I L5E L5I L6E L6I | max \\|Δ\\| | processes |',
                      '| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |']
        else:
            lines += ['| row | kernel calls / step | build (s) | compile (s) | s per bio s | peak RSS (MiB) '
                      '| rate (Hz) | processes |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |']
        for name in dict.fromkeys(r['row'] for r in rows):
            mine = [r for r in rows if r['row'] == name]
            ok = [r for r in mine if 'error' not in r]
            if not ok:
                why = mine[0]['error']
                if 'brainpy_halfproj.state' in why or "'fused'" in why:
                    why = 'not run: needs `brainpy_halfproj.state` with `fused=` (issues 19 and 22)'
                lines.append(f'| {name} | {why[-160:]} | | | | | | 0 |')
                continue
            calls = ok[0].get('kernel_calls_per_step', '–')
            if section == 'microcircuit':
                rates = _rates(ok)
                ref = _rates_reference(rows, ok[0])
                devs = [] if ref is None else [abs(rates[p] / ref[p] - 1) for p in rates if ref[p] > 0]
                dev = f'{max(devs) * 100:.0f} %' if devs else ''
                tail = f"{' '.join(f'{x:.2f}' for x in rates.values())} | {dev} | {len(ok)} |"
            else:
                tail = f"{_fmt(_median(ok, 'rate_hz'), '.1f')} | {len(ok)} |"
            lines.append(f"| {name} | {calls} | {_fmt(_median(ok, 'build_s'), '.2f')} | "
                         f"{_fmt(_median(ok, 'compile_s'), '.1f')} | {_fmt(_median(ok, 's_per_bio_s'), '.3f')} | "
                         f"{_fmt(_median(ok, 'peak_rss_mb'), '.0f')} | {tail}")
        lines.append('')
        if section == 'microcircuit':
            lines += MICROCIRCUIT_NOTES
    return '\n'.join(lines).rstrip() + '\n'


MICROCIRCUIT_NOTES = [
    'The brainpy.state model (`brainpy_halfproj/models/microcircuit_state.py`) is wired from the same '
    '`potjans2014.derive` parameters and seeds as the bp.dyn model: the same JIT kernel and seeds (so the '
    'same synapses and weights), delays, initial potentials and Poisson counts. It differs in three '
    'places, by construction: brainpy.state\'s `Expon` adds a step\'s input after the decay (the weights '
    'are derived for that order, `merged=False`), `LIFRef` clamps while `t - t_spike < tau_ref` (given '
    'as 2.05 ms, so both clamp 20 steps), and a neuron that starts at or above threshold is reset '
    'without a spike where bp.dyn (and NEST) let it spike in the first step. From potentials below '
    'threshold the two give the same raster until a rounding difference tips a spike (34.6 ms at scale '
    '0.1, seed 3; `tests/test_microcircuit_state.py`).',
    '',
    'Upstream\'s own cortical example for brainpy.state (`examples/203_cortical_model.py` in '
    'chaobrain/brainpy.state) is written in brainpy 1.x\'s API (`bp.NeuGroup`, `bp.synapses.TwoEndConn`, '
    '`bm.pre2post_event_sum`, `update(self, _t, _dt)`) and does not run on brainpy 2.9. Where it helps: '
    'its neurons and synapses are ours (tau_m 10 ms, C_m 250 pF, tau_syn 0.5 ms, t_ref 2 ms, '
    'V_reset -65 mV, V_th -50 mV, 87.8 pA weights with 10 % spread, g = -4, L4E -> L2/3E doubled), and '
    'it too draws one normal delay per presynaptic neuron. It differs in: full scale only (no scaling '
    'rule, no DC compensation); connectivity by the table\'s pair probability as it runs '
    '(`conn_type=1`, our `connectivity=\'table\'`: fewer synapses than the reference), the reference\'s '
    'total number with multapses only as an option; weights clipped at 0 instead of the multapse '
    'moments; inhibitory delays 0.8 +- 0.4 ms (the reference: 0.75 +- 0.375 ms); background as a DC '
    'current scaled by an unexplained 0.3512 (as it runs) or a normal approximation whose mean grows '
    'with the population size instead of K_ext, where ours draws K_ext x 8 Hz Poisson counts per neuron '
    'into the synapse; one initial potential distribution (-65 +- 5 mV) for all populations; a delay '
    'buffer per projection (ours: one per population, shared by its 7-8 projections).',
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--model', choices=['seed', 'multipop', 'microcircuit'], default='seed')
    ap.add_argument('--ns', choices=['stock', 'plugin'], default='stock')
    ap.add_argument('--conn', choices=['fixedprob', 'jit'], default='fixedprob')
    ap.add_argument('--native', action='store_true')
    ap.add_argument('--fused', action='store_true')
    ap.add_argument('--one-core', action='store_true', help='pin the worker to one core')
    ap.add_argument('--n', type=int, default=4000)
    ap.add_argument('--groups', type=int, default=8)
    ap.add_argument('--steps', type=int, default=10000)
    ap.add_argument('--scale', type=float, default=0.1)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--transient', type=float, default=500.)
    ap.add_argument('--duration', type=float, default=1000.)
    ap.add_argument('--only', default=','.join(SECTIONS))
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--python', default=sys.executable, help='interpreter with brainpy >= 2.9 (brainpy.state rows)')
    ap.add_argument('--python-dyn', default=None, help='interpreter of the bp.dyn rows (default: --python)')
    ap.add_argument('--brian2', default=DEFAULT_BRIAN2, help="Brian2's interpreter (row skipped if missing)")
    ap.add_argument('--mc-scale', type=float, action='append', help='microcircuit scale (repeatable; default 0.1)')
    ap.add_argument('--smoke', action='store_true', help='tiny sizes, one repetition, no lock')
    ap.add_argument('--out', default=HERE, help='folder that gets results/state.json and results/state.md')
    ap.add_argument('--append', action='store_true',
                    help='keep the records of earlier runs, except those of the rows run again')
    ap.add_argument('--markdown-only', action='store_true')
    a = ap.parse_args(argv)
    if a.worker:
        print('RESULT ' + json.dumps(worker(a)), flush=True)
        return

    results = os.path.join(a.out, 'results')
    os.makedirs(results, exist_ok=True)
    json_path, md_path = os.path.join(results, 'state.json'), os.path.join(results, 'state.md')
    if a.markdown_only:
        with open(json_path) as f:
            doc = json.load(f)
    else:
        only = a.only.split(',')
        unknown = set(only) - set(SECTIONS)
        if unknown:
            ap.error(f"unknown section {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
        cfg = argparse.Namespace(
            only=only, reps=a.reps, python=a.python, python_dyn=a.python_dyn or a.python,
            brian2=a.brian2 if a.brian2 and os.path.exists(a.brian2) else None,
            n=4000, steps=10000, groups=8, n_pop=500, mc_scales=a.mc_scale or [0.1], mc_transient=500.,
            mc_duration=1000., locked=True, timeout=3600)
        if a.smoke:
            cfg.reps, cfg.n, cfg.steps, cfg.groups, cfg.n_pop = 1, 200, 50, 4, 50
            cfg.mc_scales, cfg.mc_transient, cfg.mc_duration, cfg.locked, cfg.brian2 = [0.02], 200., 100., False, None
        doc = dict(smoke=a.smoke, machine=machine_info(), config={k: v for k, v in vars(cfg).items()})
        prior = []
        if a.append and os.path.exists(json_path):  # earlier records, except those of the rows run again
            rerun = {(section, name) for section, name, *_ in _cases(cfg)}
            with open(json_path) as f:
                prior = [r for r in json.load(f)['cases'] if (r['section'], r['row']) not in rerun]

        def save(records):
            with open(json_path + '.tmp', 'w') as f:
                json.dump(dict(doc, cases=prior + records), f, indent=1, default=str)
            os.replace(json_path + '.tmp', json_path)

        cfg.save = save
        records = run(cfg)
        doc['config'].pop('save', None)
        save(records)
        doc['cases'] = prior + records
    with open(md_path, 'w') as f:
        f.write(markdown(doc))
    print(f'wrote {md_path}', flush=True)


if __name__ == '__main__':
    main()
