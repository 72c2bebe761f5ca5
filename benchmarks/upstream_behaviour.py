"""What upstream ``bp.dyn`` does in the situations of the "Differences from upstream" table (docs/upstream.md).

Run it with each line's interpreter; it prints one line per situation (``name: outcome``) and,
with ``--json PATH``, writes them to a file. The table is written from these outputs.

    python benchmarks/upstream_behaviour.py
    python benchmarks/upstream_behaviour.py --json /tmp/upstream-2.9.json
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import warnings


def outcome(fn):
    """``'ok: <result>'`` or ``'<ExceptionType>: <first line of the message>'``."""
    try:
        return f"ok: {fn()}"
    except Exception as err:  # noqa: BLE001 - the outcome is what we record
        text = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return f"{type(err).__name__}: {text[:160]}"


def probes():
    import brainpy as bp
    import brainpy.math as bm
    import numpy as np

    def proj(post, syn, out=None, n_in=8, comm=None, **kw):
        comm = comm if comm is not None else bp.dnn.Linear(n_in, post.num)
        return bp.dyn.HalfProjAlignPostMg(comm, syn, out or bp.dyn.COBA.desc(E=0.), post, **kw)

    def long_arrays():
        post = bp.dyn.LifRef(2000)
        a, b = np.full(2000, 5.), np.full(2000, 5.)
        b[1000] = 6.
        return "merged" if proj(post, bp.dyn.Expon.desc(2000, tau=a)).syn is \
            proj(post, bp.dyn.Expon.desc(2000, tau=b)).syn else "separate"

    def same_values(a, b):
        post = bp.dyn.LifRef(40)
        return "merged" if proj(post, a).syn is proj(post, b).syn else "separate"

    def training_mode():
        post = bp.dyn.LifRef(10, mode=bm.TrainingMode(2))
        p = bp.dyn.HalfProjAlignPostMg(bp.dnn.Linear(5, 10, mode=bm.TrainingMode(2)), bp.dyn.Expon.desc(10, tau=5.),
                                       bp.dyn.CUBA.desc(), post, mode=bm.TrainingMode(2))

        def step(i):
            p(bm.ones((2, 5)))
            return post(0.)
        bm.for_loop(step, np.arange(3))
        return "runs"

    def sizes_mismatch():
        post = bp.dyn.LifRef(40)
        p = proj(post, bp.dyn.Expon.desc(30, tau=5.))
        bm.for_loop(lambda i: (p(bm.ones(8)), post(0.))[1], np.arange(2))
        return "runs"

    def spike_size():
        post = bp.dyn.LifRef(40)
        p = proj(post, bp.dyn.Expon.desc(40, tau=5.), comm=bp.dnn.EventJitFPHomoLinear(20, 40, prob=0.1, weight=1.))
        p(bm.zeros(21, dtype=bool))
        return "runs"

    class Net(bp.DynSysGroup):
        def __init__(self):
            super().__init__()
            self.post = bp.dyn.LifRef(40)
            self.p = proj(self.post, bp.dyn.Expon.desc(40, tau=5.),
                          comm=bp.dnn.EventJitFPHomoLinear(20, 40, prob=0.1, weight=1.))

        def update(self):
            self.p(bm.zeros(20, dtype=bool))
            return self.post(0.)

    def deprecations():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            net = Net()
            bm.for_loop(lambda i: net.step_run(i), np.arange(2))
        kinds = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0][:100]}" for w in caught})
        return kinds or "none"

    return {
        "long_arrays_differing": long_arrays,
        "positional_vs_keyword": lambda: same_values(bp.dyn.Expon.desc(40, tau=5.), bp.dyn.Expon.desc(size=40, tau=5.)),
        "int_vs_float": lambda: same_values(bp.dyn.Expon.desc(40, tau=5), bp.dyn.Expon.desc(40, tau=5.)),
        "default_written_out": lambda: same_values(bp.dyn.Expon.desc(40, tau=8.), bp.dyn.Expon.desc(40)),
        "training_mode": training_mode,
        "syn_instance": lambda: proj(bp.dyn.LifRef(40), bp.dyn.Expon(40, tau=5.)),
        "post_not_a_system": lambda: bp.dyn.HalfProjAlignPostMg(bp.dnn.Linear(8, 40), bp.dyn.Expon.desc(40),
                                                                bp.dyn.COBA.desc(E=0.), 40),
        "syn_size_mismatch": sizes_mismatch,
        "spike_input_size": spike_size,
        "warnings_in_a_run": deprecations,
    }


CHECKPOINT = textwrap.dedent("""
    # bp.save_state(model) -> dict keyed by instance names; the dict is pickled as numpy arrays.
    import pickle, sys, jax, numpy as np, brainpy as bp, brainpy.math as bm
    mode, path = sys.argv[1], sys.argv[2]
    if mode == 'load':
        bp.dyn.LifRef(10)  # one more model built first: auto-generated names shift
    net = bp.DynSysGroup(N=bp.dyn.LifRef(20))
    if mode == 'save':
        net.N.V.value = bm.ones(20) * -52.
        with open(path, 'wb') as f:
            pickle.dump(jax.tree.map(np.asarray, bp.save_state(net)), f)
    else:
        with open(path, 'rb') as f:
            state = pickle.load(f)
        result = bp.load_state(net, state)
        restored = bool((np.asarray(net.N.V.value) == -52.).all())
        print(f"saved keys {sorted(state)}, load_state returned {result!r}, V restored: {restored}")
""")


def checkpoint_in_a_new_process():
    with tempfile.TemporaryDirectory() as tmp:
        script, path = os.path.join(tmp, "ck.py"), os.path.join(tmp, "state.bp")
        with open(script, "w") as f:
            f.write(CHECKPOINT)
        subprocess.run([sys.executable, script, "save", path], check=True, capture_output=True, text=True)
        out = subprocess.run([sys.executable, script, "load", path], capture_output=True, text=True)
        if out.returncode:
            return out.stderr.strip().splitlines()[-1][:160]
        return out.stdout.strip().splitlines()[-1][:200]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the outcomes here")
    args = ap.parse_args()
    from importlib.metadata import version

    import brainpy as bp

    result = {"brainpy": version("brainpy"), "python": sys.version.split()[0]}
    for name, fn in probes().items():
        result[name] = outcome(fn)
    result["checkpoint_new_process"] = checkpoint_in_a_new_process()
    imported = subprocess.run([sys.executable, "-W", "always", "-c", "import brainpy, brainpy.math"],
                              capture_output=True, text=True)
    result["warnings_on_import"] = imported.stderr.strip()[:300] or "none"
    result["dyn_names"] = sorted(n for n in dir(bp.dyn) if not n.startswith("_"))
    for k, v in result.items():
        if k != "dyn_names":
            print(f"{k}: {v}")
    print(f"dyn_names: {len(result['dyn_names'])}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
