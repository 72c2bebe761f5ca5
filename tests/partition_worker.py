"""Runs a partitioned model in a fresh process (device counts are fixed when JAX starts).

Used by ``test_partition.py``::

    python partition_worker.py einet OUT_DIR            # 4 simulated CPU devices
    python partition_worker.py classes OUT_DIR          # 4 simulated CPU devices
    python partition_worker.py microcircuit OUT_DIR     # 4 simulated CPU devices
    python partition_worker.py process ID PORT OUT_DIR  # one of 2 processes, jax.distributed

Each scenario writes ``OUT_DIR/<name>.npz`` (arrays) and ``OUT_DIR/<name>.json`` (facts);
the test asserts on them. Exit status 77 means "jax.distributed could not start here".
"""
import json
import os
import sys

if __name__ == "__main__":  # nothing runs when pytest imports this file to look for doctests
    SCENARIO = sys.argv[1]
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={1 if SCENARIO == 'process' else 4}"

    import jax

    if SCENARIO == "process":
        PROCESS_ID, PORT, OUT = int(sys.argv[2]), sys.argv[3], sys.argv[4]
        try:
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
            jax.distributed.initialize(coordinator_address=f"127.0.0.1:{PORT}", num_processes=2,
                                       process_id=PROCESS_ID, initialization_timeout=60)
        except Exception as err:  # an environment that cannot run jax.distributed: say why
            print(f"jax.distributed did not start: {type(err).__name__}: {err}", flush=True)
            sys.exit(77)
    else:
        OUT = sys.argv[2]

    import brainpy as bp
    import brainpy.math as bm
    import numpy as np

    import brainpy_halfproj as bhp
    from brainpy_halfproj._layout import states_of
    from brainpy_halfproj._paths import variable_paths


def save(name, arrays, facts):
    np.savez(os.path.join(OUT, f"{name}.npz"), **arrays)
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump(facts, f, indent=1, sort_keys=True)


def final_state(model):
    """Every state value of the model by path (connectivity blocks excluded), gathered."""
    paths = variable_paths(model, every_state=True)
    layers = [n for n in model.nodes().unique().values() if isinstance(n, bhp.PartitionedCSR)]
    blocks = {id(s) for layer in layers for s in layer._blocks}
    out = {}
    for state in states_of(model):
        if id(state) in blocks:
            continue
        value = state.value
        if jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
            value = jax.random.key_data(value)
        out["state:" + paths[id(state)]] = bhp.gather(value)
    return out


def steps(net, start, stop):
    return bhp.gather(bm.for_loop(lambda i: net.step_run(i, 20.), np.arange(start, stop)))


def einet():
    arrays, facts = {}, {}
    bm.random.seed(42)
    reference = bhp.EINet(400)  # not partitioned
    arrays["unpartitioned"] = bhp.run_einet(reference, 300)
    for n in (1, 2, 4):
        bm.random.seed(42)
        net = bhp.EINet(400)
        report = bhp.partition(net, n)
        facts[f"collectives_{n}"] = bhp.step_collectives(net, 20.)
        # two calls: the second receives the state the first returned
        arrays[f"raster_{n}"] = np.concatenate([steps(net, 0, 200), steps(net, 200, 300)])
        after = bhp.partition_report(net)
        facts[f"split_{n}"], facts[f"replicated_{n}"] = list(report.split), list(report.replicated)
        facts[f"misplaced_after_runs_{n}"] = list(after.misplaced)
        shards = net.N.V.value.addressable_shards
        facts[f"shards_{n}"] = [len(shards), shards[0].data.shape[0]]
        facts[f"slots_{n}"] = [c.slots_per_device for c in report.calls]
        facts[f"synapses_{n}"] = [c.synapses for c in report.calls]
        arrays.update({f"{k}_{n}": v for k, v in final_state(net).items()})
    # fused merge groups: one fused call per device and step
    for n in (1, 2, 4):
        bm.random.seed(42)
        net = bhp.EINet(400, fused=True)
        report = bhp.partition(net, n)
        facts[f"fused_collectives_{n}"] = bhp.step_collectives(net, 20.)
        facts[f"fused_kernels_{n}"] = [p.kernel for p in report.projections]
        facts[f"fused_calls_{n}"] = [[c.owner.split()[-2:], c.synapses] for c in report.calls]
        arrays[f"fused_raster_{n}"] = steps(net, 0, 300)
        arrays.update({f"fused_{k}_{n}": v for k, v in final_state(net).items()})
    bm.random.seed(42)
    arrays["fused_unpartitioned"] = steps(bhp.EINet(400, fused=True), 0, 300)
    # reset builds new, unplaced variables; partitioning again places them
    bp.reset_state(net)
    facts["misplaced_after_reset"] = list(bhp.partition_report(net).misplaced)
    bhp.partition(net, 4)
    facts["misplaced_after_repartition"] = list(bhp.partition_report(net).misplaced)
    facts["runs_after_repartition"] = int(bhp.run_einet(net, 50).shape[0])
    # sizes that do not split evenly
    try:
        bhp.partition(bhp.EINet(402), 4)
    except ValueError as err:
        facts["indivisible_error"] = str(err)
    save("einet", arrays, facts)


