"""Networks benchmarked by ``case.py``; each is built from a given ``dyn`` namespace.

``dyn`` is either upstream ``brainpy.dyn`` or ``brainpy_halfproj.dyn``; both are used
with exactly upstream's signatures, so the same builder measures both.
"""
import brainpy as bp
import brainpy.math as bm

# The seed E/I (COBA) network parameters; the peers in ``peers/`` use the same numbers.
V_REST, V_TH, V_RESET, TAU_M, TAU_REF = -60., -50., -60., 20., 5.
TAU_E, TAU_I, E_E, E_I, W_E, W_I = 5., 10., 0., -80., 0.6, 6.7
I_EXT = 20.
K_IN = 80  # expected inputs per neuron: prob = 0.02 * 4000 / N


def _comm(kernel, n_pre, n_post, prob, weight, seed):
    if kernel == 'jit':
        return bp.dnn.EventJitFPHomoLinear(n_pre, n_post, prob=prob, weight=weight, seed=seed)
    if kernel == 'csr':
        conn = bp.conn.FixedProb(prob, seed=seed, allow_multi_conn=True)(n_pre, n_post)
        return bp.dnn.EventCSRLinear(conn, weight=weight)
    raise ValueError(f"kernel must be 'jit' or 'csr', got {kernel!r}")


def _fused(fused):
    """``fused=True`` for the plugin's merging classes; nothing for upstream's (no such keyword)."""
    return {'fused': True} if fused else {}


def make_einet(dyn=bp.dyn, n=4000, kernel='jit', seed=42, fused=False):
    """The seed E/I network (80 % excitatory), 80 expected inputs per neuron."""
    bm.random.seed(seed)
    ne = int(n * 0.8)
    ni = n - ne
    prob = K_IN / n

    class EINet(bp.DynSysGroup):
        def __init__(self):
            super().__init__()
            self.N = dyn.LifRef(n, V_rest=V_REST, V_th=V_TH, V_reset=V_RESET, tau=TAU_M,
                                tau_ref=TAU_REF, V_initializer=bp.init.Normal(-55., 2.))
            self.delay = bp.VarDelay(self.N.spike, entries={'I': None})
            self.E = dyn.HalfProjAlignPostMg(comm=_comm(kernel, ne, n, prob, W_E, seed + 1),
                                             syn=dyn.Expon.desc(size=n, tau=TAU_E),
                                             out=dyn.COBA.desc(E=E_E), post=self.N, **_fused(fused))
            self.I = dyn.HalfProjAlignPostMg(comm=_comm(kernel, ni, n, prob, W_I, seed + 2),
                                             syn=dyn.Expon.desc(size=n, tau=TAU_I),
                                             out=dyn.COBA.desc(E=E_I), post=self.N, **_fused(fused))

        def update(self, inp):
            spk = self.delay.at('I')
            self.E(spk[:ne])
            self.I(spk[ne:])
            self.delay(self.N(inp))
            return self.N.spike.value

    return EINet()


def make_multipop(dyn=bp.dyn, n_groups=8, n_pop=500, merged=True, kernel='jit', seed=42, fused=False):
    """``n_groups`` populations connected all-to-all (self included).

    The last quarter of the groups is inhibitory. Every projection onto one post group from
    an excitatory group has the same synapse descriptor (Expon tau=5, COBA E=0), and likewise
    for the inhibitory ones, so the merging classes keep 2 synapse states per post group
    where the unmerged ``HalfProjAlignPost`` keeps ``n_groups``.
    """
    bm.random.seed(seed)
    n_inh = max(1, n_groups // 4)
    prob = K_IN / (n_groups * n_pop)

    class MultiPop(bp.DynSysGroup):
        def __init__(self):
            super().__init__()
            # NodeList, not list: brainpy only finds nodes (and so state, for ``state_sizes``)
            # in attributes it knows to look into
            self.pops = bm.NodeList([dyn.LifRef(n_pop, V_rest=V_REST, V_th=V_TH, V_reset=V_RESET,
                                                tau=TAU_M, tau_ref=TAU_REF,
                                                V_initializer=bp.init.Normal(-55., 2.))
                                     for _ in range(n_groups)])
            self.projs = bm.NodeList()
            self.pre_of = []
            for j, post in enumerate(self.pops):
                for i in range(n_groups):
                    exc = i < n_groups - n_inh
                    tau, e_rev, w = (TAU_E, E_E, W_E) if exc else (TAU_I, E_I, W_I)
                    comm = _comm(kernel, n_pop, n_pop, prob, w, seed + 1 + i * n_groups + j)
                    if merged:
                        proj = dyn.HalfProjAlignPostMg(comm=comm, syn=dyn.Expon.desc(size=n_pop, tau=tau),
                                                       out=dyn.COBA.desc(E=e_rev), post=post, **_fused(fused))
                    else:
                        proj = dyn.HalfProjAlignPost(comm=comm, syn=dyn.Expon(n_pop, tau=tau),
                                                     out=dyn.COBA(E=e_rev), post=post)
                    self.projs.append(proj)
                    self.pre_of.append(i)

        def update(self, inp):
            spikes = [p.spike.value for p in self.pops]  # last step's spikes
            for i, proj in zip(self.pre_of, self.projs, strict=True):
                proj(spikes[i])
            for p in self.pops:
                p(inp)
            return bm.concatenate([p.spike.value for p in self.pops])

    return MultiPop()


def state_sizes(model):
    """(elements in synapse (Expon) state, elements in all state) of a built model."""
    total = sum(int(v.size) for v in model.vars().unique().values())
    syn = 0
    for node in model.nodes().unique().values():
        if isinstance(node, bp.dyn.Expon):
            syn += sum(int(v.size) for v in node.vars(level=0, include_self=True).values())
    return syn, total


def kernel_calls_per_step(model, step):
    """Event-kernel calls that one step of ``model`` (``step(i)``) makes, counted in its compiled program.

    Custom calls outside conditional branches (``brainpy_halfproj._hlo.count_kernel_calls``:
    a fused call's float kernel for event counts above one runs only in steps that have
    them); the program is compiled by ``_hlo.compiled_text``, with the state as arguments.
    """
    from brainpy_halfproj._hlo import compiled_text, count_kernel_calls

    return count_kernel_calls(compiled_text(model, step, 0))[0]
