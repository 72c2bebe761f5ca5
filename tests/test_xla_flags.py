"""The two XLA options the fused guide recommends change XLA's program, not the simulation.

``XLA_FLAGS`` is read once, when JAX starts, so each setting is a fresh process
(``xla_flags_worker.py``, both APIs in one): the 8-population network with fused groups and native
kernels, built from ``brainpy_halfproj.dyn`` and (brainpy >= 2.9) from ``brainpy_halfproj.state``,
with and without the options. The rasters and every state must be equal bit for bit, and the program
compiled with the options must hold fewer copies (so the options did reach XLA).
"""
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from brainpy_halfproj._compat import BRAINPY_VERSION

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
#: As docs/guide/fused.md gives them.
FLAGS = "--xla_cpu_copy_insertion_use_region_analysis=true --xla_cpu_enable_concurrency_optimized_scheduler=false"
#: The first jax these options were checked on (the brainpy 2.8 line's); the 2.5 line's 0.4.25 lacks them.
KNOWS_FLAGS = tuple(int(x) for x in jax.__version__.split(".")[:2]) >= (0, 10)


APIS = ["dyn", "state"] if BRAINPY_VERSION >= (2, 9) else ["dyn"]


def _run(out, flags, apis):
    env = dict(os.environ, PYTHONPATH=ROOT, XLA_FLAGS=flags)
    return subprocess.run([sys.executable, os.path.join(HERE, "xla_flags_worker.py"), str(out), *apis],
                          capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``{"default" | "options": folder}``: the worker's results without and with the options."""
    out = {}
    for name, flags in (("default", ""), ("options", FLAGS)):
        out[name] = tmp_path_factory.mktemp(name)
        proc = _run(out[name], flags, APIS)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.mark.skipif(not KNOWS_FLAGS, reason=f"jax {jax.__version__} does not know the options (see the next test)")
@pytest.mark.parametrize("api", [
    "dyn",
    pytest.param("state",
                 marks=pytest.mark.skipif(BRAINPY_VERSION < (2, 9), reason="brainpy.state needs brainpy >= 2.9")),
])
def test_the_xla_options_give_the_same_raster_and_state_with_fewer_copies(api, runs):
    default, options = (np.load(runs[name] / f"{api}.npz") for name in ("default", "options"))
    assert default["raster"].shape == (2000, 800) and 0 < default["raster"].sum()
    assert set(default.files) == set(options.files) and len(default.files) > 8  # raster, copies, states
    for key in default.files:
        if key != "copies":
            np.testing.assert_array_equal(options[key], default[key], err_msg=key)
    assert options["copies"] < default["copies"]


@pytest.mark.skipif(KNOWS_FLAGS, reason=f"jax {jax.__version__} knows the options")
def test_older_jax_stops_at_the_options_and_names_them(tmp_path):
    """The brainpy 2.5 line (jax 0.4.25): XLA ends the process at start-up; the guide says so."""
    proc = _run(tmp_path, FLAGS, ["dyn"])
    assert proc.returncode != 0 and not (tmp_path / "dyn.npz").exists()
    assert "Unknown flags in XLA_FLAGS" in proc.stderr and "xla_cpu_copy_insertion_use_region_analysis" in proc.stderr
