"""The model files Toonify runs on: their official names (as preload.sh downloads them, and as make-tiny
writes its stand-ins) and the paths of one set."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

FFHQ_FILE = "stylegan2-ffhq-config-f.pkl"
TOON_FILE = "ffhq-cartoon-blended-64.pkl"
PERCEPTUAL_FILE = "vgg16_zhang_perceptual.pkl"
MARKER_FILE = "TINY-TEST-MODELS.txt"  # beside tiny random test models, never beside real ones
STYLES_FOLDER = "styles"  # NAME.pkl (+ NAME.json) per extra style: stylegan2.styles
STUDENT_FILE = "toonify-student.npz"  # the fast-mode student (stylegan2.student), when one was trained


@dataclass(frozen=True)
class ModelPaths:
    ffhq: Path
    toon: Optional[Path]  # None: projection only
    perceptual: Path
    styles: Optional[Path] = None  # the folder of extra styles (stylegan2.styles); None: the default toon only

    @classmethod
    def in_dir(cls, models_dir: Path) -> "ModelPaths":
        """The official file names in one folder."""
        models_dir = Path(models_dir)
        return cls(models_dir / FFHQ_FILE, models_dir / TOON_FILE, models_dir / PERCEPTUAL_FILE,
                   models_dir / STYLES_FOLDER)

    def missing(self) -> List[str]:
        """The names of the files of this set that are not there (no file is opened)."""
        return [path.name for path in (self.ffhq, self.toon, self.perceptual)
                if path is not None and not path.is_file()]
