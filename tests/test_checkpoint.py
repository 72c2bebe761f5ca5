"""Checkpoints: merge groups matched by what they are, files handled safely, clear refusals."""
import fcntl
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import zipfile

import brainpy as bp
import brainpy.math as bm
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import brainpy_halfproj as bhp
from brainpy_halfproj import _paths

from ._nets import LIF, build_net

# ----------------------------------------------------------------------------- a network in either order


class OrderedNet(bp.DynSysGroup):
    """An E/I network whose two merge groups on one post are built E first or I first.

    The JIT layers have fixed seeds, so both orders build the same connectivity.
    """

    def __init__(self, cls_name="HalfProjAlignPostMg", i_first=False, fused=False, tau_i=10., n=400):
        super().__init__()
        bm.random.seed(5)
        extra = {"fused": True} if fused else {}
        self.ne = ne = int(n * 0.8)
        jit = bp.dnn.EventJitFPHomoLinear
        cls = getattr(bhp.dyn, cls_name)
        self.N = bhp.dyn.LifRef(n, **LIF, V_initializer=bp.init.Normal(-55., 2.))
        if cls_name.startswith("Half"):
            self.delay = bp.VarDelay(self.N.spike, entries={"I": None})
            sources = {"E": (), "I": ()}
            sizes = {"E": ne, "I": n - ne}
        else:  # the full classes read their spikes from a delay on `pre`
            self.P = bhp.dyn.LifRef(n - ne, **LIF, V_initializer=bp.init.Normal(-55., 2.))
            sources = {"E": (self.N, 0.1), "I": (self.P, 0.1)}
            sizes = {"E": n, "I": n - ne}
        params = {"E": (0.6, 1, 5., 0.), "I": (6.7, 2, tau_i, -80.)}

        def make(kind):
            weight, seed, tau, reversal = params[kind]
            return cls(*sources[kind], jit(sizes[kind], n, prob=0.2, weight=weight, seed=seed),
                       bp.dyn.Expon.desc(n, tau=tau), bp.dyn.COBA.desc(E=reversal), self.N, **extra)

        for kind in ("I", "E") if i_first else ("E", "I"):
            setattr(self, kind, make(kind))

    def update(self, inp):
        if hasattr(self, "delay"):
            spk = self.delay.at("I")
            self.E(spk[:self.ne])
            self.I(spk[self.ne:])
            self.delay(self.N(inp))
        else:
            self.E()
            self.I()
            self.N(inp)
            self.P(inp)
        return self.N.spike.value


def _run(net, n, start):
    return np.asarray(bm.for_loop(lambda i: net.step_run(i, 20.), np.arange(start, start + n)))


def _arrays(net):
    return {k: v for k, v in bhp.state_dict(net).items() if not k.startswith("__")}


def _by_role(net):
    """Every state array, the merge groups' and fused buffers' under their projection's name."""
    roles = {k: np.asarray(v.value) for k, v in _paths.variables(net).items() if "halfproj_" not in k}
    for name in ("E", "I"):
        proj = getattr(net, name)
        roles[f"{name}.syn.g"] = np.asarray(proj.syn.g.value)
        if proj.fused_call is not None:
            index = proj.fused_call.projections.index(proj)
            roles[f"{name}.buffer"] = np.asarray(proj.fused_call.buffers[index].value)
    assert len(roles) == len(_paths.variables(net))
    return roles


@pytest.mark.parametrize("cls_name, fused", [("HalfProjAlignPostMg", False), ("HalfProjAlignPostMg", True),
                                             ("FullProjAlignPostMg", False)])
