"""Motion encoder: joint-angle motion image -> ViT patch tokens.

Paper: "Fine-grained Motion Retrieval via Joint-Angle Motion Images and Token-Patch Late Interaction".
Each body part's angle columns go through their own `Linear(DoF -> part_dim)` per frame; the outputs are laid
side by side, so the image has one row per frame and one `part_dim`-wide band per body part. With
`patch_size == part_dim` every ViT patch is exactly (a window of `patch_size` frames, one body part), which is
what makes the token-patch scores explainable as "this word matched the left elbow around 2.1 s".
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .config import MotionEncoderConfig


class MotionEncoder(nn.Module):
    """Angles (B, T, sum(DoF)) -> raw ViT patch tokens (B, rows*parts, width), patch p = parts*row + part.

    Module names (`embed_<part>`, `model`) follow the official checkpoints so their state dicts load as is.
    """

    def __init__(self, config: MotionEncoderConfig, *, allow_download: bool = False) -> None:
        super().__init__()
        self.config = config
        self.part_names = [name for name, _ in config.parts]
        self.part_dofs = [dof for _, dof in config.parts]
        for name, dof in config.parts:
            self.add_module(f"embed_{name}", nn.Linear(dof, config.part_dim))
        self.model = _create_vit(config, allow_download=allow_download)
        self.width = int(self.model.embed_dim)

    def image(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, sum(DoF)) normalised angles -> (B, 3, T, parts*part_dim) grey image (no ImageNet norm)."""
        if x.shape[-1] != sum(self.part_dofs):
            raise ValueError(f"motion input has {x.shape[-1]} columns, the model expects {sum(self.part_dofs)}")
        bands = []
        for name, chunk in zip(self.part_names, torch.split(x, self.part_dofs, dim=-1)):
            bands.append(getattr(self, f"embed_{name}")(chunk))
        grey = torch.cat(bands, dim=-1).unsqueeze(1)
        return grey.expand(-1, 3, -1, -1)

    def forward(self, x: torch.Tensor, row_valid: torch.Tensor | None = None) -> torch.Tensor:
        """Last block's patch tokens, no final norm, prefix tokens dropped (timm get_intermediate_layers).

        `row_valid` (B, rows) bool hides padded time rows from attention when the config asks for it.
        """
        attn_mask = None
        if self.config.mask_padded_attention and row_valid is not None:
            attn_mask = self._attention_mask(row_valid)
        (tokens,) = self.model.get_intermediate_layers(self.image(x), n=1, attn_mask=attn_mask)
        return tokens

    def _attention_mask(self, row_valid: torch.Tensor) -> torch.Tensor:
        parts = len(self.part_names)
        patch_valid = row_valid.repeat_interleave(parts, dim=1)
        prefix = torch.ones(row_valid.shape[0], self.model.num_prefix_tokens, dtype=torch.bool,
                            device=row_valid.device)
        keys = torch.cat([prefix, patch_valid], dim=1)
        return keys[:, None, None, :]  # (B, 1, 1, N): every query may attend to the valid keys


def _create_vit(config: MotionEncoderConfig, *, allow_download: bool) -> nn.Module:
    import timm

    kwargs = dict(config.timm_kwargs)
    kwargs.update(num_classes=0, global_pool="", img_size=config.image_size, patch_size=config.patch_size,
                  in_chans=3)
    if config.pretrained_file:
        path = Path(config.pretrained_file).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"ViT pretrained_file not found: {path}")
        return timm.create_model(config.timm_name, pretrained=True,
                                 pretrained_cfg_overlay={"file": str(path)}, **kwargs)
    if config.pretrained_from_hub:
        if not allow_download:
            raise RuntimeError(f"config asks for hub weights of {config.timm_name!r}; pass allow_download=True "
                               "(mofind never downloads unless asked) or set pretrained_file to a local file")
        return timm.create_model(config.timm_name, pretrained=True, **kwargs)
    return timm.create_model(config.timm_name, pretrained=False, **kwargs)
