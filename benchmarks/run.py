"""Run the benchmarks and write ``BENCHMARKS.md`` plus raw JSON under ``benchmarks/results/``.

Every case runs in a fresh interpreter (``case.py`` or a peer script), wrapped in
``flock /tmp/halfproj-cpu.lock`` so that timed runs never overlap with other locked runs
on the shared machine.

    python benchmarks/run.py                          # all sections, then the report
    python benchmarks/run.py --only overhead,kernels  # some sections, then the report
    python benchmarks/run.py --report-only            # rewrite BENCHMARKS.md from the JSON
    python benchmarks/run.py --smoke --out /tmp/x     # seconds, tiny N, for CI

Interpreters: ``--line 2.8=/path/python --line 2.5=/path/python`` (default: this one),
``--peer brian2=/path/python`` (likewise ``nest``, ``annarchy``). Sections whose
interpreter is missing are recorded as not run, with the reason.
"""
import argparse
import fcntl
import json
import os
import subprocess
import sys
import time

from machine import machine_info  # benchmarks/, next to this script

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LOCK = '/tmp/halfproj-cpu.lock'
SECTIONS = ('programs', 'threads', 'overhead', 'overhead_ab', 'kernels', 'calls', 'speed', 'fusing', 'merging',
            'peers', 'scaling')
DEFAULT_PEERS = {'brian2': '/tmp/vbrian/bin/python', 'nest': '/tmp/vnest/bin/python',
                 'annarchy': '/tmp/vann/bin/python'}


class CpuLock:
    """``flock(LOCK)`` held across several cases, released and taken again once it has been
    held for ``hold_s`` (so that other developers' locked runs get their turn), instead of
    once per case: waiting for the lock once per case costs more than the cases."""

    def __init__(self, hold_s=600.):
        self.hold_s, self.fd, self.since = hold_s, None, None

    def ensure(self):
        if self.fd is not None and time.monotonic() - self.since > self.hold_s:
            self.release()
        if self.fd is None:
            self.fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o666)
            t0 = time.monotonic()
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            self.since = time.monotonic()
            if self.since - t0 > 1:
                log(f'waited {self.since - t0:.0f} s for {LOCK}')

    def release(self):
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


CPU_LOCK = CpuLock()


def run_case(python, script, args, pinned=False, locked=True, timeout=1800, env=None):
    """Run one case in a fresh process; return its RESULT dict or an ``error`` dict."""
    cmd = [python, os.path.join(HERE, script)] + [str(a) for a in args]
    if pinned:
        cmd = ['taskset', '-c', '0'] + cmd
    if locked:
        CPU_LOCK.ensure()
    full_env = dict(os.environ)
    full_env['PYTHONPATH'] = os.pathsep.join(p for p in (ROOT, os.environ.get('PYTHONPATH')) if p)
    # peers that call tools of their own venv (ANNarchy runs cmake -> python3 -m nanobind)
    full_env['PATH'] = os.pathsep.join([os.path.dirname(python), os.environ.get('PATH', '')])
    full_env.update(env or {})
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env,
                              cwd=ROOT)
    except subprocess.TimeoutExpired:
        return dict(error=f'timed out after {timeout} s', cmd=cmd)
    wall = time.perf_counter() - t0
    for line in proc.stdout.splitlines():
        if line.startswith('RESULT '):
            res = json.loads(line[len('RESULT '):])
            res.update(pinned=pinned, process_wall_s=wall, env_extra=env or {})
            return res
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
    return dict(error=f'exit {proc.returncode}: ' + ' | '.join(tail)[-1500:], cmd=cmd,
                pinned=pinned)


def log(msg):
    print(time.strftime('%H:%M:%S'), msg, flush=True)


# ---------------------------------------------------------------- sections