def test_a_model_with_its_projections_in_another_order_continues_exactly(tmp_path, cls_name, fused):
    """Saved E first, loaded I first: the storage names swap, the groups must not."""
    saved = OrderedNet(cls_name, fused=fused)
    _run(saved, 100, 0)
    bhp.save_checkpoint(saved, tmp_path / "state.npz")
    at_save = _by_role(saved)
    rest = _run(saved, 100, 100)
    assert rest.sum() > 0

    loaded = OrderedNet(cls_name, i_first=True, fused=fused)
    assert loaded.E.merge_group.storage_name == "halfproj_Expon_COBA_1"  # the test needs the swap
    bhp.load_checkpoint(loaded, tmp_path / "state.npz")
    restored = _by_role(loaded)
    assert restored.keys() == at_save.keys()
    for role, value in at_save.items():
        np.testing.assert_array_equal(restored[role], value, err_msg=role)
    np.testing.assert_array_equal(_run(loaded, 100, 100), rest)
    # the post group sums its inputs in construction order: the same up to float rounding
    np.testing.assert_allclose(np.asarray(loaded.N.V.value), np.asarray(saved.N.V.value), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(loaded.I.syn.g.value), np.asarray(saved.I.syn.g.value))

    in_memory = OrderedNet(cls_name, i_first=True, fused=fused)  # the same through state dicts
    bhp.load_state_dict(in_memory, bhp.state_dict(loaded))
    for role, value in _by_role(loaded).items():
        np.testing.assert_array_equal(_by_role(in_memory)[role], value, err_msg=role)


def test_a_group_the_checkpoint_lacks_is_named(tmp_path):
    bhp.save_checkpoint(OrderedNet(), tmp_path / "state.npz")
    other = OrderedNet(tau_i=11.)
    with pytest.raises(bhp.CheckpointError, match=(
            r"the model's group on post 'N' with key `Expon\(size=400, .*tau=11\) -> COBA\(E=-80, .*\)` and "
            r"members \['I'\] is not in the checkpoint; the checkpoint's group on post 'N' with key "
            r"`Expon\(.*tau=10\) -> .*` and members \['I'\] is not in the model")):
        bhp.load_checkpoint(other, tmp_path / "state.npz")
    before = np.asarray(other.I.syn.g.value).copy()
    assert np.array_equal(np.asarray(other.I.syn.g.value), before)  # nothing written


class Hidden(bp.DynSysGroup):
    """Two groups whose keys differ only in a trainable variable's identity, members kept out of reach."""

    def __init__(self):
        super().__init__()
        self.N = bhp.dyn.LifRef(10)
        self.hidden = [bhp.HalfProjAlignPostMg(bp.dnn.OneToOne(10, 1.), bp.dyn.Expon.desc(10, tau=bm.TrainVar(
            bm.ones(1))), bp.dyn.CUBA.desc(), self.N) for _ in range(2)]


def test_groups_that_cannot_be_told_apart_are_refused(tmp_path):
    net = Hidden()
    assert net.hidden[0].merge_group is not net.hidden[1].merge_group
    bhp.save_checkpoint(net, tmp_path / "state.npz")
    with pytest.raises(bhp.CheckpointError, match=(
            r"the group on post 'N' with key `Expon\(.*tau=<TrainVar>\) -> CUBA\(.*\)` and members none the "
            r"model reaches cannot be matched unambiguously: the model has 2 such groups and the checkpoint 2")):
        bhp.load_checkpoint(Hidden(), tmp_path / "state.npz")


def test_the_file_records_each_group_by_post_key_and_members(tmp_path):
    bhp.save_checkpoint(OrderedNet(fused=True), tmp_path / "state.npz")
    with np.load(tmp_path / "state.npz") as data:
        assert int(data["__format__"]) == bhp.FORMAT_VERSION == 3
        records = json.loads(str(data["__groups__"]))
        files = set(data.files)
    groups = {(r["post"], r["key"].split(" -> ")[0].split("tau=")[-1], tuple(r["members"])): r["entries"]
              for r in records}
    assert groups == {
        ("N", "5)", ("E",)): {"syn.g": "N.before_updates.halfproj_Expon_COBA_0.syn.g"},
        ("N", "10)", ("I",)): {"syn.g": "N.before_updates.halfproj_Expon_COBA_1.syn.g"},
        ("N", "spike buffer of a fused call", ("E",)): {"buffer": "N.before_updates.halfproj_fused.buffers-0"},
        ("N", "spike buffer of a fused call", ("I",)): {"buffer": "N.before_updates.halfproj_fused.buffers-1"},
    }
    assert all(path in files for r in records for path in r["entries"].values())


