import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from mlcore.coco import (
    CocoEncodeOptions,
    CocoImage,
    CocoImageFile,
    coco2017_file_name,
    download_images,
    encode_coco,
    ensure_caption_annotations,
    read_caption_annotations,
    read_karpathy_split,
)
from mlcore.data import EmbeddingSet
from mlcore.download import DownloadError, DownloadPolicy
from mlcore.encoder import ClipEncoder, load_image
from mlcore.errors import DataError
from mlcore.shards import encode_images_to_shards, shard_directory
from tests.commands.conftest import (
    CORRUPT_ID,
    GOOD_VAL_IDS,
    MISSING_ID,
    TRAIN_CAPTIONS,
    VAL_CAPTIONS,
    captions_json,
    closed_port_url,
    draw_image,
    jpeg_bytes,
    serve_coco,
)

QUICK_RETRIES = DownloadPolicy(timeout_seconds=5, retries=2, backoff_seconds=0.01)


@pytest.fixture(scope="module")
def coco_site(tmp_path_factory):
    with serve_coco(tmp_path_factory.mktemp("coco-site")) as server:
        yield server


@pytest.fixture
def coco_server(coco_site):
    coco_site.reset()
    return coco_site


@pytest.fixture(scope="module")
def encoder(tiny_clip_dir) -> ClipEncoder:
    return ClipEncoder.load(f"local-dir:{tiny_clip_dir}", device="cpu")


def make_options(tmp_path: Path, server, **overrides) -> CocoEncodeOptions:
    values = {
        "dataset": "val",
        "coco_root": tmp_path / "coco",
        "out": tmp_path / "coco" / "val.safetensors",
        "clip_model": "unused: the tests pass the encoder",
        "annotations_url": server.annotations_url,
        "images_base_url": server.base_url,
        "batch_size": 3,
        "workers": 2,
        "download_workers": 4,
        "device": "cpu",
        "download": QUICK_RETRIES,
        "progress": False,
    }
    return CocoEncodeOptions(**{**values, **overrides})


def val_files(*image_ids: int) -> list[CocoImageFile]:
    return [
        CocoImageFile(CocoImage(image_id, coco2017_file_name(image_id), None, ()), "val2017") for image_id in image_ids
    ]


def stripped(captions: list[str]) -> list[str]:
    return [caption.strip() for caption in captions]


# --- annotation files ---


def test_caption_annotations_group_interleaved_captions_by_image_in_file_order(tmp_path):
    data = captions_json(VAL_CAPTIONS, "val2017")
    data["images"].append({"id": 7, "file_name": "000000000007.jpg", "flickr_url": "http://flickr/7.jpg"})
    path = tmp_path / "captions_val2017.json"
    path.write_text(json.dumps(data))

    images = read_caption_annotations(path)

    assert [image.image_id for image in images] == [*VAL_CAPTIONS, 7]
    assert images[0].captions == (
        "A red square on grey.",
        "a red block",
        "red shape in the middle",
        "a square",
        "something red",
    )
    assert images[0].url == "http://images.cocodataset.org/val2017/000000000101.jpg"
    assert images[0].file_name == "000000000101.jpg"
    assert images[-1] == CocoImage(7, "000000000007.jpg", "http://flickr/7.jpg", ())


def test_a_captions_file_that_is_not_coco_is_a_clear_error(tmp_path):
    path = tmp_path / "captions_val2017.json"
    path.write_text(json.dumps({"images": []}))
    with pytest.raises(DataError, match="not a COCO captions file.*'annotations'"):
        read_caption_annotations(path)
    path.write_text("{ truncated")
    with pytest.raises(DataError, match="not valid JSON"):
        read_caption_annotations(path)


def karpathy_file(tmp_path: Path) -> Path:
    def entry(cocoid: int, split: str, folder: str, captions: list[str]) -> dict:
        name = f"COCO_{folder}_{cocoid:012d}.jpg"
        sentences = [{"raw": text, "tokens": text.lower().split(), "imgid": cocoid} for text in captions]
        return {"filepath": folder, "filename": name, "cocoid": cocoid, "split": split, "sentences": sentences}

    data = {
        "dataset": "coco",
        "images": [
            entry(201, "train", "train2014", ["Karpathy purple. "]),
            entry(101, "test", "val2014", ["Karpathy red."]),
            entry(202, "restval", "val2014", ["Karpathy orange.", "orange again"]),
            entry(103, "val", "val2014", ["Karpathy blue."]),
            entry(102, "restval", "val2014", ["Karpathy green."]),
        ],
    }
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps(data))
    return path


def test_karpathy_split_counts_restval_as_train(tmp_path):
    path = karpathy_file(tmp_path)

    train = read_karpathy_split(path, "train")

    assert [image.image_id for image in train] == [201, 202, 102]
    assert train[0] == CocoImage(201, "COCO_train2014_000000000201.jpg", None, ("Karpathy purple.",))
    assert train[1].captions == ("Karpathy orange.", "orange again")
    assert [image.image_id for image in read_karpathy_split(path, "val")] == [103]
    assert [image.image_id for image in read_karpathy_split(path, "test")] == [101]


