"""The main job: ``python -m brainpy_halfproj`` (``brainpy_halfproj/_main.py``).

Runs of the demo are small (a few hundred neurons, tens of ms) and go through a
subprocess, as a user starts it: the demo switches native kernels on and may pin the
process, which must not leak into this test session. Argument errors are checked in
process: they must stop the demo before it touches anything.
"""
import os
import shutil
import subprocess
import sys

import pytest

import brainpy_halfproj as bhp
from brainpy_halfproj import _main
from brainpy_halfproj.__main__ import main
from brainpy_halfproj._compat import event_kernel_library
from brainpy_halfproj.models import POPULATIONS, PUBLISHED_RATES

PNG = b"\x89PNG\r\n\x1a\n"


def demo(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "brainpy_halfproj", "--no-progress", *args],
                          capture_output=True, text=True, check=True).stdout


def native_or(fallback: str) -> str:
    return "brainpylib (native custom calls)" if event_kernel_library() == "brainpylib" else fallback


@pytest.mark.slow
def test_the_main_job_is_the_microcircuit_and_shows_merging(tmp_path):
    fig = tmp_path / "mc.png"
    out = demo("--scale", "0.02", "--duration", "20", "--output", str(fig))
    assert "microcircuit at scale 0.02, 1544 neurons; 20 ms (200 steps of 0.1 ms)" in out
    assert f"event kernels: {native_or('native handlers (brainpy_halfproj.use_native_kernels)')}" in out
    # 55 recurrent projections and 8 background drives onto 8 populations: 8 synapse states
    assert "merging: 63 projection(s) -> 8 shared synapse state(s) (without merging: 63); memory saved: " in out
    assert "63 merging projection(s) onto 8 post group(s) share 8 synapse state(s)" in out
    for p in POPULATIONS:  # each population's rate beside its published one
        assert any(line.split(":")[0].strip() == p and line.rstrip().endswith(f"/ {PUBLISHED_RATES[p]:5.2f}")
                   for line in out.splitlines()), p
    assert "time: build " in out and "compile + run " in out
    assert fig.read_bytes()[:8] == PNG


def test_memory_saved_is_the_state_of_every_member_but_one():
    import brainpy.math as bm

    from brainpy_halfproj.models import microcircuit

    net = microcircuit(0.02, seed=1)
    report = bhp.merge_report(net)
    line = _main.merging_summary(report)
    copies = sum(net.sizes[p] * (sum(1 for _, post, _ in net.routes if post == p) - 1) for p in POPULATIONS)
    kib = copies * bm.zeros(1).dtype.itemsize / 1024
    assert line.endswith(f"memory saved: {copies} state elements, {kib:.1f} KiB")


@pytest.mark.slow
def test_the_seed_network_is_one_option_away(tmp_path, start_affinity):
    fig = tmp_path / "ei.svg"
    out = demo("--model", "einet", "--duration", "20", "--size", "400", "--output", str(fig))
    assert "E/I network, 400 neurons; 20 ms (200 steps of 0.1 ms)" in out
    assert f"event kernels: {native_or('native handlers (brainpy_halfproj.use_native_kernels)')}; " \
           f"projections: one kernel call each" in out
    assert "2 merging projection(s) onto 1 post group(s) share 2 synapse state(s)" in out
    assert "mean firing rate:" in out and "published" not in out
    assert fig.read_text().lstrip().startswith("<?xml")
    if start_affinity is not None and len(start_affinity) >= 2:
        # the parent must still have its cores, or the child inherits a pinned mask
        assert os.sched_getaffinity(0) == start_affinity, "a test earlier in this session pinned the process"
        expected = 1 if event_kernel_library() == "brainpylib" else len(start_affinity)
        assert f"cores used: {expected}\n" in out


@pytest.mark.slow
def test_options_for_the_kernel_path_and_fused_groups(tmp_path):
    out = demo("--model", "einet", "--duration", "5", "--size", "200", "--output", str(tmp_path / "r.png"),
               "--fused", "--no-native", "--seed", "7", "--all-cores")
    bridge = native_or("brainevent's Python bridge (--no-native)")
    assert f"event kernels: {bridge}; projections: fused" in out
    assert "; 1 fused kernel call(s) per step for 2 projection(s)" in out
    assert "cores used: " in out