class Many(bp.DynSysGroup):
    """Merge groups on one post built in a given order; each projection's attribute is ``p<k>``."""

    TAUS = (2., 3., 5., 8.)

    def __init__(self, order):
        super().__init__()
        self.N = bhp.dyn.LifRef(6)
        for k in order:
            syn = (bp.dyn.Expon.desc(6, tau=self.TAUS[k]) if k % 2 else
                   bp.dyn.DualExponV2.desc(6, tau_decay=self.TAUS[k], tau_rise=1.))
            setattr(self, f"p{k}", bhp.HalfProjAlignPostMg(bp.dnn.OneToOne(6, 1.), syn, bp.dyn.CUBA.desc(), self.N))


@settings(max_examples=25)
@given(saved=st.permutations(range(4)), loaded=st.permutations(range(4)))
def test_every_group_gets_its_own_state_back_whatever_the_construction_orders(saved, loaded):
    source = Many(saved)
    for k in range(4):  # a value per group and variable that says whose it is
        for i, var in enumerate(getattr(source, f"p{k}").syn.vars().unique().values()):
            var.value = bm.full(var.shape, 10. * k + i)
    target = Many(loaded)
    bhp.load_state_dict(target, bhp.state_dict(source))
    for k in range(4):
        got = [np.asarray(v.value) for v in getattr(target, f"p{k}").syn.vars().unique().values()]
        assert [float(g.mean()) for g in got] == [10. * k + i for i in range(len(got))]


# ----------------------------------------------------------------------------- files of format 1 and 2


def _legacy(net, version):
    state = _arrays(net)
    if version == 1:
        return {k.replace("before_updates", "_before_updates"): v for k, v in state.items()}
    return {"__format__": np.array(2), **state}


@pytest.mark.parametrize("version", [1, 2])
def test_an_old_file_whose_groups_only_order_tells_apart_is_refused(tmp_path, version):
    bm.random.seed(2)
    net = bhp.EINet(100)
    path = tmp_path / "old.npz"
    np.savez(path, **_legacy(net, version))
    with pytest.raises(bhp.CheckpointError, match=(
            rf"has format {version}, which tells merge groups apart only by construction order, and post 'N' has "
            r"2 groups stored as N\.before_updates\.halfproj_Expon_COBA_<i> \(group on post 'N' with key "
            r"`Expon\(.*tau=5\) .*` and members \['E'\]; .*\): loading by that order would swap their state .* "
            r"load with trust_order=True and save again")):
        bhp.load_checkpoint(bhp.EINet(100), path)
    fresh = bhp.EINet(100)
    bhp.load_checkpoint(fresh, path, trust_order=True)
    for k, v in _arrays(fresh).items():
        np.testing.assert_array_equal(v, _arrays(net)[k], err_msg=k)


class TwoKinds(bp.DynSysGroup):
    """Groups of different synapse classes on one post: their storage names tell them apart."""

    def __init__(self, cuba_first=False):
        super().__init__()
        bm.random.seed(4)
        self.N = bhp.dyn.LifRef(50, **LIF, V_initializer=bp.init.Normal(-55., 2.))
        jit = bp.dnn.EventJitFPHomoLinear
        descriptors = {"A": (0.6, 1, bp.dyn.Expon.desc(50, tau=5.), bp.dyn.COBA.desc(E=0.)),
                       "B": (0.2, 2, bp.dyn.DualExponV2.desc(50, tau_decay=8.), bp.dyn.CUBA.desc())}
        for kind in ("B", "A") if cuba_first else ("A", "B"):
            weight, seed, syn, out = descriptors[kind]
            setattr(self, kind, bhp.HalfProjAlignPostMg(jit(50, 50, prob=0.3, weight=weight, seed=seed), syn, out,
                                                        self.N))

    def update(self, inp):
        spk = self.N.spike.value
        self.A(spk)
        self.B(spk)
        return self.N(inp)


