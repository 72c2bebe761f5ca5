"""The wheel holds exactly the package's files: every file under brainpy_halfproj/ in the source
tree (py.typed and any data file included), its metadata and license, and nothing else.

Usage: python .ci/check_wheel.py dist/NAME.whl   (from the repository root)
"""
import sys
import zipfile
from pathlib import Path

wheel = Path(sys.argv[1])
names = set(zipfile.ZipFile(wheel).namelist())
source = {p.as_posix() for p in Path("brainpy_halfproj").rglob("*")
          if p.is_file() and "__pycache__" not in p.parts and p.suffix not in {".pyc", ".pyo"}}
dist_info = {n for n in names if n.split("/")[0].endswith(".dist-info")}
missing = sorted(source - names)
extra = sorted(names - source - dist_info)
if not any(n.endswith(".dist-info/licenses/LICENSE") for n in dist_info):
    missing.append("*.dist-info/licenses/LICENSE")
for label, items in (("missing from the wheel", missing), ("in the wheel but not in the package", extra)):
    for item in items:
        print(f"{wheel.name}: {label}: {item}")
if missing or extra:
    sys.exit(1)
print(f"{wheel.name}: {len(names - dist_info)} package files, as in the source tree; {len(dist_info)} metadata files")