def test_unknown_karpathy_split_is_refused(tmp_path):
    with pytest.raises(DataError, match="unknown Karpathy split 'restval'"):
        read_karpathy_split(karpathy_file(tmp_path), "restval")


# --- downloads ---


def test_missing_captions_are_extracted_from_the_downloaded_annotations_zip(tmp_path, coco_server):
    root = tmp_path / "coco"
    path = ensure_caption_annotations(root, "val", coco_server.annotations_url, QUICK_RETRIES, progress=False)

    assert path == root / "annotations" / "captions_val2017.json"
    assert [image.image_id for image in read_caption_annotations(path)] == list(VAL_CAPTIONS)
    assert (root / "annotations" / "captions_train2017.json").is_file()
    assert not (root / "annotations" / "instances_val2017.json").exists()

    again = ensure_caption_annotations(root, "train", coco_server.annotations_url, QUICK_RETRIES, progress=False)
    assert [image.image_id for image in read_caption_annotations(again)] == list(TRAIN_CAPTIONS)
    assert coco_server.requests["/annotations/annotations_trainval2017.zip"] == 1


def test_unreachable_annotations_url_names_the_url_and_how_to_fix_it(tmp_path):
    url = f"{closed_port_url()}/annotations/annotations_trainval2017.zip"
    with pytest.raises(DownloadError) as raised:
        ensure_caption_annotations(tmp_path, "val", url, QUICK_RETRIES, progress=False)
    message = str(raised.value)
    assert url in message
    assert "connection failed after 3 attempts" in message
    assert "COCO_ANNOTATIONS_URL" in message
    assert "annotations_trainval2017.zip" in message
    assert not list(tmp_path.iterdir())


def download(tmp_path: Path, server, *image_ids: int, policy: DownloadPolicy = QUICK_RETRIES):
    return download_images(val_files(*image_ids), tmp_path / "images", server.base_url, policy, 4, progress=False)


def test_server_errors_are_retried_until_the_image_arrives(tmp_path, coco_server):
    coco_server.fail_next(coco_server.image_path(102), 500, 500)

    report = download(tmp_path, coco_server, 102)

    assert (report.downloaded, report.failures) == (1, [])
    assert coco_server.requests[coco_server.image_path(102)] == 3
    assert load_image(tmp_path / "images" / "val2017" / coco2017_file_name(102)).size == (40, 40)


def test_server_errors_beyond_the_retries_fail_only_that_image(tmp_path, coco_server):
    coco_server.fail_next(coco_server.image_path(102), 500, 503, 500)

    report = download(tmp_path, coco_server, 101, 102)

    assert report.downloaded == 1
    assert [(failure.image_id, failure.reason) for failure in report.failures] == [(102, "HTTP 500 after 3 attempts")]
    assert sorted(path.name for path in (tmp_path / "images" / "val2017").iterdir()) == [coco2017_file_name(101)]


def test_missing_and_corrupt_images_are_counted_and_leave_no_file(tmp_path, coco_server):
    report = download(tmp_path, coco_server, *VAL_CAPTIONS)

    assert report.downloaded == len(GOOD_VAL_IDS)
    assert [item.image.image_id for item in report.available] == list(GOOD_VAL_IDS)
    assert Counter(failure.reason for failure in report.failures) == {"HTTP 404": 1, "corrupt image": 1}
    assert coco_server.requests[coco_server.image_path(MISSING_ID)] == 1  # a 404 is not retried
    on_disk = {path.name for path in (tmp_path / "images" / "val2017").iterdir()}
    assert on_disk == {coco2017_file_name(image_id) for image_id in GOOD_VAL_IDS}


def test_images_already_on_disk_and_decodable_are_not_downloaded_again(tmp_path, coco_server):
    download(tmp_path, coco_server, *GOOD_VAL_IDS)
    damaged = tmp_path / "images" / "val2017" / coco2017_file_name(103)
    damaged.write_bytes(damaged.read_bytes()[:200])
    coco_server.reset()

    report = download(tmp_path, coco_server, *GOOD_VAL_IDS)

    assert (report.present, report.downloaded) == (3, 1)
    assert dict(coco_server.requests) == {coco_server.image_path(103): 1}
    assert load_image(damaged).size == (40, 40)


# --- encoding ---


