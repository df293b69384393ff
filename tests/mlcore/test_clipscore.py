import math
import subprocess
import sys

import pytest
import torch

from mlcore.clipscore import CLIPSCORE_PROMPT, caption_clip_scores, clip_score
from mlcore.errors import MetricInputError


def test_clip_score_is_weighted_cosine_with_negative_similarity_clipped_to_zero():
    images = torch.tensor([[1.0, 0.0], [2.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    texts = torch.tensor([[0.0, 3.0], [5.0, 0.0], [-1.0, 0.0], [1.0, 0.0]])

    scores = clip_score(images, texts)

    expected = [0.0, 2.5, 0.0, 2.5 / math.sqrt(2)]  # orthogonal, parallel, opposite, 45 degrees
    assert scores.per_item == pytest.approx(expected, abs=1e-9)
    assert scores.mean == pytest.approx(sum(expected) / 4, abs=1e-9)
    assert clip_score(images, texts, weight=1.0).per_item == pytest.approx([value / 2.5 for value in expected])


def test_clip_score_rejects_embeddings_of_different_shapes():
    with pytest.raises(MetricInputError, match=r"\[2, 3\] and \[2, 4\]"):
        clip_score(torch.ones(2, 3), torch.ones(2, 4))


def test_caption_clip_scores_embed_prompted_captions_with_the_captioners_clip_in_batches():
    class RecordingCaptioner:
        def __init__(self):
            self.batches: list[list[str]] = []

        def embed_text(self, texts):
            self.batches.append(list(texts))
            return torch.tensor([[1.0, 0.0] if "dog" in text else [0.0, 1.0] for text in texts])

    captioner = RecordingCaptioner()
    image_embeddings = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])

    scores = caption_clip_scores(captioner, image_embeddings, ["a dog", "a cat", "a cat"], batch_size=2)

    assert captioner.batches == [
        [f"{CLIPSCORE_PROMPT} a dog", f"{CLIPSCORE_PROMPT} a cat"],
        [f"{CLIPSCORE_PROMPT} a cat"],
    ]
    assert CLIPSCORE_PROMPT == "A photo depicts"
    assert scores.per_item == pytest.approx([2.5, 0.0, 2.5])


def test_clipscore_loads_without_the_coco_metrics():
    """The worker scores every caption with CLIPScore; it must not load pycocoevalcap (and its Java) for it."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, mlcore.clipscore; print('pycocoevalcap' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    assert loaded == "False"
