"""The JPEGs of device_design.sh: bench_preprocess.py's 1024, subsets of 64 and 256, and 4096 (4 links to each)."""

import os
import sys
from pathlib import Path

sys.path.insert(0, "tests/bench")

from bench_preprocess import write_images  # noqa: E402

if __name__ == "__main__":
    base = Path("/tmp/imgs1024")
    write_images(base, 1024)
    lines = (base / "val_map.txt").read_text().splitlines()
    for n in (64, 256):
        d = Path(f"/tmp/imgs{n}")
        d.mkdir()
        for line in lines[:n]:
            os.link(base / line.split()[0], d / line.split()[0])
        (d / "val_map.txt").write_text("\n".join(lines[:n]) + "\n")
    d = Path("/tmp/imgs4096")
    d.mkdir()
    out = []
    for k in range(4):
        for i, line in enumerate(lines):
            name, label = line.split()
            new = f"ILSVRC2012_val_{k * 1024 + i + 1:08d}.JPEG"
            os.link(base / name, d / new)
            out.append(f"{new} {label}")
    (d / "val_map.txt").write_text("\n".join(out) + "\n")
    print("images ready")