def test_an_old_file_whose_storage_names_identify_the_groups_loads_in_another_order(tmp_path):
    saved = TwoKinds()
    _run(saved, 50, 0)
    np.savez(tmp_path / "old.npz", **_legacy(saved, 2))
    rest = _run(saved, 50, 50)
    assert rest.sum() > 0
    loaded = TwoKinds(cuba_first=True)
    assert loaded.A.merge_group.storage_name == "halfproj_Expon_COBA_1"
    assert loaded.B.merge_group.storage_name == "halfproj_DualExponV2_CUBA_0"
    bhp.load_checkpoint(loaded, tmp_path / "old.npz")
    np.testing.assert_array_equal(_run(loaded, 50, 50), rest)


# ----------------------------------------------------------------------------- keys and round trips


CHECKPOINT_SCRIPT = textwrap.dedent("""
    import json, sys
    import brainpy as bp, brainpy.math as bm, numpy as np
    import brainpy_halfproj as bhp
    mode, path, extra = sys.argv[1], sys.argv[2], int(sys.argv[3])
    for _ in range(extra):  # other models built first shift brainpy's auto-generated names
        bp.dyn.LifRef(10); bhp.EINet(50)
    bm.random.seed(7)
    net = bhp.EINet(300)
    def run(n, start):
        return np.asarray(bm.for_loop(lambda i: net.step_run(i, 20.), np.arange(start, start + n)))
    if mode == "save":
        first = run(100, 0)
        bhp.save_checkpoint(net, path)
        rest = run(100, 100)
        print(json.dumps({"name": net.N.name, "first": int(first.sum()), "rest": rest.astype(int).tolist()}))
    else:
        bhp.load_checkpoint(net, path)
        rest = run(100, 100)
        print(json.dumps({"name": net.N.name, "rest": rest.astype(int).tolist()}))
""")


def _run_script(tmp_path, *args):
    script = tmp_path / "ckpt.py"
    script.write_text(CHECKPOINT_SCRIPT)
    out = subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_checkpoint_restores_in_a_new_process_after_other_models(tmp_path):
    path = tmp_path / "state.npz"
    saved = _run_script(tmp_path, "save", path, 3)
    loaded = _run_script(tmp_path, "load", path, 0)
    assert saved["name"] != loaded["name"], "the test must exercise differing instance names"
    assert saved["first"] > 0 and np.sum(saved["rest"]) > 0
    assert loaded["rest"] == saved["rest"]


def test_checkpoint_rejects_a_different_model(tmp_path):
    path = tmp_path / "state.npz"
    bhp.save_checkpoint(bhp.EINet(100), path)
    with pytest.raises(bhp.CheckpointError, match=r"the model's group on post 'N' with key `Expon\(size=120, .*` and "
                                                  r"members \['E'\] is not in the checkpoint"):
        bhp.load_checkpoint(bhp.EINet(120), path)
    state = bhp.state_dict(bhp.EINet(100))
    state["N.V"] = np.zeros(120, np.float32)
    with pytest.raises(bhp.CheckpointError, match=r"entry 'N.V' has shape \(120,\) and dtype float32, but the "
                                                  r"model's variable has shape \(100,\) and dtype float32\. Build the "
                                                  r"model with the same sizes"):
        bhp.load_state_dict(bhp.EINet(100), state)
    del state["N.V"]
    with pytest.raises(bhp.CheckpointError, match=r"missing keys \['N.V'\], unexpected keys \[\]"):
        bhp.load_state_dict(bhp.EINet(100), state)
    with pytest.raises(bhp.CheckpointError, match=r"missing keys \[\], unexpected keys \['extra'\]"):
        bhp.load_state_dict(bhp.EINet(100), {**bhp.state_dict(bhp.EINet(100)), "extra": np.zeros(1)})


