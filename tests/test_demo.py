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
