"""CLIPScore (Hessel et al. 2021): how well a caption matches its image, without reference captions:
w * max(cos(image, "A photo depicts <caption>"), 0), with w = 2.5, on the captioner's own CLIP.

Its own module because the worker scores every new caption with it and must not load the COCO metrics
(pycocoevalcap, Java) that mlcore.evaluate needs.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mlcore.captioner import Captioner
from mlcore.errors import MetricInputError

CLIPSCORE_WEIGHT = 2.5
CLIPSCORE_PROMPT = "A photo depicts"


@dataclass(frozen=True)
class ClipScores:
    per_item: list[float]
    mean: float


def clip_score(
    image_embeddings: torch.Tensor, text_embeddings: torch.Tensor, weight: float = CLIPSCORE_WEIGHT
) -> ClipScores:
    """CLIPScore of each (image, text) pair of rows: weight * max(cosine similarity, 0)."""
    if image_embeddings.ndim != 2 or image_embeddings.shape != text_embeddings.shape:
        raise MetricInputError(
            "CLIPScore needs image and text embeddings of the same shape [N, D], got "
            f"{list(image_embeddings.shape)} and {list(text_embeddings.shape)}"
        )
    if image_embeddings.shape[0] == 0:
        raise MetricInputError("CLIPScore needs at least one image")
    cosine = F.cosine_similarity(image_embeddings.double(), text_embeddings.double(), dim=-1)
    scores = (weight * cosine.clamp(min=0)).tolist()
    return ClipScores(scores, sum(scores) / len(scores))


def caption_clip_scores(
    captioner: Captioner,
    image_embeddings: torch.Tensor,
    captions: Sequence[str],
    weight: float = CLIPSCORE_WEIGHT,
    batch_size: int = 256,
) -> ClipScores:
    """CLIPScore of captions for images (embedded by the same CLIP), with Hessel et al.'s prompt."""
    if len(captions) != image_embeddings.shape[0]:
        raise MetricInputError(f"{len(captions)} captions for {image_embeddings.shape[0]} image embeddings")
    texts = [f"{CLIPSCORE_PROMPT} {caption}" for caption in captions]
    text_embeddings = torch.cat(
        [captioner.embed_text(texts[start : start + batch_size]) for start in range(0, len(texts), batch_size)]
    )
    return clip_score(image_embeddings, text_embeddings, weight)
