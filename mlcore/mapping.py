"""Mapping networks: a CLIP embedding in, `prefix_length` GPT-2 input embeddings out.

Parameter names follow ClipCap's `train.py` exactly (`model.0` / `model.2` for the MLP; `linear`,
`prefix_const`, `transformer.layers.N.{norm1,attn.to_queries,attn.to_keys_values,attn.project,norm2,
mlp.fc1,mlp.fc2}` for the Transformer), so ClipCap's released weights load without renaming.
"""

from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

MapperType = Literal["mlp", "transformer"]


@dataclass(frozen=True)
class MapperConfig:
    mapper_type: MapperType
    clip_embedding_size: int
    gpt_embedding_size: int
    prefix_length: int
    # Transformer only: how many tokens the CLIP embedding is projected to, and the depth.
    prefix_length_clip: int = 10
    num_layers: int = 8
    num_heads: int = 8
    mlp_ratio: float = 2.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "MapperConfig":
        return cls(**values)


class MLPMapper(nn.Module):
    """ClipCap's MLP: Linear -> Tanh -> Linear, hidden width half of the output."""

    def __init__(self, config: MapperConfig):
        super().__init__()
        output_size = config.gpt_embedding_size * config.prefix_length
        self.prefix_length = config.prefix_length
        self.model = nn.Sequential(
            nn.Linear(config.clip_embedding_size, output_size // 2),
            nn.Tanh(),
            nn.Linear(output_size // 2, output_size),
        )

    def forward(self, clip_embeddings: torch.Tensor) -> torch.Tensor:
        # [batch, clip] -> [batch, prefix * gpt] -> [batch, prefix, gpt]
        return self.model(clip_embeddings).view(clip_embeddings.shape[0], self.prefix_length, -1)


class MultiHeadAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.to_queries = nn.Linear(dim, dim, bias=False)
        self.to_keys_values = nn.Linear(dim, dim * 2, bias=False)
        self.project = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        head_dim = dim // self.num_heads
        queries = self.to_queries(x).view(batch, length, self.num_heads, head_dim).transpose(1, 2)  # [b, h, len, hd]
        keys_values = self.to_keys_values(x).view(batch, length, 2, self.num_heads, head_dim)  # [b, len, 2, h, hd]
        keys = keys_values[:, :, 0].transpose(1, 2)  # [b, h, len, hd]
        values = keys_values[:, :, 1].transpose(1, 2)
        attended = F.scaled_dot_product_attention(queries, keys, values)  # [b, h, len, hd]
        return self.project(attended.transpose(1, 2).reshape(batch, length, dim))  # [b, len, dim]


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


class TransformerLayer(nn.Module):
    """Pre-norm self-attention block, as in ClipCap."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    def __init__(self, dim: int, num_heads: int, num_layers: int, mlp_ratio: float):
        super().__init__()
        self.layers = nn.ModuleList(TransformerLayer(dim, num_heads, mlp_ratio) for _ in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class TransformerMapper(nn.Module):
    """ClipCap's Transformer mapper.

    The CLIP embedding is projected to `prefix_length_clip` tokens, a learned constant of
    `prefix_length` tokens is appended, and the outputs at the constant's positions are the prefix.
    """

    def __init__(self, config: MapperConfig):
        super().__init__()
        self.prefix_length_clip = config.prefix_length_clip
        self.linear = nn.Linear(config.clip_embedding_size, config.prefix_length_clip * config.gpt_embedding_size)
        self.prefix_const = nn.Parameter(torch.randn(config.prefix_length, config.gpt_embedding_size))
        self.transformer = Transformer(config.gpt_embedding_size, config.num_heads, config.num_layers, config.mlp_ratio)

    def forward(self, clip_embeddings: torch.Tensor) -> torch.Tensor:
        batch = clip_embeddings.shape[0]
        projected = self.linear(clip_embeddings).view(batch, self.prefix_length_clip, -1)  # [batch, clip_len, gpt]
        constant = self.prefix_const.unsqueeze(0).expand(batch, -1, -1)  # [batch, prefix, gpt]
        mixed = self.transformer(torch.cat((projected, constant), dim=1))  # [batch, clip_len + prefix, gpt]
        return mixed[:, self.prefix_length_clip :]  # [batch, prefix, gpt]


def build_mapper(config: MapperConfig) -> nn.Module:
    if config.mapper_type == "mlp":
        return MLPMapper(config)
    if config.mapper_type == "transformer":
        if config.gpt_embedding_size % config.num_heads:
            raise ValueError(
                f"GPT-2 width {config.gpt_embedding_size} is not divisible by {config.num_heads} attention heads"
            )
        return TransformerMapper(config)
    raise ValueError(f"unknown mapper type {config.mapper_type!r}; use 'mlp' or 'transformer'")
