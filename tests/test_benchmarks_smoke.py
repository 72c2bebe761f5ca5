"""The benchmark scripts run and write well-formed output (smoke mode; never timings)."""
import copy
import json
import os
import subprocess
import sys

import pytest

from brainpy_halfproj._compat import event_kernel_library

pytestmark = pytest.mark.slow  # each runs a benchmark script in a subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, 'benchmarks')
NUMERIC = ('build_s', 'compile_s', 'first_call_s', 'run_s', 's_per_bio_s', 'peak_rss_mb',
           'rate_hz', 'syn_state_elems', 'state_elems')


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp('bench')
    proc = subprocess.run([sys.executable, os.path.join(BENCH, 'run.py'), '--smoke',
                           '--only', 'overhead', '--out', str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_smoke_run_writes_json_records_for_upstream_and_plugin(smoke):
    with open(smoke / 'results' / 'overhead.json') as f:
        doc = json.load(f)
    assert doc['smoke'] is True and doc['section'] == 'overhead'
    errors = [r['error'] for r in doc['records'] if 'error' in r]
    assert not errors, errors
    assert sorted(r['impl'] for r in doc['records']) == ['plugin', 'upstream']
    for r in doc['records']:
        for key in NUMERIC:
            assert isinstance(r[key], (int, float)) and r[key] >= 0, (key, r[key])
        assert r['rate_hz'] > 0  # the tiny network does fire
    up, plug = sorted(doc['records'], key=lambda r: r['impl'] != 'upstream')
    assert up['state_elems'] == plug['state_elems']  # the same network was built


def test_smoke_run_writes_the_report(smoke):
    text = (smoke / 'BENCHMARKS.md').read_text()
    assert text.startswith('# Benchmarks')
    assert 'SMOKE RUN' in text
    assert '## Goal' in text and '## (a) Plugin overhead against upstream' in text
    assert '| default | unpinned | 1 |' in text


def test_report_renders_every_section(smoke, tmp_path):
    """Feed the smoke records, relabelled, to every section of the report."""
    sys.path.insert(0, BENCH)
    try:
        import report
    finally:
        sys.path.remove(BENCH)
    with open(smoke / 'results' / 'overhead.json') as f:
        doc = json.load(f)
    plugin = next(r for r in doc['records'] if r['impl'] == 'plugin')

    def rec(**kw):
        return dict(copy.deepcopy(plugin), **kw)

    sections = {
        'overhead': doc['records'],
        'kernels': [rec(kernel='csr'), rec(kernel='jit')],
        'threads': [rec(variant='unpinned'), rec(variant='taskset -c 0', pinned=True)],
        'calls': [rec(impl='calls', kernel='jit', n_pre=160, n_post=200, bridge_fixed_us=50., native_fixed_us=2.,
                      bridge_us_per_spike=1., native_us_per_spike=1.,
                      us_per_call={'bridge/0.01': 60., 'bridge/0.1': 70., 'native/0.01': 5., 'native/0.1': 20.})],
        'speed': [rec(variant='plugin'), rec(variant='plugin, fused + native', kernel_calls_per_step=1)],
        'fusing': [rec(model='multipop', variant='merged', groups=4), rec(model='multipop', variant='fused', groups=4)],
        'merging': [rec(model='multipop', merged=True, groups=4),
                    rec(model='multipop', merged=False, groups=4)],
        'peers': [rec(impl='brian2', config='cpp_standalone'), {'impl': 'nest', 'error': 'x'}],
        'scaling': [rec(n=200), rec(n=400), {'impl': 'nest', 'n': 400, 'error': 'skipped'}],
    }
    results = tmp_path / 'results'
    results.mkdir()
    for name, recs in sections.items():
        with open(results / f'{name}.json', 'w') as f:
            json.dump(dict(doc, section=name, records=recs), f)
    (results / 'microcircuit.md').write_text('## Microcircuit\n\nverbatim text\n')
    (results / 'breakdown.md').write_text('## Where a step goes\n\nverbatim breakdown text\n')
    (results / 'partition.md').write_text('## Partitioned\n\nverbatim partition text\n')
    text = report.render(str(results))
    for title in ('(a) Plugin overhead', '(b) Kernel paths', 'Threads and pinning',
                  'Kernel paths: fixed cost per call', 'Speed options on the seed network',
                  'Fused merge groups: multi-population network',
                  'Merging: multi-population', '(c) Peers', 'Scaling with N'):
        assert '## ' + title in text, title
    assert text.index('verbatim text') < text.index('verbatim breakdown text') < text.index('## Partitioned')
    assert text.rstrip().endswith('verbatim partition text')
    assert 'Failed cases' in text


NEST_PARAMETERS = """
import json, sys
sys.modules.update(brainpy=None, jax=None)  # the NEST venv has neither: importing them must fail
sys.path.insert(0, sys.argv[1])
import microcircuit
prm = microcircuit.nest_parameters(float(sys.argv[2]), seed=1, fixed_delays=sys.argv[3] == 'fixed')
print(json.dumps({k: v.tolist() if hasattr(v, 'tolist') else v for k, v in prm.items()}))
"""


@pytest.mark.parametrize('delays', ['normal', 'fixed'])
def test_nest_worker_computes_its_parameters_without_brainpy(delays):
    """The NEST worker takes the tables and scaling rules from potjans2014.py (NEST itself is not needed)."""
    import math

    from brainpy_halfproj.models import potjans2014

    runs = {}
    for scale in (1.0, 0.1):
        proc = subprocess.run([sys.executable, '-c', NEST_PARAMETERS, BENCH, str(scale), delays],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        runs[scale] = json.loads(proc.stdout)
    full, small = runs[1.0], runs[0.1]
    assert full['populations'] == list(potjans2014.POPULATIONS)
    assert sum(full['sizes']) == 77169 and sum(small['sizes']) == 7717
    assert sum(map(sum, full['n_syn'])) == 298880970  # about 0.3 billion synapses, as published
    assert full['dc'] == [0.0] * 8  # no compensation at full scale
    assert small['dc'] == list(potjans2014.derive(0.1, jit_numerator=None).dc.values())
    # NEST integrates the current exactly: the published weights, scaled, without our charge correction
    assert math.isclose(small['weights'][0][0] * math.sqrt(0.1), 87.81, abs_tol=0.01)
    assert math.isclose(small['weights'][0][1] / small['weights'][0][0], -4.0)
    assert math.isclose(small['w_ext'] * math.sqrt(0.1), 87.81, abs_tol=0.01)
    assert small['k_ext'] == [160, 150, 210, 190, 200, 190, 290, 210]
    assert small['neuron'] == dict(C_m=250.0, tau_m=10.0, tau_syn_ex=0.5, tau_syn_in=0.5, t_ref=2.0,
                                   E_L=-65.0, V_th=-50.0, V_reset=-65.0)
    expected = [1.5, 0.8] * 4 if delays == 'fixed' else [None] * 8
    assert small['fixed_delay'] == expected


NEST_STUB_RUN = """
import argparse, json, sys, types
sys.modules.update(brainpy=None, jax=None)
calls = {'create': [], 'connect': []}

class Nodes:
    def __init__(self, model, n, params):
        self.model, self.n, self.params = model, n, params
    def set(self, values):
        self.params.update(values)
    def get(self, key):
        return 0

def create(model, n=1, params=None):
    params = dict(params or {})
    calls['create'].append([model, n, params])
    return Nodes(model, n, params)

def connect(pre, post, conn_spec=None, syn_spec=None):
    calls['connect'].append([pre.model, post.model, conn_spec, syn_spec])

nest = types.ModuleType('nest')
nest.__version__ = 'stub'
nest.set_verbosity = lambda level: None
nest.ResetKernel = nest.Prepare = nest.Cleanup = lambda: None
nest.SetKernelStatus = lambda status: None
nest.Run = lambda ms: None
nest.Create, nest.Connect = create, connect
nest.random = types.SimpleNamespace(normal=lambda mean, std: ['normal', mean, std])
nest.math = types.SimpleNamespace(redraw=lambda x, min, max: ['redraw', x, min, max])
sys.modules['nest'] = nest
sys.path.insert(0, sys.argv[1])
import microcircuit
a = argparse.Namespace(scale=0.1, seed=1, threads=2, fixed_delays=sys.argv[2] == 'fixed', transient=100.0,
                       duration=100.0)
result = microcircuit.worker_nest(a)
print(json.dumps({'result': result, 'calls': calls}, default=str))
"""


@pytest.mark.parametrize('delays', ['normal', 'fixed'])
def test_nest_worker_builds_the_reference_model_with_a_stub_nest(delays):
    """The whole NEST code path, against a stub that records what would be built."""
    from brainpy_halfproj.models import potjans2014

    proc = subprocess.run([sys.executable, '-c', NEST_STUB_RUN, BENCH, delays],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    result, creates, connects = out['result'], out['calls']['create'], out['calls']['connect']
    prm = potjans2014.derive(0.1, jit_numerator=None, seed=1)
    neurons = [c for c in creates if c[0] == 'iaf_psc_exp']
    assert [c[1] for c in neurons] == list(prm.sizes.values())
    assert [c[2]['I_e'] for c in neurons] == list(prm.dc.values())
    assert [c[2]['V_m'][1:] for c in neurons] == [[potjans2014.V0_MEAN[p], potjans2014.V0_STD[p]]
                                                 for p in potjans2014.POPULATIONS]
    recurrent = [c for c in connects if isinstance(c[2], dict) and c[2].get('rule') == 'fixed_total_number']
    assert len(recurrent) == 55 and sum(c[2]['N'] for c in recurrent) == result['synapses'] == 2988807
    delays_seen = {str(c[3]['delay']) for c in recurrent}
    if delays == 'fixed':
        assert delays_seen == {'1.5', '0.8'} and result['variant'] == 'nest-2threads-fixed-delays'
    else:
        assert all(d.startswith("['redraw', ['normal'") for d in delays_seen) and result['variant'] == 'nest-2threads'
    background = [c for c in connects if c[0] == 'poisson_generator']
    assert len(background) == 8 and {c[3]['weight'] for c in background} == {prm.w_ext / prm.charge_correction}
    assert result['neurons'] == 7717 and set(result['rates']) == set(potjans2014.POPULATIONS)


@pytest.mark.skipif(event_kernel_library() != 'brainevent',
                    reason='partition needs brainpy >= 2.8 (brainevent kernels, jax.shard_map)')
def test_partition_benchmark_smoke(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(BENCH, 'partition.py'), '--smoke', '--out', str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(tmp_path / 'partition.json') as f:
        doc = json.load(f)
    assert doc['smoke'] is True and 'records' not in doc  # report.py renders partition.md, not this
    runs = doc['runs']
    assert [(r['devices'], r['partitioned']) for r in runs] == [(1, False), (1, True), (2, True)]
    assert [r['collectives']['all-gather'] for r in runs] == [0, 0, 1]
    assert len({r['spikes_hash'] for r in runs}) == 1 and runs[0]['spikes'] > 0
    for r in runs:
        assert r['us_per_step'] > 0 and r['state_bytes_per_device'] > 0
    assert runs[2]['connectivity_bytes_per_device'] < runs[1]['connectivity_bytes_per_device']
    text = (tmp_path / 'partition.md').read_text()
    assert text.startswith('## Partitioned over devices (simulated CPU devices)')
    assert text.count('| seed network, 400 neurons |') == 3
