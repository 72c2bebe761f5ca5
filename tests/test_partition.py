"""A model split over devices: the same raster and state on 1, 2 and 4 devices, and in 2 processes.

The microcircuit runs on 1 and 4 devices here, and on 1 and 2 in the example script's test.

Device counts are fixed when JAX starts, so the multi-device runs happen in fresh
processes (``partition_worker.py``) on simulated CPU devices; this file asserts on what
they write.
"""
import json
import os
import socket
import subprocess
import sys

import brainpy as bp
import brainpy.math as bm
import numpy as np
import pytest

import brainpy_halfproj as bhp
from brainpy_halfproj._compat import event_kernel_library
from brainpy_halfproj._connectivity import SparseRows, read_connectivity

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "partition_worker.py")
ROOT = os.path.dirname(os.path.dirname(WORKER))
NONE = {"all-gather": 0, "all-reduce": 0, "reduce-scatter": 0, "collective-permute": 0, "all-to-all": 0,
        "collective-broadcast": 0}

brainevent_only = pytest.mark.skipif(event_kernel_library() != "brainevent",
                                     reason="partition needs brainpy >= 2.8 (brainevent kernels, jax.shard_map)")


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("XLA_FLAGS", None)  # the worker sets its own device count
    return env


def _worker(tmp_path, *args, timeout=600):
    proc = subprocess.run([sys.executable, WORKER, *args, str(tmp_path)], capture_output=True, text=True,
                          timeout=timeout, env=_env(), cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    name = args[0]
    with open(tmp_path / f"{name}.json") as f:
        return np.load(tmp_path / f"{name}.npz"), json.load(f)


def _states(arrays, n):
    return {k[:-len(f"_{n}")]: arrays[k] for k in arrays.files if k.startswith("state:") and k.endswith(f"_{n}")}


# ----------------------------------------------------------------------------- the seed network


@pytest.fixture(scope="module")
def einet(tmp_path_factory):
    return _worker(tmp_path_factory.mktemp("einet"), "einet")


@pytest.mark.slow
@brainevent_only
def test_seed_network_same_raster_and_state_on_1_2_4_devices(einet):
    arrays, facts = einet
    assert arrays["raster_1"].shape == (300, 400) and arrays["raster_1"].sum() > 100
    one = _states(arrays, 1)
    assert {"state:N.V", "state:N.spike", "state:N.t_last_spike"} <= set(one)
    for n in (2, 4):
        np.testing.assert_array_equal(arrays[f"raster_{n}"], arrays["raster_1"])
        other = _states(arrays, n)
        assert sorted(other) == sorted(one)
        for key in one:
            np.testing.assert_array_equal(other[key], one[key], err_msg=key)


@pytest.mark.slow
@brainevent_only
def test_seed_network_same_raster_as_unpartitioned(einet):
    # Homogeneous weights: a post neuron's input is a sum of equal terms, the same in any
    # order, so the read-out CSR kernel reproduces the JIT kernel bit for bit.
    arrays, _ = einet
    np.testing.assert_array_equal(arrays["raster_1"], arrays["unpartitioned"])


@pytest.mark.slow
@brainevent_only
def test_one_all_gather_per_step_and_nothing_else(einet):
    _, facts = einet
    assert facts["collectives_1"] == NONE
    for n in (2, 4):
        assert facts[f"collectives_{n}"] == dict(NONE, **{"all-gather": 1})


@pytest.mark.slow
@brainevent_only
def test_neuron_state_is_split_and_stays_split_across_calls(einet):
    _, facts = einet
    for n in (1, 2, 4):
        assert facts[f"split_{n}"] == ["N.V", "N.before_updates.halfproj_Expon_COBA_0.syn.g",
                                       "N.before_updates.halfproj_Expon_COBA_1.syn.g", "N.t_last_spike"]
        assert facts[f"replicated_{n}"] == ["N.spike"]
        assert facts[f"misplaced_after_runs_{n}"] == []
        assert facts[f"shards_{n}"] == [n, 400 // n]


@pytest.mark.slow
@brainevent_only
def test_each_device_holds_its_block_of_the_synapses(einet):
    _, facts = einet
    synapses = facts["synapses_1"]
    assert facts["slots_1"] == synapses  # one device: no padding
    for n in (2, 4):
        assert facts[f"synapses_{n}"] == synapses
        for slots, total in zip(facts[f"slots_{n}"], synapses, strict=True):
            # at least an even share, at most 25 % padding for these row lengths
            assert total / n <= slots <= 1.25 * total / n


@pytest.mark.slow
@brainevent_only
def test_reset_state_unplaces_and_partition_places_again(einet):
    _, facts = einet
    assert facts["misplaced_after_reset"] == ["N.V", "N.before_updates.halfproj_Expon_COBA_0.syn.g",
                                              "N.before_updates.halfproj_Expon_COBA_1.syn.g", "N.spike",
                                              "N.t_last_spike"]
    assert facts["misplaced_after_repartition"] == []
    assert facts["runs_after_repartition"] == 50


@pytest.mark.slow
@brainevent_only
def test_sizes_that_do_not_split_evenly_are_refused(einet):
    _, facts = einet
    assert facts["indivisible_error"].startswith(
        "partition: post group sizes must be multiples of the number of devices (4), but LifRef")
    assert "(402) are not; choose sizes divisible by 4 (microcircuit(..., size_multiple=4))" in facts[
        "indivisible_error"]


@pytest.mark.slow
@brainevent_only
def test_fused_groups_make_one_call_per_device_and_give_the_same_raster(einet):
    arrays, facts = einet
    one = {k: arrays[k] for k in arrays.files if k.startswith("fused_state:") and k.endswith("_1")}
    assert arrays["fused_raster_1"].sum() > 100 and len(one) >= 5
    for n in (1, 2, 4):
        assert facts[f"fused_kernels_{n}"] == ["fused", "fused"]
        assert len(facts[f"fused_calls_{n}"]) == 1 and facts[f"fused_calls_{n}"][0][0] == ["fused", "call"]
        assert facts[f"fused_collectives_{n}"] == (NONE if n == 1 else dict(NONE, **{"all-gather": 1}))
    for n in (2, 4):
        np.testing.assert_array_equal(arrays[f"fused_raster_{n}"], arrays["fused_raster_1"])
        for key in one:
            np.testing.assert_array_equal(arrays[key[:-2] + f"_{n}"], arrays[key], err_msg=key)
    # the fused model not partitioned: equal weights, the same sums in any order
    np.testing.assert_array_equal(arrays["fused_raster_1"], arrays["fused_unpartitioned"])


@pytest.mark.slow
@brainevent_only
@pytest.mark.parametrize("cls", ["HalfProjAlignPostMg", "HalfProjAlignPost", "FullProjAlignPostMg",
                                 "FullProjAlignPost"])
def test_every_projection_class_same_raster_and_state_on_1_2_4_devices(classes, cls):
    arrays, facts = classes
    raster = arrays[f"{cls}_raster_1"]
    assert raster.sum() > 100
    one = {k[len(cls) + 1:-2]: arrays[k] for k in arrays.files if k.startswith(f"{cls}_state:") and k.endswith("_1")}
    assert len(one) >= 5
    groups = 1 if cls.startswith("Half") else 2  # HalfNet: one population; FullNet: E and I
    for n in (1, 2, 4):
        assert facts[f"{cls}_kernels_{n}"] == ["partitioned"] and facts[f"{cls}_misplaced_{n}"] == []
        assert facts[f"{cls}_collectives_{n}"] == (NONE if n == 1 else dict(NONE, **{"all-gather": groups}))
    for n in (2, 4):
        np.testing.assert_array_equal(arrays[f"{cls}_raster_{n}"], raster)
        for key, value in one.items():
            np.testing.assert_array_equal(arrays[f"{cls}_{key}_{n}"], value, err_msg=key)


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    return _worker(tmp_path_factory.mktemp("classes"), "classes")


# ----------------------------------------------------------------------------- the microcircuit


@pytest.mark.slow
@brainevent_only
def test_microcircuit_same_raster_and_state_on_1_and_4_devices(tmp_path):
    # 1 against 2 devices for this model: test_example_script_shows_identical_spikes_or_the_lines_error
    arrays, facts = _worker(tmp_path, "microcircuit")
    assert facts["sizes"] == {"L23E": 412, "L23I": 116, "L4E": 440, "L4I": 108, "L5E": 96, "L5I": 20,
                              "L6E": 288, "L6I": 60}
    rasters = {n: np.concatenate([arrays[k] for k in sorted(arrays.files) if k.startswith(f"raster_{n}_")], 1)
               for n in (1, 4)}
    assert rasters[1].shape == (1000, 1540) and rasters[1].sum() > 50
    one = _states(arrays, 1)
    # per population: V, spike, refractory state, merged synapse, delay buffer, spike counter
    assert len(one) == 48
    np.testing.assert_array_equal(rasters[4], rasters[1])
    four = _states(arrays, 4)
    assert sorted(four) == sorted(one)
    for key in one:
        np.testing.assert_array_equal(four[key], one[key], err_msg=key)
    for n in (1, 4):
        # 55 recurrent JIT projections per device; the 8 Poisson drives are element-wise
        assert facts[f"partitioned_{n}"] == 55 and facts[f"left_to_xla_{n}"] == ["OneToOne"]
        assert facts[f"misplaced_after_runs_{n}"] == []
    assert facts["collectives_1"] == NONE
    # one all-gather of each population's spikes; XLA's CPU pipeline does not combine them
    assert facts["collectives_4"] == dict(NONE, **{"all-gather": 8})


# ----------------------------------------------------------------------------- two processes


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@brainevent_only
def test_two_processes_through_jax_distributed_match_one_device(tmp_path):
    port = str(_free_port())
    procs = [subprocess.Popen([sys.executable, WORKER, "process", str(k), port, str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(), cwd=ROOT)
             for k in (0, 1)]
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=300)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("the two jax.distributed processes did not finish within 300 s")
    codes = [p.returncode for p in procs]
    if 77 in codes:
        pytest.skip("jax.distributed cannot start on this machine: "
                    + " | ".join(o.strip().splitlines()[-1] for o in outs if o.strip()))
    assert codes == [0, 0], "\n".join(o[-4000:] for o in outs)
    arrays = np.load(tmp_path / "process.npz")
    with open(tmp_path / "process.json") as f:
        facts = json.load(f)
    assert facts["processes"] == 2 and facts["devices"] == 2 and facts["local_shards"] == 1
    assert facts["collectives"] == dict(NONE, **{"all-gather": 1})

    bm.random.seed(42)
    net = bhp.EINet(400)  # the same model, one device, in this process
    bhp.partition(net, 1)
    raster = bhp.run_einet(net, 300)
    assert raster.sum() > 100
    np.testing.assert_array_equal(arrays["raster"], raster)
    np.testing.assert_array_equal(arrays["state:N.V"], np.asarray(net.N.V.value))
    np.testing.assert_array_equal(arrays["state:N.before_updates.halfproj_Expon_COBA_1.syn.g"],
                                  np.asarray(net.N.before_updates["halfproj_Expon_COBA_1"].syn.g.value))


# ----------------------------------------------------------------------------- the example


@pytest.mark.slow
def test_example_script_shows_identical_spikes_or_the_lines_error(tmp_path):
    figure = tmp_path / "figure.png"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "partitioned_microcircuit.py"),
                           "--devices", "2", "--scale", "0.02", "--duration", "50", "--output", str(figure)],
                          capture_output=True, text=True, timeout=600, env=_env(), cwd=tmp_path)
    if event_kernel_library() != "brainevent":
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert proc.stdout.startswith("partition: brainpy 2.5"), proc.stdout
        return
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "spike rasters on 1 and 2 devices identical: True" in proc.stdout
    assert "collectives per step: all-gather 8" in proc.stdout and figure.stat().st_size > 10_000


