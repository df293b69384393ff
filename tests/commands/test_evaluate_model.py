"""`manage.py evaluate_model` end to end on a random tiny checkpoint: from an embedding file and from
image files with COCO annotations, down to the JSON report."""

import io
import json
import shutil
from pathlib import Path

import pytest
import torch
from django.core.management import call_command
from django.core.management.base import CommandError

from mlcore import evaluate
from mlcore.captioner import Captioner
from mlcore.data import EmbeddingSet
from mlcore.evaluate import CORENLP_JARS

PHOTOS = Path(__file__).parent.parent / "fixtures" / "photos"
SCORED_METRICS = {"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr", "CLIPScore"}
REFERENCES = [
    ["a small red circle in the middle on a black background", "a red circle"],
    ["a large blue square to the left on a grey background", "a blue square on grey"],
    ["a small green star near the top on a black background", "a green star"],
    ["a large white triangle in the middle on a grey background", "a white triangle"],
    ["a small purple circle to the left on a black background", "a purple circle"],
]


@pytest.fixture(autouse=True)
def without_corenlp(tmp_path, monkeypatch) -> None:
    """SPICE's CoreNLP jars absent, whatever this machine has: the report's note is then known."""
    spice_dir = tmp_path / "spice"
    (spice_dir / "lib").mkdir(parents=True)
    (spice_dir / "spice-1.0.jar").write_bytes(b"")
    monkeypatch.setattr(evaluate, "SPICE_DIR", spice_dir)


@pytest.fixture
def checkpoint(save_random_checkpoint) -> Path:
    return save_random_checkpoint("evaluated")


@pytest.fixture
def embedding_file(tmp_path, checkpoint) -> Path:
    clip_model = Captioner.load(checkpoint, device="cpu").config.clip_model
    embeddings = torch.randn(len(REFERENCES), 24, generator=torch.Generator().manual_seed(3))
    return EmbeddingSet.from_images(
        embeddings,
        image_ids=[500 + index for index in range(len(REFERENCES))],
        file_names=[f"{500 + index:012d}.jpg" for index in range(len(REFERENCES))],
        captions_per_image=REFERENCES,
        clip_model=clip_model,
    ).save(tmp_path / "val_embeddings.safetensors")


def evaluate_model(*flags: str) -> str:
    stdout = io.StringIO()
    call_command("evaluate_model", "--device=cpu", *flags, stdout=stdout, stderr=io.StringIO())
    return stdout.getvalue()


def test_report_from_an_embedding_file_holds_metrics_settings_checkpoint_and_predictions(
    tmp_path, checkpoint, embedding_file
):
    out = tmp_path / "report.json"

    output = evaluate_model(
        f"--weights={checkpoint}", f"--data={embedding_file}", "--max-images=4", "--beam_size=2", "--batch-size=3",
        f"--out={out}",
    )  # fmt: skip

    report = json.loads(out.read_text())
    assert set(report["metrics"]) == SCORED_METRICS
    for name in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L"):
        assert 0.0 <= report["metrics"][name] <= 1.0, name
    assert 0.0 <= report["metrics"]["CIDEr"] <= 10.0
    assert 0.0 <= report["metrics"]["CLIPScore"] <= 2.5
    assert all(jar in report["skipped_metrics"]["SPICE"] for jar in CORENLP_JARS)

    assert report["settings"]["decoding"]["strategy"] == "beam"
    assert report["settings"]["decoding"]["beam_size"] == 2
    assert report["settings"]["dataset"]["kind"] == "embeddings"
    assert report["settings"]["dataset"]["images"] == 4
    assert report["settings"]["dataset"]["data"] == str(embedding_file)
    assert report["settings"]["max_images"] == 4
    assert report["checkpoint"]["clip_embedding_size"] == 24
    assert report["checkpoint"]["mapper"]["mapper_type"] == "mlp"
    assert report["checkpoint"]["path"] == str(checkpoint)
    assert report["timings"]["caption_seconds"] > 0

    # Predictions are the checkpoint's own captions, in dataset order, each with its per-image scores.
    dataset = EmbeddingSet.load(embedding_file)
    expected = Captioner.load(checkpoint, device="cpu").caption_embeddings(dataset.embeddings[:4], beam_size=2)
    assert [item["image_id"] for item in report["predictions"]] == dataset.image_ids[:4]
    assert [item["file_name"] for item in report["predictions"]] == dataset.file_names[:4]
    assert [item["caption"] for item in report["predictions"]] == [result.text for result in expected]
    assert all(set(item["metrics"]) == SCORED_METRICS for item in report["predictions"])

    assert "CIDEr" in output
    assert "SPICE" in output and "skipped" in output
    assert f"Report written to {out}" in output


