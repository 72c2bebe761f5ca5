"""The benchmark networks of ``workloads.py``, built from brainpy.state classes (brainpy >= 2.9).

``ns`` is the namespace that provides the classes: upstream's ``brainpy.state`` or the plugin's
``brainpy_halfproj.state``; both are used with upstream's signatures (``fused=True`` is passed
only when asked for). The parameters are those of ``workloads.py`` (and so of
``brainpy_halfproj.EINet``) in matched units: conductances in nS, currents in pA, ``R`` = 1 GOhm,
so that ``R * g * (E - V)`` and ``R * I`` are in mV as the unitless ``bp.dyn`` numbers are.

What differs from the ``bp.dyn`` networks, by construction:

* ``LIFRef`` clamps while ``t - t_spike < tau_ref`` where ``bp.dyn``'s ``LifRef`` clamps while
  ``<=``: ``tau_ref`` is given as ``TAU_REF + dt / 2`` so that both clamp 50 steps;
  ``spk_reset='hard'`` resets to ``V_reset`` exactly, as ``bp.dyn`` does.
* ``conn='fixedprob'`` (upstream's own choice, ``brainstate.nn.EventFixedProb``): every
  presynaptic neuron has exactly ``K_IN`` targets drawn with replacement (brainevent's
  ``FixedNumPerPre``, the ``ell_binary_matvec`` kernels), where ``bp.dyn``'s JIT layer connects
  each pair with probability ``K_IN / n`` (the same mean in-degree). ``conn='jit'``:
  ``brainstate.nn.SparseLinear`` over brainevent's ``JITCScalarR`` (the kernel behind
  ``bp.dnn.EventJitFPHomoLinear``), fed ``brainevent.BinaryArray`` spikes, with the bp.dyn
  layer's orientation: the same statistics, and the same synapses for the same seed.
* brainpy.state's ``Expon`` adds a step's input after the decay, ``bp.dyn``'s merging classes
  before it: a spike's conductance reaches the membrane one decay factor stronger.
"""

import brainevent
import brainstate
import braintools
import brainunit as u
import jax.numpy as jnp
import numpy as np
from workloads import E_E, E_I, I_EXT, K_IN, TAU_E, TAU_I, TAU_M, TAU_REF, V_RESET, V_REST, V_TH, W_E, W_I

DT = 0.1  # ms


def _comm(conn, n_pre, n_post, prob, weight, seed):
    w = weight * u.nS
    if conn == 'fixedprob':
        return brainstate.nn.EventFixedProb(n_pre, n_post, conn_num=prob, conn_weight=w, seed=seed)
    if conn == 'jit':  # bp.dnn.EventJitFPHomoLinear(n_pre, n_post): JITCScalarR(shape=(n_post, n_pre)) @ spikes
        matrix = brainevent.JITCScalarR((w, prob, seed), shape=(n_post, n_pre), corder=False)
        return brainstate.nn.SparseLinear(matrix.T)
    raise ValueError(f"conn must be 'fixedprob' or 'jit', got {conn!r}")


def _projection(ns, conn, pre_n, post, prob, weight, seed, syn, out, fused):
    extra = {'fused': True} if fused else {}
    comm = _comm(conn, pre_n, post.varshape[0], prob, weight, seed)
    modules = (brainevent.BinaryArray,) if conn == 'jit' else ()
    return ns.AlignPostProj(*modules, comm=comm, syn=syn, out=out, post=post, **extra)


def _lif(ns, n):
    return ns.LIFRef(n, R=1. * u.Gohm, V_rest=V_REST * u.mV, V_th=V_TH * u.mV, V_reset=V_RESET * u.mV,
                     tau=TAU_M * u.ms, tau_ref=(TAU_REF + DT / 2) * u.ms, spk_reset='hard',
                     V_initializer=braintools.init.Normal(-55., 2., unit=u.mV))


