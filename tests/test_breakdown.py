"""The step breakdown's machinery (``benchmarks/breakdown.py``): HLO parsing, attribution, report."""
import os
import sys

import jax
import jax.numpy as jnp
import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


@pytest.fixture(scope="module")
def breakdown():
    sys.path.insert(0, BENCH)
    try:
        import breakdown
    finally:
        sys.path.remove(BENCH)
    return breakdown


def _step(x, i):
    with jax.named_scope("bhp_part_neuron"):
        v = x * 0.9 + jnp.sin(x)
    with jax.named_scope("bhp_part_delay_read"):
        d = jnp.roll(v, i)
    return d + v


def test_thunks_are_attributed_to_the_scopes_of_their_instructions(breakdown):
    """Every fusion of a compiled loop maps to the parts whose scopes its instructions carry."""
    loop = jax.jit(lambda x: jax.lax.fori_loop(0, 5, lambda i, x: _step(x, i), x))
    hlo = loop.lower(jnp.ones(1000)).compile().as_text()
    instr, comps = breakdown.parse_hlo(hlo)
    fusions = [name for name, (opcode, calls, _) in instr.items() if opcode == "fusion"]
    assert fusions and all(instr[f][1] in comps for f in fusions)
    parts = set()
    for f in fusions:
        parts |= set(breakdown.part_of(f, instr, comps))
    assert {"neuron", "delay read"} <= parts
    assert parts <= set(breakdown.PARTS)


def test_custom_calls_are_event_kernels(breakdown):
    instr = {"ffi_call.3": ("custom-call", None, "jit(f)/while/body/bhp_part_synapse/ffi_call")}
    assert breakdown.part_of("ffi_call.3", instr, {}) == {"event kernels": 1}


def test_a_preempted_step_does_not_count(breakdown):
    durations = [1000] * 98 + [1500, 4_000_000]  # ns; the last one lost the core for 4 ms
    assert breakdown._robust_mean(durations) == pytest.approx((98 * 1000 + 1500) / 99)


def _record(breakdown, label, cores, wall, parts):
    return dict(label=label, line="2.9.0", scale=0.1, variant="merged", native=True, cores=cores, wall_us=wall,
                cpu_us=wall, others_cores=0.1, record_us=0.2, thunks_per_step=10, events_per_step=1000.0,
                parts={p: dict(us=parts.get(p, 0.0), thunks=1) for p in breakdown.PARTS},
                mixed=[dict(thunk="f", us=1.0, instructions={"background": 5, "synapse": 2})],
                sizes={"A": 100, "B": 50}, kernel_outputs_per_post={"A": 2, "B": 1})


def test_report_has_one_row_per_run_and_the_floor(breakdown):
    runs = {}
    for label, wall in (("before", 200.0), ("after", 100.0)):
        for cores in (1, 2):
            r = _record(breakdown, label, cores, wall / cores, {"event kernels": wall / 2, "background": wall / 4})
            runs[breakdown._key(r)] = r
    floor = {"2.9.0": dict(cache_gb_s=40.0, dram_gb_s=10.0, scatter_ns_per_event=1.0, versions=dict(jax="0.12"))}
    text = breakdown.write_markdown(dict(runs=runs, machine=dict(cpu="cpu", cores=2), floor=floor))
    rows = [ln for ln in text.splitlines() if ln.startswith("| before:") or ln.startswith("| after:")]
    assert len(rows) == 4  # a breakdown row and a floor row per label
    before = next(ln for ln in rows if ln.startswith("| before:"))
    assert "| 200 / 200 (0.1) | 100 (0.1) | 1.00 |" in before  # 1 core, 2 cores, s per bio s (the faster)
    assert "| 100 (50 %) | 50 (25 %) |" in before  # event kernels, background: µs and share
    assert "in how many of the 2 profiled runs they occur: background + synapse (2)." in text
    # the kernels' floor: 1000 events x 1 ns, and zeroing 100 x 2 + 50 outputs of 4 bytes at 40 bytes/ns
    kernels_floor = (1000 * 1.0 + 4 * 250 / 40) / 1e3
    assert f"| 100 / {kernels_floor:.1f} ({100 / kernels_floor:.0f}x) |" in text
