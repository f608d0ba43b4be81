"""``python -m app toonify``: the whole pipeline without a server, on real photos and tiny models."""
from __future__ import annotations

from PIL import Image

from tests.conftest import PHOTOS, run_cli


def test_toonify_cli_writes_toons_and_paste(tmp_path, engine, tiny_models):
    result = run_cli(["app", "toonify", str(PHOTOS / "two-faces.jpg"), str(PHOTOS / "chelsea.png"), "--out",
                      str(tmp_path), "--face", "all", "--steps", "3", "--engine", engine, "--models",
                      str(tiny_models)])
    assert result.returncode == 1  # the cat has no face; the other photo still went through
    assert "chelsea.png: no face found" in result.stderr
    assert Image.open(str(tmp_path / "two-faces_01-toon.png")).size == (64, 64)
    assert (tmp_path / "two-faces_02-toon.png").exists()
    assert Image.open(str(tmp_path / "two-faces-paste.png")).size == (921, 512)
