"""LPIPS-VGG16 distance in PyTorch (spec §4.1; semantics in stylegan2.perceptual)."""
from __future__ import annotations

from typing import List

import numpy as np
import torch
import torch.nn.functional as F

from ..perceptual import TAP_NORM_EPS, PerceptualSpec, input_affine


class LPIPS:
    """VGG weights as tensors on one device; same methods as stylegan2.tf.lpips.LPIPS."""

    def __init__(self, spec: PerceptualSpec, device: torch.device) -> None:
        scale, shift = input_affine()
        self._scale = torch.as_tensor(scale, device=device)[None, :, None, None]
        self._shift = torch.as_tensor(shift, device=device)[None, :, None, None]
        self._blocks = [
            [(torch.as_tensor(np.ascontiguousarray(k.transpose(3, 2, 0, 1)), device=device)
              .contiguous(memory_format=torch.channels_last), torch.as_tensor(b, device=device)) for k, b in block]
            for block in spec.blocks
        ]
        self._linear = [torch.as_tensor(w, device=device)[None, :, None, None] for w in spec.linear]

    def features(self, images: torch.Tensor) -> List[torch.Tensor]:
        """NCHW images in [0, 255] → channel-unit-normalised taps, NCHW (stored channels-last, oneDNN's layout)."""
        x = (images * self._scale + self._shift).contiguous(memory_format=torch.channels_last)
        taps = []
        for index, block in enumerate(self._blocks):
            if index > 0:
                x = F.max_pool2d(x, 2)
            for kernel, bias in block:
                x = F.relu(F.conv2d(x, kernel, bias, padding=1))
            tap = x.float()  # normalised in fp32 whatever the convolutions ran at: Σc x² overflows fp16
            norm = torch.sqrt(torch.sum(torch.square(tap), dim=1, keepdim=True))
            taps.append(tap / (norm + TAP_NORM_EPS))
        return taps

    def distance_to(self, images: torch.Tensor, target_taps: List[torch.Tensor]) -> torch.Tensor:
        """One distance per sample: Σ_taps mean_HW( Σ_c w_c (f − f_t)² )."""
        total = 0.0
        for tap, target, weight in zip(self.features(images), target_taps, self._linear):
            total = total + torch.sum(torch.square(tap - target) * weight, dim=1).mean(dim=(1, 2))
        return total

    def distance(self, images0: torch.Tensor, images1: torch.Tensor) -> torch.Tensor:
        return self.distance_to(images0, self.features(images1))