def test_a_dtype_mismatch_says_dtype_and_x64():
    state = bhp.state_dict(bhp.EINet(100))
    state["N.V"] = state["N.V"].astype(np.float64)
    with pytest.raises(bhp.CheckpointError, match=(
            r"entry 'N.V' has dtype float64, but the model's variable has dtype float32\. The checkpoint was written "
            r"with 64-bit precision and the model built without it: build the model after bm.enable_x64\(\)")):
        bhp.load_state_dict(bhp.EINet(100), state)
    state["N.V"] = state["N.V"].astype(np.int32)
    with pytest.raises(bhp.CheckpointError, match=r"entry 'N.V' has dtype int32, but the model's variable has "
                                                  r"dtype float32\.$"):
        bhp.load_state_dict(bhp.EINet(100), state)


def test_state_dict_keys_are_structural_and_unique():
    net = bhp.EINet(100)
    keys = list(_arrays(net))
    assert keys == list(_arrays(bhp.EINet(100)))
    assert "N.V" in keys and "N.before_updates.halfproj_Expon_COBA_0.syn.g" in keys
    assert len(keys) == len(net.vars().unique())
    assert {k for k in bhp.state_dict(net) if k.startswith("__")} == {"__format__", "__groups__"}


def test_keys_use_brainpys_public_accessors_not_its_private_names():
    net = build_net(bhp.dyn, "FullProjAlignPostMg")
    keys = list(bhp.state_dict(net))
    assert not [k for k in keys if {"_before_updates", "_after_updates"} & set(k.split("."))]
    assert "E.before_updates.halfproj_Expon_COBA_0.syn.g" in keys
    delays = [k for k in keys if k.startswith("E.after_updates.") and k.endswith(".data")]
    assert len(delays) == 1
    name = delays[0].split(".")[2]
    assert net.E.after_updates[name].data is net.E2E.delay.data  # the key names the public route


def test_path_of_gives_the_checkpoint_key_of_every_variable():
    net = build_net(bhp.dyn, "FullProjAlignPostMg")
    for path, var in _paths.variables(net).items():
        assert _paths.path_of(net, var) == path
    assert set(_paths.variables(net)) == set(_arrays(net))
    with pytest.raises(ValueError, match=r"path_of: the Variable \(shape \(3,\)\) is not a state variable of FullNet"):
        _paths.path_of(net, bm.Variable(bm.zeros(3)))
    with pytest.raises(TypeError, match=r"`model` must be a brainpy DynamicalSystem, but got a dict"):
        _paths.variables({})


def test_a_path_without_npz_round_trips_and_nothing_else_is_written(tmp_path):
    path = tmp_path / "state"
    bm.random.seed(1)
    net = bhp.EINet(100)
    bhp.save_checkpoint(net, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]
    fresh = bhp.EINet(100)
    bhp.load_checkpoint(fresh, str(path))
    np.testing.assert_array_equal(np.asarray(fresh.N.V.value), np.asarray(net.N.V.value))


def test_a_newer_format_is_refused(tmp_path):
    path = tmp_path / "state.npz"
    np.savez(path, **{**bhp.state_dict(bhp.EINet(100)), "__format__": np.array(4)})
    with pytest.raises(bhp.CheckpointError, match=r"has format 4, but this version of brainpy-halfproj "
                                                  r"reads formats 1 to 3"):
        bhp.load_checkpoint(bhp.EINet(100), path)


def test_trust_order_must_be_a_bool(tmp_path):
    with pytest.raises(TypeError, match=r"load_checkpoint: `trust_order` must be True or False, got 1"):
        bhp.load_checkpoint(bhp.EINet(100), tmp_path / "x.npz", trust_order=1)
    with pytest.raises(TypeError, match=r"load_state_dict: `trust_order` must be True or False, got 'no'"):
        bhp.load_state_dict(bhp.EINet(100), {}, trust_order="no")


