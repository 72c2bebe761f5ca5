"""The main job: ``python -m brainpy_halfproj``."""
import os
import subprocess
import sys

import pytest

from brainpy_halfproj import _demo
from brainpy_halfproj._compat import event_kernel_library


@pytest.mark.slow
def test_demo_runs_and_reports(tmp_path):
    png = tmp_path / "raster.png"
    out = subprocess.run([sys.executable, "-m", "brainpy_halfproj", "--duration", "20", "--size", "400",
                          "--output", str(png), "--no-progress"], capture_output=True, text=True, check=True)
    assert "400 neurons, 20 ms (200 steps)" in out.stdout
    assert "mean firing rate:" in out.stdout and "wall time" in out.stdout
    assert "2 merging projection(s) onto 1 post group(s) share 2 synapse state(s)" in out.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    expected = ("brainpylib (native custom calls)" if event_kernel_library() == "brainpylib"
                else "native handlers (brainpy_halfproj.use_native_kernels)")
    assert f"event kernels: {expected}; projections: one kernel call each" in out.stdout


@pytest.mark.slow
def test_demo_options_for_the_kernel_path_and_fused_groups(tmp_path):
    out = subprocess.run([sys.executable, "-m", "brainpy_halfproj", "--duration", "5", "--size", "200",
                          "--output", str(tmp_path / "r.png"), "--no-progress", "--fused", "--no-native"],
                         capture_output=True, text=True, check=True).stdout
    expected = ("brainpylib (native custom calls)" if event_kernel_library() == "brainpylib"
                else "brainevent's Python bridge (--no-native)")
    assert f"event kernels: {expected}; projections: fused" in out
    assert "; 1 fused kernel call(s) per step for 2 projection(s)" in out


@pytest.mark.parametrize("args, message", [
    (["--size", "5"], "--size must be at least 10, got 5"),
    (["--duration", "0"], "--duration must be positive, got 0.0"),
])
def test_demo_rejects_bad_options_before_touching_the_process(args, message, capsys, monkeypatch):
    """Even where the demo would pin the process (the brainpylib line), a rejected call must not."""
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("this platform has no CPU affinity API")
    before = os.sched_getaffinity(0)
    pinned = []
    monkeypatch.setattr(_demo, "event_kernel_library", lambda: "brainpylib")
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cpus: pinned.append(cpus))
    with pytest.raises(SystemExit):
        _demo.main(args)
    assert message in capsys.readouterr().err
    assert pinned == []
    assert os.sched_getaffinity(0) == before


@pytest.mark.slow
def test_demo_pins_one_core_only_on_the_brainpylib_line(tmp_path, start_affinity):
    if start_affinity is None:
        pytest.skip("this platform has no CPU affinity API")
    if len(start_affinity) < 2:
        pytest.skip(f"the test session started on {len(start_affinity)} core: pinning would not show")
    # The parent must still have the cores it started with, or the child inherits a pinned mask.
    assert os.sched_getaffinity(0) == start_affinity, "a test earlier in this session pinned the process"
    out = subprocess.run([sys.executable, "-m", "brainpy_halfproj", "--duration", "5", "--size", "100",
                          "--output", str(tmp_path / "r.png"), "--no-progress"],
                         capture_output=True, text=True, check=True).stdout
    expected = 1 if event_kernel_library() == "brainpylib" else len(start_affinity)
    assert f"cores used: {expected}\n" in out