def test_sampling_flags_reach_the_decoder_and_the_report(tmp_path, checkpoint, embedding_file):
    out = tmp_path / "sampled.json"

    evaluate_model(
        f"--weights={checkpoint}", f"--data={embedding_file}", "--sample", "--temperature=0.7", "--top_k=5",
        "--seed=3", f"--out={out}",
    )  # fmt: skip

    report = json.loads(out.read_text())
    assert report["settings"]["decoding"] == {
        "strategy": "sample",
        "beam_size": 5,
        "length_normalization": 1.0,
        "max_length": 40,
        "temperature": 0.7,
        "top_k": 5,
        "seed": 3,
        "clip_rerank": False,  # the checkpoint's own choice, resolved
    }
    assert len(report["predictions"]) == len(REFERENCES)


def test_images_with_coco_annotations_are_embedded_and_scored_and_absent_files_counted(tmp_path, checkpoint):
    photos = sorted(PHOTOS.glob("COCO_*.jpg"))[:3]
    folder = tmp_path / "val2017"
    folder.mkdir()
    for photo in photos:
        shutil.copy(photo, folder / photo.name)
    annotated = [*(photo.name for photo in photos), "COCO_val2014_000000999999.jpg"]  # the last is not in the folder
    annotations = tmp_path / "captions_val2017.json"
    annotations.write_text(
        json.dumps(
            {
                "images": [{"id": index, "file_name": name} for index, name in enumerate(annotated)],
                "annotations": [
                    {"id": index * 2 + copy, "image_id": index, "caption": REFERENCES[index][copy]}
                    for index in range(len(annotated))
                    for copy in range(2)
                ],
            }
        )
    )

    output = evaluate_model(
        f"--weights={checkpoint}", f"--images={folder}", f"--annotations={annotations}", "--beam_size=2"
    )

    report = json.loads((checkpoint / "evaluation-captions_val2017.json").read_text())
    assert [item["file_name"] for item in report["predictions"]] == [photo.name for photo in photos]
    assert report["settings"]["dataset"]["kind"] == "images"
    assert report["settings"]["dataset"]["not_in_folder"] == 1
    assert report["settings"]["dataset"]["references"] == 6
    assert 0.0 <= report["metrics"]["CLIPScore"] <= 2.5
    assert "1 annotated images are not in" in output


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--images=photos"], "--images needs --annotations"),
        (["--data=x.safetensors", "--annotations=captions.json"], "--annotations goes with --images"),
        (["--data=x.safetensors", "--images=photos"], "not allowed with argument"),
        (["--data=x.safetensors", "--top_p=0.9"], "add --sample"),
        (["--data=x.safetensors", "--sample", "--temperature=0"], "temperature must be positive"),
    ],
)
def test_contradictory_or_incomplete_flags_are_rejected(flags, message, checkpoint):
    with pytest.raises(CommandError, match=message):
        evaluate_model(f"--weights={checkpoint}", *flags)


def test_a_missing_embedding_file_is_a_command_error_naming_it(tmp_path, checkpoint):
    with pytest.raises(CommandError, match=r"absent\.safetensors does not exist"):
        evaluate_model(f"--weights={checkpoint}", f"--data={tmp_path / 'absent.safetensors'}")
