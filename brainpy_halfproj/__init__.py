"""brainpy-halfproj: align-post projections for BrainPy with a value-keyed merging registry.

Use :mod:`brainpy_halfproj.dyn` as a drop-in for ``brainpy.dyn``, and (brainpy >= 2.9)
:mod:`brainpy_halfproj.state` for ``brainpy.state``; the documentation site (``docs/``) has the user guide.
"""
from importlib.metadata import version as _version

from . import dyn as dyn
from . import plotting as plotting
from ._checkpoint import FORMAT_VERSION as FORMAT_VERSION
from ._checkpoint import CheckpointError as CheckpointError
from ._checkpoint import load_checkpoint as load_checkpoint
from ._checkpoint import load_state_dict as load_state_dict
from ._checkpoint import save_checkpoint as save_checkpoint
from ._checkpoint import state_dict as state_dict
from ._connectivity import SparseRows as SparseRows
from ._demo import EINet as EINet
from ._demo import run_einet as run_einet
from ._fused import FusedCall as FusedCall
from ._hlo import count_collectives as count_collectives
from ._hlo import step_collectives as step_collectives
from ._merge_key import DescriptorSpec as DescriptorSpec
from ._merge_key import MergeKey as MergeKey
from ._merge_key import UnkeyableError as UnkeyableError
from ._merge_key import describe as describe
from ._merge_key import merge_key as merge_key
from ._mesh import gather as gather
from ._native import KernelRecord as KernelRecord
from ._native import NativeKernelsError as NativeKernelsError
from ._native import native_kernel_report as native_kernel_report
from ._native import native_kernels as native_kernels
from ._native import native_kernels_enabled as native_kernels_enabled
from ._native import use_native_kernels as use_native_kernels
from ._partition import CallInfo as CallInfo
from ._partition import Partition as Partition
from ._partition import PartitionError as PartitionError
from ._partition import ProjectionInfo as ProjectionInfo
from ._partition import VariableInfo as VariableInfo
from ._partition import partition as partition
from ._partition import partition_report as partition_report
from ._partitioned_csr import PartitionedCSR as PartitionedCSR
from ._projections import FullProjAlignPost as FullProjAlignPost
from ._projections import FullProjAlignPostMg as FullProjAlignPostMg
from ._projections import HalfProjAlignPost as HalfProjAlignPost
from ._projections import HalfProjAlignPostMg as HalfProjAlignPostMg
from ._registry import MergeGroup as MergeGroup
from ._report import Finding as Finding
from ._report import FusedInfo as FusedInfo
from ._report import GroupInfo as GroupInfo
from ._report import MergeReport as MergeReport
from ._report import merge_report as merge_report

__version__ = _version("brainpy-halfproj")

# The public names: everything imported above without a leading underscore. The API reference
# (docs/_api.py) is generated from this list, so a name imported here appears there by itself.
__all__ = sorted(name for name in dir() if not name.startswith("_"))