def sec_threads(cfg):
    """2.5-line thread study: unpinned vs one core, and the settings tried."""
    recs = cfg.records()
    variants = [('unpinned', False, {}),
                ('taskset -c 0', True, {}),
                ('os.sched_setaffinity in-process', False, {'--pin-self': ''}),
                ('TI_CPU_MAX_NUM_THREADS=1', False, {'TI_CPU_MAX_NUM_THREADS': '1'}),
                ('OMP_NUM_THREADS=1', False, {'OMP_NUM_THREADS': '1'}),
                ('XLA single thread', False,
                 {'XLA_FLAGS': '--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1'})]
    for label, python in cfg.lines.items():
        for rep in range(cfg.reps):
            for kernel in ('jit', 'csr'):
                for vname, pinned, env in variants:
                    if kernel == 'csr' and vname not in ('unpinned', 'taskset -c 0'):
                        continue
                    flags = [k for k in env if k.startswith('--')]
                    env = {k: v for k, v in env.items() if not k.startswith('--')}
                    r = run_case(python, 'case.py', ['--kernel', kernel, '--n', cfg.n,
                                                     '--steps', cfg.steps] + flags,
                                 pinned=pinned, locked=cfg.locked, env=env)
                    r.update(line=label, variant=vname, rep=rep)
                    log(f'threads {label} {kernel} {vname}: {brief(r)}')
                    recs.append(r)
    return recs


def sec_overhead(cfg):
    """(a) plugin vs upstream, paired and alternating, on each line and pinning mode."""
    recs = cfg.records()
    for label, python in cfg.lines.items():
        for pinned in cfg.pin_modes:
            for pair in range(cfg.pairs):
                order = ('upstream', 'plugin') if pair % 2 == 0 else ('plugin', 'upstream')
                for impl in order:
                    r = run_case(python, 'case.py', ['--impl', impl, '--kernel', 'jit',
                                                     '--n', cfg.n, '--steps', cfg.steps],
                                 pinned=pinned, locked=cfg.locked)
                    r.update(line=label, pair=f'{cfg.run_id}/{pair}', impl=impl)
                    log(f'overhead {label} pinned={pinned} pair {pair} {impl}: {brief(r)}')
                    recs.append(r)
    return recs


def sec_programs(cfg):
    """(a) by construction: are the traced programs of upstream and plugin the same?"""
    recs = cfg.records()
    for label, python in cfg.lines.items():
        for kernel in ('jit', 'csr'):
            r = run_case(python, 'case.py', ['--compare-programs', '--kernel', kernel,
                                             '--n', cfg.n], locked=cfg.locked)
            r.update(line=label)
            log(f"programs {label} {kernel}: " + (r['error'][-300:] if 'error' in r
                                                  else f"identical={r['identical']}"))
            recs.append(r)
    return recs


def sec_overhead_ab(cfg):
    """(a) again, both in one process: timed calls alternate upstream/plugin."""
    recs = cfg.records()
    for label, python in cfg.lines.items():
        for pinned in cfg.pin_modes:
            for rep in range(cfg.reps):
                r = run_case(python, 'case.py', ['--ab', cfg.ab_calls, '--kernel', 'jit',
                                                 '--n', cfg.n, '--steps', cfg.steps],
                             pinned=pinned, locked=cfg.locked)
                r.update(line=label, rep=rep)
                log(f"overhead_ab {label} pinned={pinned}: " + (
                    r['error'][-300:] if 'error' in r else
                    f"median ratio {r['median_ratio']:.3f}, others {r['others_cores_during']}"))
                recs.append(r)
    return recs


def sec_kernels(cfg):
    """(b) JIT connectivity vs CSR on each line, pinned and unpinned."""
    recs = cfg.records()
    for label, python in cfg.lines.items():
        for rep in range(cfg.reps):
            for kernel in ('jit', 'csr'):
                for impl in cfg.impls:
                    for pinned in cfg.pin_modes:
                        r = run_case(python, 'case.py', ['--impl', impl, '--kernel', kernel,
                                                         '--n', cfg.n, '--steps', cfg.steps],
                                     pinned=pinned, locked=cfg.locked)
                        r.update(line=label, rep=rep, impl=impl)
                        log(f'kernels {label} {kernel} {impl} pinned={pinned}: {brief(r)}')
                        recs.append(r)
    return recs


