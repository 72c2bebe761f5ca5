"""The main job: ``python -m brainpy_halfproj``."""
import subprocess
import sys

import pytest

from brainpy_halfproj._demo import main


def test_demo_runs_and_reports(tmp_path):
    png = tmp_path / "raster.png"
    out = subprocess.run([sys.executable, "-m", "brainpy_halfproj", "--duration", "20", "--size", "400",
                          "--output", str(png), "--no-progress"], capture_output=True, text=True, check=True)
    assert "400 neurons, 20 ms (200 steps)" in out.stdout
    assert "mean firing rate:" in out.stdout and "wall time" in out.stdout
    assert "2 merging projection(s) onto 1 post group(s) share 2 synapse state(s)" in out.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, message", [
    (["--size", "5"], "--size must be at least 10, got 5"),
    (["--duration", "0"], "--duration must be positive, got 0.0"),
])
def test_demo_rejects_bad_options(args, message, capsys):
    with pytest.raises(SystemExit):
        main(args)
    assert message in capsys.readouterr().err


def test_demo_pins_one_core_only_on_the_brainpylib_line(tmp_path):
    import os

    from brainpy_halfproj._compat import event_kernel_library

    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("this platform has no CPU affinity API")
    out = subprocess.run([sys.executable, "-m", "brainpy_halfproj", "--duration", "5", "--size", "100",
                          "--output", str(tmp_path / "r.png"), "--no-progress"],
                         capture_output=True, text=True, check=True).stdout
    available = len(os.sched_getaffinity(0))
    expected = 1 if event_kernel_library() == "brainpylib" else available
    assert f"cores used: {expected}\n" in out