# ----------------------------------------------------------------------------- in this process


@pytest.mark.skipif(event_kernel_library() == "brainevent", reason="the brainpy 2.5 (brainpylib) line only")
def test_brainpy25_line_refuses_with_the_reason():
    with pytest.raises(bhp.PartitionError,
                       match=r"partition: brainpy 2\.5\.\d+ runs its event kernels through brainpylib \(taichi\), "
                             r"whose kernels crash or hang when several devices run them at once, and its JAX "
                             r"\(0\.4\.25\) has no jax\.shard_map; a model cannot be split over devices on this "
                             r"line\. Use brainpy 2\.8 or later"):
        bhp.partition(bhp.EINet(400), 1)


@brainevent_only
def test_partitioned_layer_computes_the_layers_current():
    comm = bp.dnn.EventJitFPNormalLinear(300, 200, prob=0.1, w_mu=0.5, w_sigma=0.2, seed=2)
    rows = read_connectivity(comm, 300, 200)
    layer = bhp.PartitionedCSR(rows, _mesh1(), "EventJitFPNormalLinear")
    assert not layer.homogeneous and layer.synapses == rows.nnz == layer.slots_per_device
    spikes = np.random.default_rng(0).random(300) < 0.2
    np.testing.assert_allclose(np.asarray(layer(spikes)), spikes.astype(np.float32) @ rows.todense(),
                               rtol=1e-5, atol=1e-5)
    back = layer.to_rows()
    for a, b in zip((back.indptr, back.indices, back.data), (rows.indptr, rows.indices, rows.data), strict=True):
        np.testing.assert_array_equal(a, b)


