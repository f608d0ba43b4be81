"""Copy the test data the suite uses into tests/fixtures/, so a fresh clone runs its tests alone.

The three genuine StyleGAN2 pickles (24 MB each) are stored xz-compressed, byte for byte: xz finds the arrays
G and Gs share and halves each file, which keeps all three originals (not rewritten copies) inside the
repository's 50 MB fixture budget. SHA256SUMS records the original files' digests; the test suite unpacks the
pickles once and checks them against it. Files no test reads are left out.

    python scripts/pack_fixtures.py SOURCE_FIXTURES_DIR   # stdlib only; xz level 9, about a minute
"""
from __future__ import annotations

import argparse
import hashlib
import lzma
import shutil
from pathlib import Path

DEST = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
COPIED = [
    "photos/astronaut.png",
    "photos/chelsea.png",
    "photos/obama.jpg",
    "photos/obama-exif-rotated.jpg",
    "photos/two-faces.jpg",
    "alignment/alignment.json",
    "alignment/astronaut_01.png",
    "alignment/obama_01.png",
    "stylegan2/reference/ffhq-seeds-psi0.7.npz",
    "stylegan2/reference/ffhq-seeds-noise-from-seed-psi0.5.npz",
    "stylegan2/reference/ffhq-synthesis.npz",
    "stylegan2/reference/toon-synthesis.npz",
]
PICKLES = ["tiny-ffhq.pkl", "tiny-other.pkl", "tiny-toon.pkl"]


def pack(source: Path, dest: Path = DEST) -> None:
    for name in COPIED:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(str(source / name), str(target))
    sums = []
    for name in PICKLES:
        data = (source / "stylegan2" / name).read_bytes()
        sums.append("%s  %s\n" % (hashlib.sha256(data).hexdigest(), name))
        (dest / "stylegan2" / (name + ".xz")).write_bytes(lzma.compress(data, preset=9))
        print("packed", name)
    (dest / "stylegan2" / "SHA256SUMS").write_text("".join(sums))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="the fixtures folder the data comes from")
    pack(parser.parse_args().source)


if __name__ == "__main__":
    main()