def _descs(ns, n):
    """(syn, out) descriptors of the excitatory and the inhibitory synapses onto ``n`` neurons."""
    zero = braintools.init.Constant(jnp.float32(0.) * u.nS)  # 0. * u.nS is weakly typed: a second compile
    return ((ns.Expon.desc(n, tau=TAU_E * u.ms, g_initializer=zero), ns.COBA.desc(E=E_E * u.mV)),
            (ns.Expon.desc(n, tau=TAU_I * u.ms, g_initializer=zero), ns.COBA.desc(E=E_I * u.mV)))


def make_einet(ns, n=4000, conn='fixedprob', seed=42, fused=False):
    """The seed E/I network (80 % excitatory), 80 expected inputs per neuron; states initialised."""
    brainstate.random.seed(seed)
    ne = int(n * 0.8)
    prob = K_IN / n

    class EINet(brainstate.nn.Module):
        def __init__(self):
            super().__init__()
            self.N = _lif(ns, n)
            (syn_e, out_e), (syn_i, out_i) = _descs(ns, n)
            self.E = _projection(ns, conn, ne, self.N, prob, W_E, seed + 1, syn_e, out_e, fused)
            self.I = _projection(ns, conn, n - ne, self.N, prob, W_I, seed + 2, syn_i, out_i, fused)

        def update(self, i):
            with brainstate.environ.context(i=i, t=i * DT * u.ms):
                spk = self.N.get_spike() != 0.  # last step's spikes
                self.E(spk[:ne])
                self.I(spk[ne:])
                return self.N(I_EXT * u.pA) != 0.

    net = EINet()
    brainstate.nn.init_all_states(net)
    return net


def make_multipop(ns, n_groups=8, n_pop=500, conn='fixedprob', seed=42, fused=False):
    """``n_groups`` populations connected all-to-all; 2 merged synapse states per post group."""
    brainstate.random.seed(seed)
    n_inh = max(1, n_groups // 4)
    prob = K_IN / (n_groups * n_pop)

    class MultiPop(brainstate.nn.Module):
        def __init__(self):
            super().__init__()
            self.pops = [_lif(ns, n_pop) for _ in range(n_groups)]
            self.projs, self.pre_of = [], []
            for j, post in enumerate(self.pops):
                exc, inh = _descs(ns, n_pop)
                for i in range(n_groups):
                    (syn, out), w = (exc, W_E) if i < n_groups - n_inh else (inh, W_I)
                    self.projs.append(_projection(ns, conn, n_pop, post, prob, w, seed + 1 + i * n_groups + j,
                                                  syn, out, fused))
                    self.pre_of.append(i)

        def update(self, i):
            with brainstate.environ.context(i=i, t=i * DT * u.ms):
                spikes = [p.get_spike() != 0. for p in self.pops]
                for pre, proj in zip(self.pre_of, self.projs, strict=True):
                    proj(spikes[pre])
                return jnp.concatenate([p(I_EXT * u.pA) != 0. for p in self.pops])

    net = MultiPop()
    brainstate.nn.init_all_states(net)
    return net


def state_elems(model):
    """Elements in all of the model's states (connectivity weights included)."""
    return sum(int(np.size(u.get_mantissa(leaf))) for s in model.states().values()
               for leaf in __import__('jax').tree.leaves(s.value))


def kernel_calls_per_step(step):
    """Custom calls (event kernels) in the compiled program of one ``step(i)``, outside conditional branches.

    Lowered by ``brainstate.transform.jit``, which passes the model's states in as arguments.
    Counted as the ``bp.dyn`` rows are (``brainpy_halfproj._hlo.count_kernel_calls``): a fused
    call's float kernel for event counts above one sits in a branch taken only in steps that
    have such counts, so it is not counted.
    """
    from brainpy_halfproj._hlo import count_kernel_calls

    hlo = brainstate.transform.jit(step).lower(0).compile().as_text()
    return count_kernel_calls(hlo)[0]