def sec_merging(cfg):
    """Multi-population network: merged (Mg) vs unmerged projections."""
    recs = cfg.records()
    for label, python in cfg.lines.items():
        pinned = label.startswith('2.5') and cfg.pin_25
        for rep in range(cfg.reps):
            for impl in cfg.impls:
                for merged in (True, False):
                    args = ['--model', 'multipop', '--impl', impl, '--groups', cfg.groups,
                            '--n', cfg.n_pop, '--steps', cfg.steps] + ([] if merged else ['--unmerged'])
                    r = run_case(python, 'case.py', args, pinned=pinned, locked=cfg.locked)
                    r.update(line=label, rep=rep, impl=impl)
                    log(f'merging {label} {impl} merged={merged}: {brief(r)}')
                    recs.append(r)
    return recs


def sec_calls(cfg):
    """Per-call cost of one event kernel (fixed and per active input): brainevent's bridge
    against the native handler, in one process per line and kernel."""
    recs = cfg.records()
    for rep in range(cfg.reps):
        for label, python in cfg.lines.items():
            pinned = label.startswith('2.5') and cfg.pin_25
            for kernel in ('jit', 'csr'):
                r = run_case(python, 'case.py', ['--calls', cfg.call_repeats, '--kernel', kernel, '--n', cfg.n,
                                                 '--steps', cfg.call_steps], pinned=pinned, locked=cfg.locked)
                r.update(line=label, rep=rep)
                log(f"calls {label} {kernel}: " + (r['error'][-300:] if 'error' in r else
                                                   json.dumps({k: round(v, 2) for k, v in r.items()
                                                               if k.endswith(('_fixed_us', '_per_spike'))})))
                recs.append(r)
    return recs


def _variants(label):
    """(name, case.py flags) of the seed network on one line: upstream, then the plugin's options."""
    out = [('upstream', ['--impl', 'upstream']), ('plugin', ['--impl', 'plugin']),
           ('plugin, fused', ['--impl', 'plugin', '--fused'])]
    if not label.startswith('2.5'):  # brainpylib's kernels are native already
        out += [('plugin, native', ['--impl', 'plugin', '--native']),
                ('plugin, fused + native', ['--impl', 'plugin', '--fused', '--native'])]
    return out


def sec_speed(cfg):
    """The seed network per line with each speed option, and Brian2 cpp_standalone, in one run.

    On the 2.8/2.9 lines every variant runs unpinned and pinned to one core (``taskset -c 0``),
    alternating; the 2.5 line runs pinned (its JIT kernels need it, see threads).
    """
    recs = cfg.records()
    for rep in range(cfg.reps):
        for label, python in cfg.lines.items():
            pins = (True,) if label.startswith('2.5') and cfg.pin_25 else cfg.pin_modes
            variants = _variants(label) if rep % 2 == 0 else list(reversed(_variants(label)))
            for name, flags in variants:
                for pinned in (pins if rep % 2 == 0 else tuple(reversed(pins))):
                    r = run_case(python, 'case.py', flags + ['--kernel', 'jit', '--n', cfg.n, '--steps', cfg.steps],
                                 pinned=pinned, locked=cfg.locked)
                    r.update(line=label, rep=rep, variant=name)
                    log(f'speed {label} {name} pinned={pinned}: {brief(r)}')
                    recs.append(r)
        python = cfg.peers.get('brian2')
        if python and os.path.exists(python):
            r = run_case(python, os.path.join('peers', 'brian2_einet.py'),
                         ['--target', 'cpp_standalone', '--n', cfg.n, '--steps', cfg.steps], locked=cfg.locked)
            r.update(rep=rep, variant='Brian2 cpp_standalone', line='brian2')
            r.setdefault('impl', 'brian2')
            log(f'speed brian2: {brief(r)}')
            recs.append(r)
        else:
            recs.append(dict(impl='brian2', line='brian2', variant='Brian2 cpp_standalone', rep=rep,
                             error=f'interpreter {python!r} not found'))
    return recs


