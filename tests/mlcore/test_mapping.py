import pytest
import torch

from mlcore.mapping import MapperConfig, MLPMapper, TransformerMapper, build_mapper


@pytest.mark.parametrize("mapper_type", ["mlp", "transformer"])
def test_mappers_turn_an_embedding_into_a_prefix(mapper_type):
    config = MapperConfig(mapper_type, 24, 32, prefix_length=6, prefix_length_clip=3, num_layers=2)
    mapper = build_mapper(config)
    assert isinstance(mapper, MLPMapper if mapper_type == "mlp" else TransformerMapper)
    assert mapper(torch.randn(5, 24)).shape == (5, 6, 32)


def test_transformer_prefix_depends_on_each_image_alone():
    mapper = build_mapper(MapperConfig("transformer", 8, 16, prefix_length=4, prefix_length_clip=2, num_layers=1))
    embeddings = torch.randn(3, 8)
    torch.testing.assert_close(mapper(embeddings)[1:2], mapper(embeddings[1:2]))


def test_unknown_mapper_and_bad_head_count_are_refused():
    with pytest.raises(ValueError, match="unknown mapper type 'lstm'"):
        build_mapper(MapperConfig("lstm", 8, 16, 4))
    with pytest.raises(ValueError, match="not divisible by 5 attention heads"):
        build_mapper(MapperConfig("transformer", 8, 16, 4, num_heads=5))