BAD = [
    (["--duration", "nan"], "--duration must be a positive number of ms, got nan"),
    (["--duration", "inf"], "--duration must be a positive number of ms, got inf"),
    (["--duration=-inf"], "--duration must be a positive number of ms, got -inf"),
    (["--duration", "0"], "--duration must be a positive number of ms, got 0.0"),
    (["--duration", "-5"], "--duration must be a positive number of ms, got -5.0"),
    (["--duration", "0.01"], "--duration 0.01 ms is less than one time step (dt = 0.1 ms) after rounding; "
                                "give at least 0.1 ms"),
    (["--duration", "x"], "argument --duration: invalid float value: 'x'"),
    (["--model", "einet", "--size", "5"], "--size must be at least 80 (the connection probability "
                                          "0.02 * 4000 / size must not exceed 1), got 5"),
    (["--model", "einet", "--size", "10"], "--size must be at least 80"),
    (["--model", "einet", "--size", "79"], "--size must be at least 80"),
    (["--size", "400"], "--size applies to --model einet; the microcircuit's size is --scale"),
    (["--model", "einet", "--scale", "0.1"], "--scale applies to the microcircuit; the E/I network's size is --size"),
    (["--scale", "0"], "--scale must be in [0.001, 1] (1: the full model; at 0.001 the smallest population "
                       "has one neuron), got 0.0"),
    (["--scale", "0.0003"], "--scale must be in [0.001, 1] (1: the full model; "),  # built, it would fail
    (["--scale", "1.5"], "--scale must be in [0.001, 1] (1: the full model; at 0.001 the smallest population "
                         "has one neuron), got 1.5"),
    (["--scale", "nan"], "--scale must be in [0.001, 1] (1: the full model; "),
    (["--seed", "-1"], "--seed must be in 0 .. 2**32 - 1, got -1"),
    (["--seed", str(2**32)], f"--seed must be in 0 .. 2**32 - 1, got {2**32}"),
    (["--seed", "1.5"], "argument --seed: invalid int value: '1.5'"),
    (["--model", "nest"], "argument --model: invalid choice: 'nest'"),
    (["--output", "{tmp}/missing/fig.png"], "--output '{tmp}/missing/fig.png': the folder '{tmp}/missing' does not "
                                            "exist; create it or choose another"),
    (["--output", "{tmp}"], "--output '{tmp}' is a directory; give a file name, e.g. '{tmp}/figure.png'"),
    (["--output", "{tmp}/fig.foo"], "--output '{tmp}/fig.foo': matplotlib cannot write '.foo' files; "
                                    "end the name in one of "),
    (["--output", "{tmp}/fig"], "--output '{tmp}/fig': matplotlib cannot write a file without a suffix"),
    (["--output", "{tmp}/file.txt/fig.png"], "the folder '{tmp}/file.txt' does not exist"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_every_argument_is_checked_before_anything_runs(args, message, tmp_path, capsys, monkeypatch):
    """Exit status 2 with a message naming the option and the fix; nothing built, pinned or switched."""
    (tmp_path / "file.txt").write_text("not a folder")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--output" not in args:
        args += ["--output", str(tmp_path / "fig.png")]
    pinned, built = [], []
    monkeypatch.setattr(_main, "event_kernel_library", lambda: "brainpylib")  # where the demo would pin
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cpus: pinned.append(cpus))
    monkeypatch.setattr(_main, "run_microcircuit", built.append)
    monkeypatch.setattr(_main, "run_einet_model", built.append)
    native = bhp.native_kernels_enabled()
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert message.replace("{tmp}", str(tmp_path)) in capsys.readouterr().err
    assert pinned == [] and built == []
    assert bhp.native_kernels_enabled() == native
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]  # nothing written, no probe left


@pytest.mark.parametrize("args", [["--model", "einet", "--size", "80", "--duration", "0.1"],
                                  ["--scale", "1", "--duration", "1e6", "--seed", str(2**32 - 1)],
                                  ["--scale", "0.001", "--duration", "0.06"]])
def test_the_edges_of_each_range_are_accepted(args, tmp_path):
    parser = _main.build_parser()
    checked = _main.check_args(parser, parser.parse_args(args + ["--output", str(tmp_path / "f.pdf")]))
    assert checked.n_steps == round(float(args[args.index("--duration") + 1]) / 0.1) >= 1
    assert checked.output == tmp_path / "f.pdf" and list(tmp_path.iterdir()) == []


def test_an_existing_figure_may_be_replaced(tmp_path):
    old = tmp_path / "fig.png"
    old.write_bytes(b"old")
    parser = _main.build_parser()
    assert _main.check_args(parser, parser.parse_args(["--output", str(old)])).output == old
    assert old.read_bytes() == b"old"  # checked, untouched


def test_pgf_only_where_its_tex_is_installed(monkeypatch):
    monkeypatch.setattr(_main.shutil, "which", lambda name: None)
    assert "pgf" not in _main.writable_formats()
    assert {"png", "pdf", "svg"} <= set(_main.writable_formats())


@pytest.mark.slow
def test_a_read_only_folder_is_refused_before_the_run(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    target = folder / "fig.png"
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            with pytest.raises(SystemExit) as exit_:
                main(["--output", str(target)])
        finally:
            folder.chmod(0o755)
        assert exit_.value.code == 2
        return
    # root writes through permission bits: make the folder read-only for root too, with a
    # read-only bind mount in a private user and mount namespace (nothing outside sees it).
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("running as root and unshare(1) cannot make a private read-only mount here")
    script = (f"mount --bind {folder} {folder} && mount -o remount,bind,ro {folder} {folder} && "
              f"exec {sys.executable} -m brainpy_halfproj --output {target}")
    run = subprocess.run([unshare, "-rm", "sh", "-c", script], capture_output=True, text=True)
    assert run.returncode == 2, run.stderr
    assert f"--output '{target}' cannot be written (Read-only file system); choose a writable folder" in run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""


def test_the_smallest_scale_the_demo_accepts_builds():
    from brainpy_halfproj.models import microcircuit

    net = microcircuit(_main.MIN_SCALE, seed=42)
    assert min(net.sizes.values()) == 1