def sec_fusing(cfg):
    """The 8-population network: unmerged, merged, fused (each with and without native kernels)."""
    recs = cfg.records()
    for rep in range(cfg.reps):
        for label, python in cfg.lines.items():
            pinned = label.startswith('2.5') and cfg.pin_25
            natives = (False,) if label.startswith('2.5') else (False, True)
            for kind, flags in (('unmerged', ['--unmerged']), ('merged', []), ('fused', ['--fused'])):
                for native in natives:
                    args = ['--model', 'multipop', '--impl', 'plugin', '--groups', cfg.groups, '--n', cfg.n_pop,
                            '--steps', cfg.steps] + flags + (['--native'] if native else [])
                    r = run_case(python, 'case.py', args, pinned=pinned, locked=cfg.locked)
                    r.update(line=label, rep=rep, variant=kind)
                    log(f'fusing {label} {kind} native={native}: {brief(r)}')
                    recs.append(r)
    return recs


PEER_CASES = [
    ('brian2', 'brian2_einet.py', ['--target', 'cpp_standalone']),
    ('brian2', 'brian2_einet.py', ['--target', 'cython']),
    ('nest', 'nest_einet.py', ['--threads', '1']),
    ('annarchy', 'annarchy_einet.py', []),
]


def sec_peers(cfg):
    """(c) peers with the equivalent model, at the seed size."""
    recs = cfg.records()
    for rep in range(cfg.reps):
        for peer, script, extra in PEER_CASES:
            python = cfg.peers.get(peer)
            if not python or not os.path.exists(python):
                recs.append(dict(impl=peer, error=f'interpreter {python!r} not found', rep=rep))
                continue
            r = run_case(python, os.path.join('peers', script),
                         extra + ['--n', cfg.n, '--steps', cfg.steps], locked=cfg.locked)
            r.update(rep=rep)
            r.setdefault('impl', peer)
            log(f'peers {peer} {extra}: {brief(r)}')
            recs.append(r)
    return recs


def sec_scaling(cfg):
    """Scaling with N at 80 inputs per neuron: our lines (JIT kernel) and the peers."""
    recs = cfg.records()
    for n in cfg.scaling_n:
        steps = cfg.steps if n <= 4000 else cfg.steps_large
        for label, python in cfg.lines.items():
            pinned = label.startswith('2.5') and cfg.pin_25
            r = run_case(python, 'case.py', ['--impl', cfg.impls[-1], '--kernel', 'jit',
                                             '--n', n, '--steps', steps],
                         pinned=pinned, locked=cfg.locked, timeout=cfg.case_timeout)
            r.update(line=label, n=n, impl=cfg.impls[-1] if 'error' not in r else r.get('impl'))
            log(f'scaling {label} N={n}: {brief(r)}')
            recs.append(r)
        for peer, script, extra in PEER_CASES:
            if peer == 'brian2' and '--target' in extra and extra[-1] == 'cython':
                continue  # runtime target: only at the seed size (see peers)
            python = cfg.peers.get(peer)
            if not python or not os.path.exists(python):
                continue
            if n > cfg.peer_max_n.get(peer, 10 ** 9):
                recs.append(dict(impl=peer, n=n, error=f'skipped: N above {cfg.peer_max_n[peer]}'))
                continue
            r = run_case(python, os.path.join('peers', script), extra + ['--n', n, '--steps', steps],
                         locked=cfg.locked, timeout=cfg.case_timeout)
            r.setdefault('impl', peer)
            r['n'] = n
            log(f'scaling {peer} N={n}: {brief(r)}')
            recs.append(r)
    return recs


class SavedRecords(list):
    """A list of case records that rewrites its section's JSON file on every append,
    so a long section that is stopped keeps what it measured."""

    def __init__(self, path, doc, prior=()):
        super().__init__()
        self.path, self.doc, self.prior = path, doc, list(prior)

    def append(self, rec):
        super().append(rec)
        self.save()

    def save(self):
        doc = dict(self.doc, records=self.prior + list(self),
                   seconds=time.perf_counter() - self.doc['_t0'])
        doc.pop('_t0')
        tmp = self.path + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(doc, f, indent=1, default=str)
        os.replace(tmp, self.path)


def brief(r):
    if 'error' in r:
        return 'ERROR ' + r['error'][-300:]
    return (f"{r['us_per_step']:.1f} us/step, first call {r['first_call_s']:.2f} s, "
            f"rate {r['rate_hz']:.1f} Hz, rss {r['peak_rss_mb']:.0f} MB, "
            f"others {r.get('others_cores_during') or 0:.2f} cores")