# ----------------------------------------------------------------------------- what is not a checkpoint


def _zip_with_bad_format(path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("__format__.npy", b"not an npy array")
        z.writestr("N.V.npy", b"nor this")


def _savez(path, **arrays):
    with open(path, "wb") as f:  # exactly at path: numpy would add .npz to a name without it
        np.savez(f, **arrays)


def _npy(path):
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))


NOT_CHECKPOINTS = {
    "text": lambda p: p.write_text("hello\n"),
    "png": lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64)),
    "npy": _npy,
    "bad-format-entry": _zip_with_bad_format,
    "unrelated-npz": lambda p: _savez(p, a=np.zeros(3)),
    "pickled-npz": lambda p: _savez(p, __format__=np.array(3), __groups__=np.array([{}], dtype=object)),
    "format-3-without-groups": lambda p: _savez(p, __format__=np.array(3), **_arrays(bhp.EINet(100))),
    "empty-zip": lambda p: zipfile.ZipFile(p, "w").close(),
}


@pytest.mark.parametrize("kind", list(NOT_CHECKPOINTS))
def test_a_file_that_is_not_a_checkpoint_is_named_as_such(tmp_path, kind):
    path = tmp_path / f"file.{kind}"
    NOT_CHECKPOINTS[kind](path)
    with pytest.raises(bhp.CheckpointError, match=rf"'{path}' .*not a brainpy-halfproj checkpoint") as info:
        bhp.load_checkpoint(bhp.EINet(100), path)
    assert "allow_pickle" not in str(info.value)


def test_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        bhp.load_checkpoint(bhp.EINet(100), tmp_path / "nothing.npz")


# ----------------------------------------------------------------------------- saving safely


