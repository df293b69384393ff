"""A synthetic world of coloured shapes, the offline demo's dataset.

Each image shows one or two shapes (colour, shape, size, position) on a plain background, with several
natural captions that always name every object's colour and shape. The structured truth travels with
each sample, so a generated caption can be checked against it (`caption_names_every_object`).

Everything is drawn from one seed: the same (seed, split, count) gives the same images and captions.
The split name is part of the seed, so a "val" split never repeats the "train" one.
"""

import json
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image, ImageDraw

IMAGE_SIZE = 64  # the scene's coordinates are in pixels of a 64-pixel image, whatever size it is drawn at
CAPTIONS_PER_IMAGE = 5
# A user's drawing comes at any size; the encoder resizes it. Training images come at several sizes too, so
# the CLIP sees what that resizing does to edges (64 px, the first, is the most common).
IMAGE_SIZES = (64, 64, 48, 96, 128)

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 175, 60),
    "blue": (50, 90, 235),
    "yellow": (240, 220, 40),
    "purple": (145, 55, 200),
    "orange": (245, 140, 25),
    "pink": (250, 135, 200),
}
# Disjoint from COLOURS, so a colour word tells by itself whether it names an object or the background.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (15, 15, 15),
    "white": (245, 245, 245),
    "grey": (125, 125, 125),
}
SHAPES = ("circle", "square", "triangle", "star")
SIZES = ("small", "large")
POSITIONS = ("middle", "left", "right", "top", "bottom")
RELATIONS = ("left of", "above")

_SIZE_RADII = {"small": (6.0, 7.5), "large": (10.5, 12.0)}
# A single shape in the middle may fill most of the picture, as a drawing of one thing usually does.
_MIDDLE_LARGE_RADII = (10.5, 22.0)
_CENTRES = {"middle": (32, 32), "left": (17, 32), "right": (47, 32), "top": (32, 17), "bottom": (32, 47)}
# A single shape off the middle sits up to this much nearer the centre: the wider margins of a drawing.
_MARGIN_SCALES = (0.75, 1.0)
_SUPERSAMPLED_CANVAS = 256  # pixels a shape is drawn at before being downsampled to the image's size


@dataclass(frozen=True)
class ShapeObject:
    colour: str
    shape: str
    size: str
    position: str  # one of POSITIONS
    centre: tuple[float, float]  # pixels
    radius: float  # pixels


@dataclass(frozen=True)
class ShapeSample:
    """One image's structured truth and captions. With two objects, the first is the left or top one."""

    image_id: int
    file_name: str
    background: str
    objects: tuple[ShapeObject, ...]
    relation: str | None  # "left of" or "above" between objects[0] and objects[1]; None for one object
    captions: tuple[str, ...]
    image_size: int = IMAGE_SIZE  # pixels of the drawn image's side; the objects' coordinates stay in 64-px units

    @property
    def named_objects(self) -> list[tuple[str, str]]:
        return [(item.colour, item.shape) for item in self.objects]

    @property
    def description(self) -> str:
        """The caption that states every attribute, in one fixed template."""
        return every_caption(self)[0]

    def render(self) -> Image.Image:
        return render_sample(self)


def binding_foils(sample: ShapeSample) -> list[str]:
    """Wrong descriptions of a two-object scene that use exactly its words: the colours exchanged
    between the objects, and the objects exchanged between the places. Telling the true description
    from these needs an embedding that binds each colour to its shape and each object to its place."""
    if sample.relation is None:
        return []
    first, second = sample.objects
    foils = []
    if first.colour != second.colour and first.shape != second.shape:
        exchanged = (replace(first, colour=second.colour), replace(second, colour=first.colour))
        foils.append(replace(sample, objects=exchanged).description)
    swapped = (replace(second, position=first.position), replace(first, position=second.position))
    foils.append(replace(sample, objects=swapped).description)
    return foils


def make_shape_samples(
    count: int, seed: int, split: str = "train", contrast_group_size: int = 1, pair_share: float = 0.5
) -> list[ShapeSample]:
    """The dataset in memory: structured truth and captions, images drawn on demand (`render`).

    With `contrast_group_size` k > 1 the samples come in runs of k scenes that share everything but one
    attribute of one object (its shape, colour, size or place) or, for a pair, which object has which
    colour or place. Kept in one training batch, such a run forces a contrastive model to tell these
    apart instead of getting by on the easy ones. `pair_share` is the share of scenes with two objects.
    """
    if contrast_group_size < 1:
        raise ValueError(f"contrast_group_size must be at least 1, not {contrast_group_size}")
    rng = random.Random(f"shapes:{seed}:{split}")
    samples: list[ShapeSample] = []
    while len(samples) < count:
        scene = _draw_scene(rng, pair_share)
        group = [scene] + [_vary_scene(rng, scene) for _ in range(contrast_group_size - 1)]
        for background, objects, relation in group[: count - len(samples)]:
            samples.append(_caption_scene(rng, len(samples) + 1, background, objects, relation))
    return samples