def test_each_image_is_encoded_once_and_keeps_all_its_captions(tmp_path, coco_server, encoder):
    options = make_options(tmp_path, coco_server)

    summary = encode_coco(options, encoder)

    merged = EmbeddingSet.load(options.out)
    assert merged.image_ids == list(GOOD_VAL_IDS)
    assert merged.embeddings.shape == (len(GOOD_VAL_IDS), encoder.embedding_size)
    assert merged.captions_by_image() == [stripped(VAL_CAPTIONS[image_id]) for image_id in GOOD_VAL_IDS]
    assert merged.file_names == [f"val2017/{coco2017_file_name(image_id)}" for image_id in GOOD_VAL_IDS]
    assert merged.metadata == {"dataset": "val", "captions": "captions_val2017.json"}
    assert (summary.images_in_annotations, summary.images_selected, summary.encoded) == (6, 6, 4)
    assert summary.failure_counts == {"HTTP 404": 1, "corrupt image": 1}
    assert (summary.embeddings_written, summary.captions_written) == (4, 14)
    assert summary.output_path == options.out


def test_merged_embeddings_equal_encoding_each_image_directly(tmp_path, coco_server, encoder):
    options = make_options(tmp_path, coco_server)
    encode_coco(options, encoder)

    merged = EmbeddingSet.load(options.out)
    images = [load_image(options.images_root / name) for name in merged.file_names]
    direct = encoder.encode_images(images)

    assert torch.allclose(merged.embeddings, direct, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(merged.embeddings[0], merged.embeddings[1], atol=1e-3)


def test_interrupted_run_resumes_without_downloading_or_encoding_again(tmp_path, coco_server, encoder):
    first = encode_coco(make_options(tmp_path, coco_server, max_images=2), encoder)
    assert (first.downloaded, first.encoded, first.embeddings_written) == (2, 2, 2)

    coco_server.reset()
    second = encode_coco(make_options(tmp_path, coco_server), encoder)
    assert (second.already_encoded, second.downloaded, second.encoded) == (2, 2, 2)
    assert coco_server.requests[coco_server.image_path(101)] == 0

    coco_server.reset()
    third = encode_coco(make_options(tmp_path, coco_server), encoder)
    assert (third.already_encoded, third.present, third.downloaded, third.encoded) == (4, 0, 0, 0)
    assert set(coco_server.requests) <= {coco_server.image_path(MISSING_ID), coco_server.image_path(CORRUPT_ID)}
    assert EmbeddingSet.load(make_options(tmp_path, coco_server).out).image_ids == list(GOOD_VAL_IDS)

    smaller = encode_coco(make_options(tmp_path, coco_server, max_images=1), encoder)
    assert smaller.encoded == 0
    assert EmbeddingSet.load(make_options(tmp_path, coco_server).out).image_ids == [101]


def test_shards_of_another_clip_model_are_refused_not_mixed(tmp_path, coco_server, encoder, tiny_resnet_clip_dir):
    encode_coco(make_options(tmp_path, coco_server, max_images=1), encoder)
    other = ClipEncoder.load(f"local-dir:{tiny_resnet_clip_dir}", device="cpu")
    with pytest.raises(DataError, match="was written for .*choose another --out or delete"):
        encode_coco(make_options(tmp_path, coco_server, max_images=2), other)


def test_image_that_fails_to_decode_while_encoding_is_skipped_and_counted(tmp_path, encoder):
    folder = tmp_path / "images" / "val2017"
    folder.mkdir(parents=True)
    for image_id in (1, 2, 3):
        (folder / coco2017_file_name(image_id)).write_bytes(jpeg_bytes(draw_image(image_id)))
    (folder / coco2017_file_name(2)).write_bytes(b"\xff\xd8 not really a jpeg")
    shard_dir = shard_directory(tmp_path / "out.safetensors")

    report = encode_images_to_shards(
        val_files(1, 2, 3), tmp_path / "images", encoder, shard_dir, {"dataset": "val"}, batch_size=2, progress=False
    )

    assert report.encoded == 2
    assert [(failure.image_id, failure.reason) for failure in report.failures] == [(2, "corrupt image")]
    shards = [EmbeddingSet.load(path) for path in sorted(shard_dir.iterdir())]
    assert [shard.image_ids for shard in shards] == [[1], [3]]


def test_karpathy_split_finds_its_images_in_train2017_and_val2017(tmp_path, coco_server, encoder):
    options = make_options(tmp_path, coco_server, dataset="train", karpathy_split=karpathy_file(tmp_path))

    summary = encode_coco(options, encoder)

    merged = EmbeddingSet.load(options.out)
    assert merged.file_names == ["train2017/000000000201.jpg", "train2017/000000000202.jpg", "val2017/000000000102.jpg"]
    assert merged.captions_by_image() == [
        ["Karpathy purple."],
        ["Karpathy orange.", "orange again"],
        ["Karpathy green."],
    ]
    assert merged.metadata["captions"] == "dataset_coco.json"
    assert summary.failures == []


def test_test_split_without_a_karpathy_file_is_refused(tmp_path, coco_server):
    with pytest.raises(DataError, match="no 'test' split.*Karpathy"):
        encode_coco(make_options(tmp_path, coco_server, dataset="test"))