# ---------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--smoke', action='store_true', help='tiny N and few steps, no lock (CI)')
    ap.add_argument('--only', default=','.join(SECTIONS), help='comma-separated sections')
    ap.add_argument('--report-only', action='store_true')
    ap.add_argument('--append', action='store_true',
                    help="keep the section's earlier records and add the new ones")
    ap.add_argument('--out', default=ROOT, help='where BENCHMARKS.md and results/ go')
    ap.add_argument('--line', action='append', default=[], metavar='LABEL=PYTHON')
    ap.add_argument('--peer', action='append', default=[], metavar='NAME=PYTHON')
    ap.add_argument('--pairs', type=int, default=5)
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--ab-calls', type=int, default=8,
                    help='overhead_ab: alternating upstream/plugin pairs per process')
    ap.add_argument('--impls', default='upstream,plugin')
    ap.add_argument('--pin-modes', default='unpinned,pinned',
                    help='overhead and kernels: unpinned, pinned (taskset -c 0) or both')
    ap.add_argument('--scaling-n', default='4000,40000,400000,1600000')
    ap.add_argument('--call-repeats', type=int, default=5, help='calls: alternating timed loops per path')
    ap.add_argument('--call-steps', type=int, default=1000, help='calls: kernel calls per timed loop')
    ap.add_argument('--steps', type=int, default=10000, help='steps (of 0.1 ms) per timed call')
    args = ap.parse_args(argv)

    cfg = argparse.Namespace(
        lines=dict(x.split('=', 1) for x in args.line) or {'default': sys.executable},
        peers=dict(DEFAULT_PEERS, **dict(x.split('=', 1) for x in args.peer)),
        pairs=args.pairs, reps=args.reps, impls=args.impls.split(','),
        n=4000, steps=args.steps, steps_large=1000, ab_calls=args.ab_calls, groups=8, n_pop=500,
        pin_modes=tuple({'unpinned': False, 'pinned': True}[x] for x in args.pin_modes.split(',')),
        call_repeats=args.call_repeats, call_steps=args.call_steps,
        pin_25=True, locked=True, case_timeout=900,
        scaling_n=[int(x) for x in args.scaling_n.split(',')],
        run_id=time.strftime('%Y%m%dT%H%M%S'),  # keeps pairs of --append runs apart
        peer_max_n={'nest': 40000, 'annarchy': 400000, 'brian2': 1600000},
    )
    if args.smoke:
        cfg.pairs, cfg.reps, cfg.n, cfg.steps, cfg.steps_large = 1, 1, 200, 50, 50
        cfg.ab_calls, cfg.call_repeats, cfg.call_steps = 2, 1, 20
        cfg.n_pop, cfg.groups, cfg.pin_modes, cfg.locked = 50, 4, (False,), False
        cfg.scaling_n, cfg.pin_25 = [200, 400], False
    results_dir = os.path.join(args.out, 'benchmarks', 'results') if args.out == ROOT \
        else os.path.join(args.out, 'results')
    os.makedirs(results_dir, exist_ok=True)

    if not args.report_only:
        for name in args.only.split(','):
            if name not in SECTIONS:
                ap.error(f'unknown section {name!r}; choose from {", ".join(SECTIONS)}')
            log(f'section {name}')
            path = os.path.join(results_dir, name + '.json')
            prior = []
            if args.append and os.path.exists(path):
                with open(path) as f:
                    prior = json.load(f)['records']
            doc = dict(section=name, smoke=args.smoke, machine=machine_info(), _t0=time.perf_counter(),
                       config={k: v for k, v in vars(cfg).items() if k != 'records'})
            cfg.records = lambda path=path, doc=doc, prior=prior: SavedRecords(path, doc, prior)
            globals()['sec_' + name](cfg).save()

    CPU_LOCK.release()
    sys.path.insert(0, HERE)
    import report
    md = report.render(results_dir)
    path = os.path.join(args.out, 'BENCHMARKS.md')
    with open(path, 'w') as f:
        f.write(md)
    log(f'wrote {path}')


if __name__ == '__main__':
    main()
