import pytest
import torch

from mlcore.data import EmbeddingSet
from mlcore.errors import DataError


def sample_set(rows: int = 3, offset: int = 0) -> EmbeddingSet:
    return EmbeddingSet.from_images(
        embeddings=torch.randn(rows, 8),
        image_ids=[offset + i for i in range(rows)],
        file_names=[f"{offset + i:012d}.jpg" for i in range(rows)],
        captions_per_image=[[f"caption {offset + i} é", f"another {offset + i} ✓"] for i in range(rows)],
        clip_model="ViT-B/32",
        metadata={"dataset": "val"},
    )


def test_embedding_file_round_trip_keeps_every_field(tmp_path):
    original = sample_set()
    loaded = EmbeddingSet.load(original.save(tmp_path / "set.safetensors"))
    assert torch.equal(loaded.embeddings, original.embeddings)
    assert loaded.image_ids == original.image_ids
    assert loaded.file_names == original.file_names
    assert loaded.captions == original.captions
    assert loaded.captions_by_image()[1] == ["caption 1 é", "another 1 ✓"]
    assert loaded.clip_model == "ViT-B/32"
    assert loaded.metadata == {"dataset": "val"}


def test_concatenate_offsets_caption_rows(tmp_path):
    merged = EmbeddingSet.concatenate([sample_set(2), sample_set(3, offset=10)])
    assert len(merged) == 5
    assert merged.captions_by_image()[3] == ["caption 11 é", "another 11 ✓"]


def test_loading_something_else_is_a_clear_error(tmp_path):
    bogus = tmp_path / "train.pkl"
    bogus.write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(DataError, match="not a readable embedding file"):
        EmbeddingSet.load(bogus)
    with pytest.raises(DataError, match="does not exist"):
        EmbeddingSet.load(tmp_path / "missing.safetensors")


def test_caption_pointing_past_the_images_is_refused():
    with pytest.raises(DataError, match="does not exist"):
        EmbeddingSet(torch.zeros(1, 4), [1], ["a.jpg"], ["x"], torch.tensor([3]), "ViT-B/32")
