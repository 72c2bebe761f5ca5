"""Runs a small 8-population network with fused groups and native kernels in a fresh process, under
whatever ``XLA_FLAGS`` its environment holds (XLA reads them once, when JAX starts its CPU backend).

Used by ``test_xla_flags.py``::

    python xla_flags_worker.py OUT_DIR dyn          # brainpy_halfproj.dyn (benchmarks/workloads.py)
    python xla_flags_worker.py OUT_DIR dyn state    # and brainpy_halfproj.state (benchmarks/state_workloads.py)

Writes ``OUT_DIR/<api>.npz`` per API: the spike raster of two calls of 1000 steps (the second
starts from the first's end), every state's value after them, and ``copies``: the copy
instructions in the compiled program of the 1000-step loop.
"""
import os
import sys

if __name__ == "__main__":  # nothing runs when pytest imports this file to look for doctests
    OUT, APIS = sys.argv[1], sys.argv[2:]
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
    import numpy as np

    import brainpy_halfproj as bhp
    bhp.use_native_kernels()
    steps = np.arange(1000)

    def n_copies(text):
        return sum(" copy(" in line for line in text.splitlines())

    def run_dyn():
        import brainpy.math as bm
        import workloads

        from brainpy_halfproj._hlo import compiled_text
        bm.set_dt(0.1)
        net = workloads.make_multipop(bhp.dyn, n_groups=8, n_pop=100, kernel="jit", seed=3, fused=True)
        run = bm.jit(lambda idx: bm.for_loop(lambda i: net.step_run(i, workloads.I_EXT), idx))
        copies = n_copies(compiled_text(net, lambda: bm.for_loop(lambda i: net.step_run(i, workloads.I_EXT), steps)))
        raster = np.concatenate([np.asarray(run(steps)), np.asarray(run(steps + 1000))])
        return net, raster, copies

    def run_state():
        import brainstate
        import brainunit as u
        import state_workloads as sw

        import brainpy_halfproj.state as bst
        brainstate.environ.set(dt=0.1 * u.ms)
        net = sw.make_multipop(bst, n_groups=8, n_pop=100, conn="jit", seed=3, fused=True)
        run = brainstate.transform.jit(lambda idx: brainstate.transform.for_loop(net.update, idx))
        copies = n_copies(run.lower(steps).compile().as_text())
        raster = np.concatenate([np.asarray(run(steps)), np.asarray(run(steps + 1000))])
        return net, raster, copies

    for api in APIS:
        net, raster, copies = {"dyn": run_dyn, "state": run_state}[api]()
        states = {f"state:{k}": np.asarray(v) for k, v in bhp.state_dict(net).items() if not k.startswith("__")}
        np.savez(os.path.join(OUT, f"{api}.npz"), raster=raster, copies=copies, **states)