def generate_shapes_dataset(
    directory: Path, count: int, seed: int, split: str = "train", contrast_group_size: int = 1, pair_share: float = 0.5
) -> tuple[list[ShapeSample], list[Image.Image]]:
    """Writes `images/{split}/NNNNNN.png` and `annotations/captions_{split}.json` (COCO captions format);
    returns the samples and their images."""
    directory = Path(directory)
    samples = make_shape_samples(count, seed, split, contrast_group_size, pair_share)
    images = [sample.render() for sample in samples]
    image_dir = directory / "images" / split
    image_dir.mkdir(parents=True, exist_ok=True)
    for sample, image in zip(samples, images, strict=True):
        image.save(image_dir / sample.file_name, compress_level=1)
    write_coco_captions(samples, directory / "annotations" / f"captions_{split}.json")
    return samples, images


def write_coco_captions(samples: Sequence[ShapeSample], path: Path) -> Path:
    images = [
        {"id": sample.image_id, "file_name": sample.file_name, "width": sample.image_size, "height": sample.image_size}
        for sample in samples
    ]
    annotations = []
    for sample in samples:
        for caption in sample.captions:
            annotations.append({"id": len(annotations) + 1, "image_id": sample.image_id, "caption": caption})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations}, indent=1))
    return path


def render_sample(sample: ShapeSample) -> Image.Image:
    """Drawn larger and downsampled, so edges are smooth like a photo's rather than jagged."""
    size = sample.image_size
    supersample = max(2, _SUPERSAMPLED_CANVAS // size)
    scale = size * supersample / IMAGE_SIZE
    canvas = Image.new("RGB", (size * supersample, size * supersample), BACKGROUNDS[sample.background])
    draw = ImageDraw.Draw(canvas)
    for item in sample.objects:
        centre_x, centre_y = item.centre[0] * scale, item.centre[1] * scale
        _draw_shape(draw, item.shape, centre_x, centre_y, item.radius * scale, COLOURS[item.colour])
    return canvas.resize((size, size), Image.Resampling.BOX)


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, x: float, y: float, radius: float, fill) -> None:
    # Each outline is sized so the shapes cover similar areas for the same radius.
    if shape == "circle":
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=fill)
    elif shape == "square":
        half = radius * 0.88
        draw.rectangle((x - half, y - half, x + half, y + half), fill=fill)
    elif shape == "triangle":
        outer = radius * 1.2
        points = [_polar(x, y + outer * 0.15, outer, -90 + 120 * k) for k in range(3)]
        draw.polygon(points, fill=fill)
    elif shape == "star":
        points = [_polar(x, y + radius * 0.08, radius * (1.2 if k % 2 == 0 else 0.5), -90 + 36 * k) for k in range(10)]
        draw.polygon(points, fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}; use one of {', '.join(SHAPES)}")


def _polar(x: float, y: float, radius: float, degrees: float) -> tuple[float, float]:
    angle = math.radians(degrees)
    return (x + radius * math.cos(angle), y + radius * math.sin(angle))


Scene = tuple[str, tuple[ShapeObject, ...], str | None]


def _draw_scene(rng: random.Random, pair_share: float) -> Scene:
    background = rng.choice(list(BACKGROUNDS))
    if rng.random() >= pair_share:
        return background, (_draw_object(rng, rng.choice(POSITIONS), single=True),), None
    relation = rng.choice(RELATIONS)
    first_position, second_position = ("left", "right") if relation == "left of" else ("top", "bottom")
    first = _draw_object(rng, first_position, single=False)
    while True:
        second = _draw_object(rng, second_position, single=False)
        if (second.colour, second.shape) != (first.colour, first.shape):
            return background, (first, second), relation