def classes():
    """Every projection class, merged or not, half or full (delays on ``pre``)."""
    from tests._nets import CLASSES, build_net

    arrays, facts = {}, {}
    for cls in CLASSES:
        for n in (1, 2, 4):
            net = build_net(bhp.dyn, cls)
            report = bhp.partition(net, n)
            facts[f"{cls}_collectives_{n}"] = bhp.step_collectives(net, 20.)
            facts[f"{cls}_misplaced_{n}"] = list(bhp.partition_report(net).misplaced)
            facts[f"{cls}_kernels_{n}"] = sorted({p.kernel for p in report.projections})
            arrays[f"{cls}_raster_{n}"] = steps(net, 0, 200)
            arrays.update({f"{cls}_{k}_{n}": v for k, v in final_state(net).items()})
    save("classes", arrays, facts)


def microcircuit():
    from brainpy_halfproj.models import POPULATIONS, microcircuit, simulate

    bm.set_dt(0.1)
    net = microcircuit(0.02, seed=1, size_multiple=4)
    start = None
    arrays, facts = {}, {"sizes": net.sizes}
    # 1 and 4 devices (2 devices: the example script's test, tests/test_partition.py, on this model)
    for n in (1, 4):
        if start is not None:  # the same initial state (random keys included) for every mesh
            for state, value in start:
                state.value = value
        report = bhp.partition(net, n)  # re-partitions the read-out blocks, no second read-out
        net.__dict__.pop("_runners", None)  # loops compiled before keep the layers they traced
        if start is None:
            start = [(s, s.value) for s in states_of(net)]
        facts[f"collectives_{n}"] = bhp.step_collectives(net)
        out = simulate(net, 100.0, record=True)
        arrays.update({f"raster_{n}_{p}": out[p] for p in POPULATIONS})
        arrays.update({f"{k}_{n}": v for k, v in final_state(net).items()})
        facts[f"misplaced_after_runs_{n}"] = list(bhp.partition_report(net).misplaced)
        facts[f"partitioned_{n}"] = sum(p.kernel == "partitioned" for p in report.projections)
        facts[f"left_to_xla_{n}"] = sorted({p.layer for p in report.projections if p.kernel == "XLA"})
        facts[f"synapses_{n}"] = report.synapses
    save("microcircuit", arrays, facts)


def process():
    bm.random.seed(42)
    net = bhp.EINet(400)
    report = bhp.partition(net)  # every device of every process
    raster = steps(net, 0, 300)
    state = final_state(net)
    facts = {"devices": report.n_devices, "processes": jax.process_count(),
             "local_shards": len(net.N.V.value.addressable_shards),
             "collectives": bhp.step_collectives(net, 20.)}
    if PROCESS_ID == 0:
        save("process", dict(raster=raster, **state), facts)
    jax.distributed.shutdown()


if __name__ == "__main__":
    {"einet": einet, "classes": classes, "microcircuit": microcircuit, "process": process}[SCENARIO]()
