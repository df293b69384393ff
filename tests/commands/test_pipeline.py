"""The researcher's path end to end: loopback COCO download -> encode -> train -> caption -> evaluate."""

import io
import json

from django.core.management import call_command

from mlcore.captioner import Captioner
from tests.commands.conftest import GOOD_VAL_IDS


def run(command: str, *flags: str) -> str:
    stdout = io.StringIO()
    call_command(command, *flags, stdout=stdout, stderr=io.StringIO())
    return stdout.getvalue()


def test_download_encode_train_caption_and_evaluate(tmp_path, settings, coco_server, tiny_clip_dir, tiny_gpt2_dir):
    settings.COCO_ANNOTATIONS_URL = coco_server.annotations_url
    settings.COCO_IMAGES_BASE_URL = coco_server.base_url
    coco = tmp_path / "coco"
    embeddings = coco / "val.safetensors"
    run(
        "encode_coco",
        "--dataset=val",
        f"--coco-root={coco}",
        f"--clip-model=local-dir:{tiny_clip_dir}",
        f"--out={embeddings}",
        "--batch-size=4",
        "--retries=0",
        "--device=cpu",
    )

    training = run(
        "train_model",
        f"--data={embeddings}",
        f"--val_data={embeddings}",
        f"--out-dir={tmp_path / 'run'}",
        f"--gpt2={tiny_gpt2_dir}",
        "--prefix_length=4",
        "--epochs=3",
        "--bs=4",
        "--lr=1e-2",
        "--warmup=2",
        "--device=cpu",
        "--mapping_type=transformer",
        "--num_layers=1",
        "--only_prefix",
        "--grad_clip=0",
    )
    assert "Training finished" in training
    best = tmp_path / "run" / "clip_pro-best"
    trained = Captioner.load(best, device="cpu").config
    assert trained.training["epochs"] >= 1
    assert trained.mapper.mapper_type == "transformer" and not trained.train_gpt2
    assert (
        trained.training["options"] | {"batch_size": 4, "grad_clip": None, "warmup_steps": 2}
        == trained.training["options"]
    )

    images = coco / "images" / "val2017"
    (images / "notes.txt").write_text("not an image")
    results = tmp_path / "results.json"
    output = run(
        "caption_images",
        f"--img_dir={images}",
        f"--weights={best}",
        f"--out={results}",
        "--beam_size=3",
        "--device=cpu",
    )
    document = json.loads(results.read_text())
    assert len(document["captions"]) == len(GOOD_VAL_IDS)
    assert all(item["caption"] and item["score"] <= 0 for item in document["captions"])
    assert [item["file"] for item in document["skipped"]] == ["notes.txt"]
    assert "Skipped 1 files" in output

    report_path = tmp_path / "report.json"
    run(
        "evaluate_model",
        f"--weights={best}",
        f"--data={embeddings}",
        f"--out={report_path}",
        "--spice=off",
        "--device=cpu",
    )
    report = json.loads(report_path.read_text())
    assert {"BLEU-4", "CIDEr", "CLIPScore"} <= set(report["metrics"])