def test_an_interrupted_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "state.npz"
    bm.random.seed(1)
    old = bhp.EINet(100)
    bhp.save_checkpoint(old, path)
    before = path.read_bytes()

    def crash_mid_write(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a zip file")  # some bytes out, then the writer dies
        file.flush()
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(np, "savez", crash_mid_write)
    with pytest.raises(KeyboardInterrupt):
        bhp.save_checkpoint(bhp.EINet(100), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.npz"]  # no temporary file left
    fresh = bhp.EINet(100)
    bhp.load_checkpoint(fresh, path)
    np.testing.assert_array_equal(np.asarray(fresh.N.V.value), np.asarray(old.N.V.value))


def test_saving_keeps_the_file_permissions(tmp_path):
    path = tmp_path / "state.npz"
    bhp.save_checkpoint(bhp.EINet(100), path)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # as open() would create it
    path.chmod(0o640)
    bhp.save_checkpoint(bhp.EINet(100), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_write_protected_file_is_refused_even_for_root(tmp_path):
    path = tmp_path / "state.npz"
    path.write_bytes(b"keep me")
    path.chmod(0o444)
    with pytest.raises(PermissionError, match=r"is write-protected \(mode -r--r--r--\); refused as "
                                              r"open\(path, 'wb'\) would \(also for root\)"):
        bhp.save_checkpoint(bhp.EINet(100), path)
    assert path.read_bytes() == b"keep me" and stat.S_IMODE(path.stat().st_mode) == 0o444


def test_a_directory_is_refused(tmp_path):
    folder = tmp_path / "dir"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match=r"`path` is a directory; pass a file path, e\.g\. '.*dir/state.npz'"):
        bhp.save_checkpoint(bhp.EINet(100), folder)
    assert folder.is_dir() and not list(folder.iterdir())


def test_a_fifo_is_never_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"`path` '.*pipe' is a fifo, not a regular file"):
        bhp.save_checkpoint(bhp.EINet(100), fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_a_character_device_is_never_replaced(tmp_path):
    """A null device made in tmp_path (root only): never a device outside the test's folder."""
    device = tmp_path / "null"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, OSError) as err:
        pytest.skip(f"cannot make a device node here ({err}); needs root")
    with pytest.raises(ValueError, match=r"is a character device, not a regular file"):
        bhp.save_checkpoint(bhp.EINet(100), device)
    assert stat.S_ISCHR(os.lstat(device).st_mode)


def test_a_symlink_is_written_through(tmp_path):
    target = tmp_path / "real.npz"
    target.write_bytes(b"old")
    target.chmod(0o600)
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    bm.random.seed(3)
    net = bhp.EINet(100)
    bhp.save_checkpoint(net, link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    fresh = bhp.EINet(100)
    bhp.load_checkpoint(fresh, target)
    np.testing.assert_array_equal(np.asarray(fresh.N.V.value), np.asarray(net.N.V.value))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.npz", "real.npz"]


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporary_files_of_the_same_target_are_removed_and_nothing_else(tmp_path):
    dead = _dead_pid()
    stale = tmp_path / f".state.npz.halfproj-{dead}-abc123.tmp"
    locked = tmp_path / f".state.npz.halfproj-{dead}-locked.tmp"  # a writer elsewhere still holds its lock
    kept = [tmp_path / f".other.npz.halfproj-{dead}-abc123.tmp",  # another target's
            tmp_path / ".state.npz.abc123.tmp",                   # not ours
            tmp_path / f".state.npz.halfproj-{os.getpid()}-live.tmp"]  # a live process's
    for p in [stale, locked, *kept]:
        p.write_bytes(b"partial")
    with open(locked, "rb") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        bhp.save_checkpoint(bhp.EINet(100), tmp_path / "state.npz")
        assert not stale.exists()
        assert locked.exists() and all(p.exists() for p in kept)
    bhp.save_checkpoint(bhp.EINet(100), tmp_path / "state.npz")
    assert not locked.exists() and all(p.exists() for p in kept)


KILLED_MID_SAVE = textwrap.dedent("""
    import sys, time
    import numpy as np
    import brainpy_halfproj as bhp
    def hang(file, *args, **kwargs):
        file.write(b"PK half a checkpoint")
        file.flush()
        print("writing", flush=True)
        time.sleep(600)
    np.savez = hang
    bhp.save_checkpoint(bhp.EINet(50), sys.argv[1])
""")


@pytest.mark.slow
def test_a_save_killed_mid_write_leaves_a_temporary_file_the_next_save_removes(tmp_path):
    path = tmp_path / "state.npz"
    bhp.save_checkpoint(bhp.EINet(100), path)
    before = path.read_bytes()
    writer = subprocess.Popen([sys.executable, "-c", KILLED_MID_SAVE, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
        temporaries = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert len(temporaries) == 1
        bhp.save_checkpoint(bhp.EINet(100), tmp_path / "state.npz")  # the writer is alive: its file stays
        assert temporaries[0].exists()
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
    assert temporaries[0].exists() and path.read_bytes() != b""  # SIGKILL left it
    bhp.save_checkpoint(bhp.EINet(100), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.npz"]
    assert path.read_bytes()[:2] == before[:2] == b"PK"


def test_groups_match_by_value_however_their_arguments_were_written(tmp_path):
    # tau_i=10 (an int) and tau_i=10.0 build equal merge keys; the file records the key's
    # canonical text, so the saved I synapse loads into the model written the other way.
    net = OrderedNet(tau_i=10)
    _run(net, 30, 0)
    bhp.save_checkpoint(net, tmp_path / "state.npz")
    other = OrderedNet(tau_i=10.0, i_first=True)
    bhp.load_checkpoint(other, tmp_path / "state.npz")
    for name in "EI":
        np.testing.assert_array_equal(np.asarray(getattr(other, name).syn.g.value),
                                      np.asarray(getattr(net, name).syn.g.value))
