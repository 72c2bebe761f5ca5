"""The benchmark scripts run and write well-formed output (smoke mode; never timings)."""
import copy
import json
import os
import subprocess
import sys

import pytest

from brainpy_halfproj._compat import event_kernel_library

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
    (results / 'partition.md').write_text('## Partitioned\n\nverbatim partition text\n')
    text = report.render(str(results))
    for title in ('(a) Plugin overhead', '(b) Kernel paths', 'Threads and pinning',
                  'Merging: multi-population', '(c) Peers', 'Scaling with N'):
        assert '## ' + title in text, title
    assert text.index('verbatim text') < text.index('## Partitioned')
    assert text.rstrip().endswith('verbatim partition text')
    assert 'Failed cases' in text


@pytest.mark.skipif(event_kernel_library() != 'brainevent', reason='partition needs brainpy >= 2.8 (brainevent kernels, jax.shard_map)')
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
