import json
from dataclasses import replace

import pytest
from PIL import Image, ImageChops

from mlcore.shapes import (
    BACKGROUNDS,
    CAPTIONS_PER_IMAGE,
    IMAGE_SIZE,
    IMAGE_SIZES,
    ShapeObject,
    ShapeSample,
    binding_foils,
    caption_names_every_object,
    every_caption,
    generate_shapes_dataset,
    make_shape_samples,
    mentioned_objects,
    probe_labels,
)


@pytest.fixture(scope="module")
def samples() -> list[ShapeSample]:
    return make_shape_samples(400, seed=3)


def red_circle_left_of_blue_square() -> ShapeSample:
    circle = ShapeObject("red", "circle", "small", "left", (17.0, 32.0), 7.0)
    square = ShapeObject("blue", "square", "large", "right", (47.0, 32.0), 11.0)
    return ShapeSample(1, "000001.png", "black", (circle, square), "left of", ())


def test_same_seed_gives_the_same_images_and_captions():
    first, second = make_shape_samples(20, seed=7), make_shape_samples(20, seed=7)
    assert first == second
    assert all(a.render().tobytes() == b.render().tobytes() for a, b in zip(first, second, strict=True))


def test_other_seed_or_split_gives_other_samples():
    train = make_shape_samples(20, seed=7)
    assert make_shape_samples(20, seed=8) != train
    assert make_shape_samples(20, seed=7, split="val") != train


def test_dataset_is_written_in_coco_captions_format(tmp_path):
    samples, images = generate_shapes_dataset(tmp_path, count=6, seed=1, split="val")
    coco = json.loads((tmp_path / "annotations" / "captions_val.json").read_text())
    assert [image["id"] for image in coco["images"]] == [sample.image_id for sample in samples]
    for image in coco["images"]:
        with Image.open(tmp_path / "images" / "val" / image["file_name"]) as png:
            size = samples[image["id"] - 1].image_size
            assert png.size == (image["width"], image["height"]) == (size, size)
            assert (
                png.convert("RGB").tobytes()
                == images[image["id"] - 1].tobytes()
                == samples[image["id"] - 1].render().tobytes()
            )
    annotation_ids = [annotation["id"] for annotation in coco["annotations"]]
    assert len(set(annotation_ids)) == len(annotation_ids) == 6 * CAPTIONS_PER_IMAGE
    for sample in samples:
        written = [item["caption"] for item in coco["annotations"] if item["image_id"] == sample.image_id]
        assert written == list(sample.captions)


def test_every_caption_names_every_object(samples):
    for sample in samples:
        assert len(set(sample.captions)) == CAPTIONS_PER_IMAGE
        for caption in every_caption(sample):
            assert caption_names_every_object(caption, sample), caption


def test_parser_reads_every_template_back_in_reading_order():
    sample = red_circle_left_of_blue_square()
    for caption in every_caption(sample):
        named = mentioned_objects(caption)
        assert sorted(named) == [("blue", "square"), ("red", "circle")], caption
    assert mentioned_objects("a blue square to the right of a red circle") == [("blue", "square"), ("red", "circle")]


def test_samples_hold_one_or_two_objects_of_distinct_names(samples):
    counts = {len(sample.objects) for sample in samples}
    assert counts == {1, 2}
    for sample in samples:
        assert len(set(sample.named_objects)) == len(sample.objects)
        assert sample.background in BACKGROUNDS


def overlap(sample: ShapeSample) -> bool:
    background = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUNDS[sample.background])
    first, second = (
        ImageChops.difference(replace(sample, objects=(item,)).render(), background)
        .convert("L")
        .point(lambda value: 255 if value else 0)
        for item in sample.objects
    )
    return ImageChops.multiply(first, second).getbbox() is not None


def test_two_objects_never_overlap(samples):
    touching = red_circle_left_of_blue_square()
    moved = replace(touching.objects[1], centre=(30.0, 32.0))
    assert overlap(replace(touching, objects=(touching.objects[0], moved)))
    assert not any(overlap(sample) for sample in samples if sample.relation is not None)


def test_images_come_at_the_sizes_of_drawings_with_the_same_scene_in_them(samples):
    assert {sample.image_size for sample in samples} == set(IMAGE_SIZES)
    sample = samples[0]
    small = replace(sample, image_size=IMAGE_SIZE).render()
    large = replace(sample, image_size=2 * IMAGE_SIZE).render()
    assert large.size == (2 * IMAGE_SIZE, 2 * IMAGE_SIZE)
    difference = ImageChops.difference(small, large.resize(small.size, Image.Resampling.BOX)).convert("L")
    assert difference.getextrema()[1] < 8  # the same picture, up to edge rounding


def test_single_shapes_vary_in_size_and_margin_and_stay_inside_the_picture(samples):
    singles = [sample for sample in samples if sample.relation is None]
    radii = [sample.objects[0].radius for sample in singles if sample.objects[0].position == "middle"]
    assert max(radii) > 16  # one shape filling much of a drawing
    for sample in singles:
        picture = replace(sample, image_size=IMAGE_SIZE).render()
        background = Image.new("RGB", picture.size, BACKGROUNDS[sample.background])
        left, top, right, bottom = ImageChops.difference(picture, background).getbbox()
        assert left > 0 and top > 0 and right < IMAGE_SIZE and bottom < IMAGE_SIZE, sample


def test_pair_share_sets_how_many_scenes_hold_two_objects():
    for share in (0.5, 0.6):
        samples = make_shape_samples(2000, seed=4, pair_share=share)
        pairs = sum(sample.relation is not None for sample in samples) / len(samples)
        assert abs(pairs - share) < 0.04


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("a small red circle to the left of a large blue square on a black background", True),
        ("a blue square and a red circle on black", True),
        ("a red circle next to a blue square, the red circle is small", True),
        ("a small green circle to the left of a large blue square", False),  # wrong colour
        ("a small red star to the left of a large blue square", False),  # wrong shape
        ("a small red circle on a black background", False),  # missing object
        ("a red circle, a blue square and a yellow star", False),  # extra object
        ("a red circle to the left of a white square", False),  # background colour named as an object's
        ("a red circle to the left of a blue", False),  # colour without a shape
        ("a circle to the left of a blue square", False),  # shape without a colour
    ],
)
def test_metric_accepts_only_captions_naming_exactly_the_objects(caption, expected):
    assert caption_names_every_object(caption, red_circle_left_of_blue_square()) is expected


def test_contrast_groups_vary_one_scene():
    samples = make_shape_samples(400, seed=5, contrast_group_size=4)
    for start in range(0, len(samples), 4):
        base, *variants = samples[start : start + 4]
        for variant in variants:
            assert variant.background == base.background
            assert len(variant.objects) == len(base.objects)
            assert (variant.objects, variant.relation) != (base.objects, base.relation)


def test_binding_foils_use_the_same_words_in_another_order():
    sample = red_circle_left_of_blue_square()
    foils = binding_foils(sample)
    assert foils == [
        "a small blue circle to the left of a large red square on a black background",
        "a large blue square to the left of a small red circle on a black background",
    ]
    assert all(sorted(foil.split()) == sorted(sample.description.split()) for foil in foils)
    assert binding_foils(replace(sample, objects=sample.objects[:1], relation=None)) == []


def test_probe_labels_mark_attributes_an_image_lacks(samples):
    labels = probe_labels(samples)
    assert set(labels) == {"colour", "shape", "size", "position", "layout", "count"}
    for index, sample in enumerate(samples):
        assert (labels["shape"][index] == -1) == (sample.relation is not None)
        assert labels["count"][index] == len(sample.objects) - 1