@brainevent_only
def test_homogeneous_weights_store_one_weight():
    rows = SparseRows(np.array([0, 2, 2, 3]), np.array([0, 3, 1], np.int32), np.full(3, 0.5, np.float32), (3, 4))
    layer = bhp.PartitionedCSR(rows, _mesh1())
    assert layer.homogeneous and layer.data is None and layer.nbytes_per_device == 3 * 4
    assert np.asarray(layer(np.array([True, False, True]))).tolist() == [0.5, 0.5, 0.0, 0.5]
    with pytest.raises(ValueError, match=r"PartitionedCSR 'PartitionedCSR\d+': the spike input has shape \(4,\), "
                                         r"but the layer expects \(3,\)"):
        layer(np.zeros(4, bool))


def _mesh1():
    import jax
    from jax.sharding import Mesh

    return Mesh(np.array(jax.devices()[:1]), ("neurons",))


@brainevent_only
def test_report_of_a_partitioned_model():
    net = bhp.EINet(400)
    report = bhp.partition(net, 1)
    assert report is not None and bhp.partition_report(net).split == report.split
    assert [(p.layer, p.kernel) for p in report.projections] == [("EventJitFPHomoLinear", "partitioned")] * 2
    assert [c.owner for c in report.calls] == [net.E.name, net.I.name]
    assert all(c.synapses > 0 for c in report.calls)
    assert report.posts == ((net.N.name, 400, 400),)
    assert report.state_bytes_per_device == sum(v.bytes_per_device for v in report.variables) == 400 * (4 * 4 + 1)
    text = str(report)
    assert text.startswith("Partition over 1 device(s) along 'neurons': ")
    assert "variables: 4 split, 1 replicated" in text
    assert "projections: 2 partitioned, 0 fused, 0 left to XLA (none); kernel calls per device and step: 2" in text


