"""``brainpy_halfproj.dyn`` is a drop-in for ``bp.dyn``."""
import warnings

import brainpy as bp
import pytest

import brainpy_halfproj as bhp
from brainpy_halfproj import _compat

OURS = {
    "HalfProjAlignPostMg": bhp.HalfProjAlignPostMg,
    "FullProjAlignPostMg": bhp.FullProjAlignPostMg,
    "HalfProjAlignPost": bhp.HalfProjAlignPost,
    "FullProjAlignPost": bhp.FullProjAlignPost,
    "ProjAlignPostMg1": bhp.HalfProjAlignPostMg,
    "ProjAlignPostMg2": bhp.FullProjAlignPostMg,
    "ProjAlignPost1": bhp.HalfProjAlignPost,
    "ProjAlignPost2": bhp.FullProjAlignPost,
}


@pytest.mark.parametrize("name", _compat.upstream_dyn_names())
def test_every_upstream_name_resolves_to_the_same_object(name):
    expected = OURS.get(name, getattr(bp.dyn, name))
    assert getattr(bhp.dyn, name) is expected


@pytest.mark.parametrize("alias, target", sorted(_compat.LEGACY_ALIASES.items()))
def test_legacy_aliases_are_ours(alias, target):
    assert getattr(bhp.dyn, alias) is OURS[target]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert getattr(bp.dyn, alias).__name__ == target  # upstream still serves them (via __getattr__ on 2.5)
    # brainpy 2.5 says they are deprecated (and turns its warning on whatever the filters say); 2.8/2.9 do not
    expected = [f"brainpy.dyn.{alias} is deprecated. Use brainpy.dyn.{target} instead."] if _compat.BRAINPY_VERSION < (
        2, 6) else []
    assert [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)] == expected


def test_star_import_and_dir_offer_every_name():
    namespace = {}
    exec("from brainpy_halfproj.dyn import *", namespace)
    for name in [*_compat.upstream_dyn_names(), *OURS]:
        assert name in namespace and name in dir(bhp.dyn)
    assert namespace["LifRef"] is bp.dyn.LifRef and namespace["ProjAlignPostMg1"] is bhp.HalfProjAlignPostMg


def test_unknown_name_raises_attribute_error():
    with pytest.raises(AttributeError, match=r"module 'brainpy_halfproj.dyn' has no attribute 'NoSuchNeuron' "
                                             r"\(nor has brainpy.dyn\)"):
        _ = bhp.dyn.NoSuchNeuron


def test_importing_leaves_brainpy_dyn_classes_upstream():
    assert bp.dyn.HalfProjAlignPostMg is not bhp.dyn.HalfProjAlignPostMg
    assert issubclass(bhp.HalfProjAlignPostMg, bp.Projection)
