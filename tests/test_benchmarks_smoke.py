"""The benchmark scripts run and write well-formed output (smoke mode; never timings)."""
import copy
import json
import os
import subprocess
import sys

import pytest

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
    text = report.render(str(results))
    for title in ('(a) Plugin overhead', '(b) Kernel paths', 'Threads and pinning',
                  'Kernel paths: fixed cost per call', 'Speed options on the seed network',
                  'Fused merge groups: multi-population network',
                  'Merging: multi-population', '(c) Peers', 'Scaling with N'):
        assert '## ' + title in text, title
    assert text.rstrip().endswith('verbatim text')
    assert 'Failed cases' in text