@brainevent_only
def test_errors_name_the_argument_and_the_fix():
    with pytest.raises(TypeError, match=r"partition: `model` must be a brainpy DynamicalSystem, but got a int"):
        bhp.partition(3)
    with pytest.raises(ValueError, match=r"partition: `devices` asks for 64 devices, but JAX sees 1 \(cpu\); pass "
                                         r"a number from 1 to 1, or on CPU set XLA_FLAGS=--xla_force_host_platform_"
                                         r"device_count=64 before importing jax"):
        bhp.partition(bhp.EINet(400), 64)
    with pytest.raises(TypeError, match=r"partition: `devices` must be None, a number of devices, a sequence of jax "
                                        r"devices or a jax.sharding.Mesh, but got \['cpu'\]"):
        bhp.partition(bhp.EINet(400), "cpu")

    class NoProjections(bp.DynSysGroup):
        def __init__(self):
            super().__init__()
            self.N = bp.dyn.LifRef(8)

    with pytest.raises(ValueError, match=r"partition: NoProjections has no align-post projection of "
                                         r"brainpy_halfproj .*build it with brainpy_halfproj.dyn"):
        bhp.partition(NoProjections())
    with pytest.raises(ValueError, match=r"partition_report: EINet '.*' is not partitioned; call "
                                         r"brainpy_halfproj.partition\(model, devices\) first"):
        bhp.partition_report(bhp.EINet(400))