def _vary_scene(rng: random.Random, scene: Scene) -> Scene:
    """The scene with one attribute of one object changed, or, for a pair, their places or colours
    exchanged (a red circle and a blue square become a blue circle and a red square)."""
    background, objects, relation = scene
    axes, weights = ("shape", "colour", "size", "place", "swap colours"), (4, 2, 2, 2, 0 if relation is None else 3)
    while True:
        index = rng.randrange(len(objects))
        item = objects[index]
        changed = list(objects)
        varied_relation = relation
        axis = rng.choices(axes, weights=weights)[0]
        if axis == "shape":
            changed[index] = replace(item, shape=rng.choice([shape for shape in SHAPES if shape != item.shape]))
        elif axis == "colour":
            changed[index] = replace(item, colour=rng.choice([colour for colour in COLOURS if colour != item.colour]))
        elif axis == "size":
            size = "large" if item.size == "small" else "small"
            changed[index] = replace(item, size=size, radius=_draw_radius(rng, size, item.position, relation is None))
        elif axis == "swap colours":
            changed = [replace(objects[0], colour=objects[1].colour), replace(objects[1], colour=objects[0].colour)]
        elif relation is None:
            position = rng.choice([place for place in POSITIONS if place != item.position])
            changed[index] = replace(
                item,
                position=position,
                centre=_single_centre(rng, position),
                radius=_draw_radius(rng, item.size, position, single=True),
            )
        elif rng.random() < 0.5:
            changed = [_move(objects[1], objects[0].position), _move(objects[0], objects[1].position)]
        else:
            varied_relation = "above" if relation == "left of" else "left of"
            places = ("left", "right") if varied_relation == "left of" else ("top", "bottom")
            changed = [_move(item, place, transpose=True) for item, place in zip(objects, places, strict=True)]
        names = [(item.colour, item.shape) for item in changed]
        if len(set(names)) == len(names) and (tuple(changed), varied_relation) != (objects, relation):
            return background, tuple(changed), varied_relation


def _move(item: ShapeObject, position: str, transpose: bool = False) -> ShapeObject:
    """The object at another position, keeping its offset from the position's centre."""
    old_x, old_y = _CENTRES[item.position]
    offset_x, offset_y = item.centre[0] - old_x, item.centre[1] - old_y
    if transpose:
        offset_x, offset_y = offset_y, offset_x
    new_x, new_y = _CENTRES[position]
    return replace(item, position=position, centre=(new_x + offset_x, new_y + offset_y))


def _caption_scene(
    rng: random.Random, image_id: int, background: str, objects: tuple[ShapeObject, ...], relation: str | None
) -> ShapeSample:
    sample = ShapeSample(image_id, f"{image_id:06d}.png", background, objects, relation, (), rng.choice(IMAGE_SIZES))
    return replace(sample, captions=tuple(rng.sample(every_caption(sample), CAPTIONS_PER_IMAGE)))


def _draw_object(rng: random.Random, position: str, single: bool) -> ShapeObject:
    size = rng.choice(SIZES)
    return ShapeObject(
        colour=rng.choice(list(COLOURS)),
        shape=rng.choice(SHAPES),
        size=size,
        position=position,
        centre=_single_centre(rng, position) if single else _pair_centre(rng, position),
        radius=_draw_radius(rng, size, position, single),
    )


def _single_centre(rng: random.Random, position: str) -> tuple[float, float]:
    margin = rng.uniform(*_MARGIN_SCALES)
    centre_x, centre_y = _CENTRES[position]
    centre_x, centre_y = 32 + (centre_x - 32) * margin, 32 + (centre_y - 32) * margin
    return centre_x + rng.uniform(-2.5, 2.5), centre_y + rng.uniform(-2.5, 2.5)


def _pair_centre(rng: random.Random, position: str) -> tuple[float, float]:
    # Little jitter along the axis joining the two, so two large shapes never touch.
    along, across = 1.0, 4.0
    centre_x, centre_y = _CENTRES[position]
    jitter_x, jitter_y = (along, across) if position in ("left", "right") else (across, along)
    return centre_x + rng.uniform(-jitter_x, jitter_x), centre_y + rng.uniform(-jitter_y, jitter_y)


def _draw_radius(rng: random.Random, size: str, position: str, single: bool) -> float:
    if single and size == "large" and position == "middle":
        return rng.uniform(*_MIDDLE_LARGE_RADII)
    return rng.uniform(*_SIZE_RADII[size])