@brainevent_only
def test_batching_models_are_refused():
    post = bp.dyn.LifRef(8, mode=bm.BatchingMode(2))
    net = bp.DynSysGroup()
    net.post = post
    net.proj = bhp.HalfProjAlignPostMg(bp.dnn.EventJitFPHomoLinear(4, 8, prob=0.5, weight=1.),
                                       bp.dyn.Expon.desc(8, tau=5.), bp.dyn.CUBA.desc(), post,
                                       mode=bm.BatchingMode(2))
    with pytest.raises(ValueError, match=r"partition: .* run\(s\) in a batching or training mode; partitioning "
                                         r"splits neurons, not batches"):
        bhp.partition(net, 1)


def test_count_collectives_reads_hlo_text():
    hlo = """
      %ag = f32[8] all-gather(f32[4] %x), dimensions={0}
      %ags = (f32[4], f32[8]) all-gather-start(f32[4] %y), dimensions={0}
      %agd = f32[8] all-gather-done((f32[4], f32[8]) %ags)
      %ar = f32[8] all-reduce(f32[8] %z), to_apply=%add
      %cp = f32[8] collective-permute(f32[8] %w), source_target_pairs={{0,1}}
      %name.all-gather = f32[8] add(f32[8] %a, f32[8] %b)
    """
    assert bhp.count_collectives(hlo) == dict(NONE, **{"all-gather": 2, "all-reduce": 1, "collective-permute": 1})


# ----------------------------------------------------------------------------- following the layers


def _einet_run(net, steps=150):
    return bhp.run_einet(net, steps)


@brainevent_only
def test_partition_keeps_the_projections_layers_and_follows_their_weights():
    bm.random.seed(42)
    net = bhp.EINet(400)
    layer = net.E.comm
    bhp.partition(net, 1)
    assert net.E.comm is layer and net.E.refs["comm"] is layer  # the projection computes through its kernel
    assert isinstance(net.E.kernel, bhp.PartitionedCSR) and net.E.kernel.source.comm is layer
    net.E.comm.weight = 0.9
    bm.random.seed(42)
    reference = bhp.EINet(400)
    reference.E.comm.weight = 0.9
    expected = _einet_run(reference)
    assert expected.sum() > 100
    np.testing.assert_array_equal(_einet_run(net), expected)


@brainevent_only
@pytest.mark.parametrize("change", ["prob", "normal-weights", "fused-weight"])
def test_partition_refuses_what_it_cannot_follow_and_partitioning_again_reads_it(change):
    def build():
        bm.random.seed(42)
        net = bhp.EINet(400, fused=change == "fused-weight")
        if change == "normal-weights":
            net.E.comm = bp.dnn.EventJitFPNormalLinear(320, 400, prob=0.02, w_mu=0.6, w_sigma=0.1, seed=3)
            net.E.refs["comm"] = net.E.comm
        return net

    def apply(net):
        if change == "prob":
            net.E.comm.prob = 0.25  # EINet(400) connects with 0.2
            return r"`comm\.prob` changed from 0\.2 to 0\.25"
        if change == "normal-weights":
            net.E.comm.w_mu = 0.9
            return r"`comm\.w_mu` changed from 0\.6 to 0\.9"
        net.E.comm.weight = 0.9
        return r"`comm\.weight` changed from 0\.6 to 0\.9"

    net = build()
    bhp.partition(net, 1)
    what = apply(net)
    with pytest.raises(ValueError, match=fr"HalfProjAlignPostMg '{net.E.name}': {what} after .*; call "
                                         r"brainpy_halfproj\.partition\(model, devices\) again, which reads changed "
                                         r"layers again"):
        _einet_run(net, 2)
    bhp.partition(net, 1)
    reference = build()
    apply(reference)
    expected = _einet_run(reference)
    assert expected.sum() > 20
    got = _einet_run(net)
    if change == "normal-weights":  # random weights: the JIT kernel may sum in another order
        assert abs(int(got.sum()) - int(expected.sum())) <= 0.02 * expected.sum()
    else:
        np.testing.assert_array_equal(got, expected)


def test_the_types_public_calls_return_are_public():
    for name in ("SparseRows", "VariableInfo", "ProjectionInfo", "CallInfo", "Partition", "PartitionedCSR"):
        obj = getattr(bhp, name)
        assert obj.__module__.startswith("brainpy_halfproj.") and name in dir(bhp)