_WHERE = {
    "middle": ("in the middle", "in the middle of", "in the centre"),
    "left": ("on the left", "on the left side of", "at the left"),
    "right": ("on the right", "on the right side of", "at the right"),
    "top": ("at the top", "at the top of", "near the top"),
    "bottom": ("at the bottom", "at the bottom of", "near the bottom"),
}


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def every_caption(sample: ShapeSample) -> list[str]:
    """The sample's caption in every template (its `captions` are a seeded choice of these); each
    names every object's colour and shape. The first is its `description`."""
    background = sample.background

    def full(item: ShapeObject) -> str:
        return f"{_article(item.size)} {item.size} {item.colour} {item.shape}"

    def plain(item: ShapeObject) -> str:
        return f"{_article(item.colour)} {item.colour} {item.shape}"

    if sample.relation is None:
        (item,) = sample.objects
        here, here_of, here_alone = _WHERE[item.position]
        return [
            f"{full(item)} {here} on a {background} background",
            f"{plain(item)} {here} on {background}",
            f"there is {full(item)} {here_of} a {background} image",
            f"{full(item)} on a {background} background",
            f"a {background} background with {plain(item)} {here_alone}",
            f"{plain(item)} on a plain {background} background",
            f"a picture of {full(item)} {here}",
            f"a single {item.size} {item.colour} {item.shape} {here_of} the picture",
        ]
    first, second = sample.objects
    if sample.relation == "left of":
        relation, inverse, first_side, second_side = "to the left of", "to the right of", "on the left", "on the right"
    else:
        relation, inverse, first_side, second_side = "above", "below", "at the top", "at the bottom"
    return [
        f"{full(first)} {relation} {full(second)} on a {background} background",
        f"{plain(first)} and {plain(second)} on {background}",
        f"{plain(second)} {inverse} {plain(first)}",
        f"{full(first)} {first_side} and {full(second)} {second_side}",
        f"two shapes on a {background} background: {plain(first)} and {plain(second)}",
        f"there is {plain(first)} {relation} {full(second)}",
        f"{full(second)} {inverse} {full(first)} on a {background} background",
        f"{plain(first)} next to {plain(second)} on a {background} background",
    ]


_WORD = re.compile(r"[a-z]+")
_SKIPPABLE_BEFORE_SHAPE = set(SIZES) | {"big", "little", "tiny", "single"}


def mentioned_objects(caption: str) -> list[tuple[str | None, str | None]]:
    """The objects a caption names, as (colour, shape) pairs in reading order.

    A colour belongs to the next shape word when at most size words stand between them. A shape with
    no colour gives (None, shape); an object colour with no shape gives (colour, None). Background
    colours are ignored unless a shape follows them ("a white circle"), since that names an object.
    """
    words = _WORD.findall(caption.lower())
    found: list[tuple[str | None, str | None]] = []
    pending_colour: str | None = None
    for word in words:
        shape = word[:-1] if word.endswith("s") and word[:-1] in SHAPES else word
        if shape in SHAPES:
            found.append((pending_colour, shape))
            pending_colour = None
        elif word in COLOURS or word in BACKGROUNDS:
            if pending_colour in COLOURS:
                found.append((pending_colour, None))
            pending_colour = word
        elif word not in _SKIPPABLE_BEFORE_SHAPE and pending_colour is not None:
            if pending_colour in COLOURS:
                found.append((pending_colour, None))
            pending_colour = None
    if pending_colour in COLOURS:
        found.append((pending_colour, None))
    return found


def caption_names_every_object(caption: str, sample: ShapeSample) -> bool:
    """True when the caption names each object's colour and shape and no other object.

    Naming the same object twice is allowed; a missing object, a wrong colour or shape, or an extra
    object is not.
    """
    return set(mentioned_objects(caption)) == set(sample.named_objects)


def probe_labels(samples: Sequence[ShapeSample]) -> dict[str, list[int]]:
    """Class labels per attribute for linear probes on image embeddings; -1 where one does not apply.

    `colour`, `shape`, `size` and `position` are read on single-object images; `layout` (the single
    object's position or the pair's relation, 7 classes) and `count` on all. What a pair's embedding
    says about which colour goes with which shape is measured with `binding_foils` instead: a linear
    probe for "the left object is a red circle" reads it poorly even from embeddings that tell the true
    description from its foils 99% of the time.
    """
    colours, shapes = list(COLOURS), list(SHAPES)
    layouts = list(POSITIONS) + list(RELATIONS)

    def single(sample: ShapeSample, value: int) -> int:
        return value if sample.relation is None else -1

    return {
        "colour": [single(sample, colours.index(sample.objects[0].colour)) for sample in samples],
        "shape": [single(sample, shapes.index(sample.objects[0].shape)) for sample in samples],
        "size": [single(sample, SIZES.index(sample.objects[0].size)) for sample in samples],
        "position": [single(sample, POSITIONS.index(sample.objects[0].position)) for sample in samples],
        "layout": [layouts.index(sample.relation or sample.objects[0].position) for sample in samples],
        "count": [len(sample.objects) - 1 for sample in samples],
    }
