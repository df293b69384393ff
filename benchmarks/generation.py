"""Captioning speed: our batched KV-cache beam search against ClipCap's reference algorithm.

Both run the real-size architecture (ViT-B/32 image tower + GPT-2 124M + ClipCap's MLP mapper, prefix
10) built from configs with random weights: speed does not depend on the weight values. GPT-2's
output layer is untied and scaled so next-token distributions are peaked like a trained model's
(a random tied GPT-2 is nearly uniform, and near-ties would make "same caption" a coin toss).

Inputs are preprocessed pixel tensors, identical for both; each side encodes them with CLIP, maps
them to prefixes and runs beam search. The reference does it one image at a time, recomputing the
whole sequence every step (ClipCap's `generate_beam`). The script checks that both return the same
best caption for every image the reference captions, then prints captions/s for each and the ratio.
On a CPU it also times our captioner with int8 matmuls (`Captioner.load(..., int8=True)`: GPT-2 and
CLIP's image transformer) and counts how many of its captions equal the fp32 ones.

    python benchmarks/generation.py                      # CPU: fp32, and int8 (--no-int8 skips it)
    python benchmarks/generation.py --device cuda --images 2048 --batch-size 512
"""

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlcore.devices import autocast_dtype, inference_context, resolve_device
from mlcore.generate import DecodingOptions, generate
from mlcore.int8 import quantize_image_tower
from mlcore.mapping import MapperConfig, build_mapper
from tests.mlcore.clipcap_reference import reference_beam_search


class RealSizeCaptioner(torch.nn.Module):
    """ClipCap's layout: `gpt` and `clip_project`, which is all the reference code touches."""

    def __init__(self, seed: int):
        super().__init__()
        import open_clip
        from transformers import GPT2Config, GPT2LMHeadModel

        torch.manual_seed(seed)
        self.clip = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None).eval()
        config = GPT2Config(tie_word_embeddings=False)
        self.gpt = GPT2LMHeadModel(config).eval()
        with torch.no_grad():
            self.gpt.lm_head.weight.normal_(0.0, 0.15)
        self.clip_project = build_mapper(MapperConfig("mlp", 512, config.n_embd, prefix_length=10))


def ours(model, pixels, options, stop_token_id, batch_size, device, int8_clip=None):
    """`int8_clip`: the int8 copy of the model's CLIP; given, GPT-2 runs in int8 too."""
    int8 = int8_clip is not None
    clip = int8_clip if int8 else model.clip
    captions = []
    for start in range(0, pixels.shape[0], batch_size):
        with inference_context(device):
            embeddings = clip.encode_image(pixels[start : start + batch_size].to(device))
            prefixes = model.clip_project(embeddings.to(model.gpt.dtype))
            captions.extend(generate(model.gpt, prefixes, stop_token_id, options, int8=int8))
    return captions


def timed(function, device, *args, **kwargs):
    """The result, wall seconds and this process's CPU seconds (all threads): on a shared machine the CPU
    time moves less with the load than the wall time does."""
    synchronize(device)
    started, cpu_started = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    synchronize(device)
    return result, time.perf_counter() - started, time.process_time() - cpu_started


def reference(model, pixels, options, stop_token_id, device):
    captions = []
    with torch.no_grad():
        for index in range(pixels.shape[0]):
            embedding = model.clip.encode_image(pixels[index : index + 1].to(device))
            prefix = model.clip_project(embedding)
            captions.append(
                reference_beam_search(model, prefix, stop_token_id, options.beam_size, options.max_length)[0]
            )
    return captions


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--images", type=int, default=64, help="images our batched captioner captions")
    parser.add_argument("--reference-images", type=int, default=4, help="images the reference captions")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--max-length", type=int, default=20, help="new tokens per caption")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    parser.add_argument("--no-int8", action="store_true", help="on a CPU, skip timing the int8 captioner")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    model = RealSizeCaptioner(args.seed).to(device)
    torch.manual_seed(args.seed + 1)
    pixels = torch.randn(max(args.images, args.reference_images), 3, 224, 224)
    # No stop token within reach: every caption runs the full --max-length tokens on both sides.
    stop_token_id = model.gpt.config.eos_token_id
    options = DecodingOptions(beam_size=args.beam_size, max_length=args.max_length)
    precision = autocast_dtype(device) or torch.float32
    print(
        f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
        f"threads: {torch.get_num_threads()}, ours in {str(precision).removeprefix('torch.')}, reference in fp32"
    )
    print(f"beam {args.beam_size}, {args.max_length} new tokens, ViT-B/32 + GPT-2 124M (random weights)")

    int8 = device.type == "cpu" and not args.no_int8
    int8_clip = None
    if int8:
        int8_clip = copy.deepcopy(model.clip)
        quantize_image_tower(int8_clip)
    for warm_clip in {None, int8_clip}:
        ours(model, pixels[: min(4, args.batch_size)], options, stop_token_id, args.batch_size, device, warm_clip)
    images = pixels[: args.images]
    our_captions, our_seconds, our_cpu = timed(
        ours, device, model, images, options, stop_token_id, args.batch_size, device
    )
    if int8:
        int8_captions, int8_seconds, int8_cpu = timed(
            ours, device, model, images, options, stop_token_id, args.batch_size, device, int8_clip
        )
    reference_captions, reference_seconds, reference_cpu = timed(
        reference, device, model, pixels[: args.reference_images], options, stop_token_id, device
    )

    if precision == torch.float32:
        check = [c.token_ids for c in our_captions[: args.reference_images]]
    else:
        # The reference runs in fp32; compare against our generation in fp32 too, on the same images.
        with torch.autocast(device.type, enabled=False):
            check = [
                c.token_ids for c in ours_fp32(model, pixels[: args.reference_images], options, stop_token_id, device)
            ]
    same = sum(a == b for a, b in zip(check, reference_captions, strict=True))
    our_rate = args.images / our_seconds
    reference_rate = args.reference_images / reference_seconds
    print(
        f"reference (one image at a time, no cache): {reference_rate:8.3f} captions/s "
        f"({args.reference_images} images, {reference_seconds:.1f} s, CPU {reference_cpu:.1f} s)"
    )
    print(
        f"ours (batched, KV cache, batch {args.batch_size}):     {our_rate:8.3f} captions/s "
        f"({args.images} images, {our_seconds:.1f} s, CPU {our_cpu:.1f} s)"
    )
    reference_cpu_rate = args.reference_images / reference_cpu
    print(f"ratio: {our_rate / reference_rate:.1f}x (in CPU time: {args.images / our_cpu / reference_cpu_rate:.1f}x)")
    if int8:
        int8_rate = args.images / int8_seconds
        agree = sum(a.token_ids == b.token_ids for a, b in zip(int8_captions, our_captions, strict=True))
        print(
            f"ours with int8 matmuls:                   {int8_rate:8.3f} captions/s "
            f"({args.images} images, {int8_seconds:.1f} s, CPU {int8_cpu:.1f} s)"
        )
        print(
            f"ratio (int8): {int8_rate / reference_rate:.1f}x (in CPU time: "
            f"{args.images / int8_cpu / reference_cpu_rate:.1f}x); same caption as our fp32: {agree}/{args.images}"
        )
    print(f"same best caption as the reference: {same}/{args.reference_images}")
    if same != args.reference_images:
        sys.exit("MISMATCH: batched beam search disagrees with the reference algorithm")


def ours_fp32(model, pixels, options, stop_token_id, device):
    captions = []
    with torch.inference_mode():
        embeddings = model.clip.encode_image(pixels.to(device))
        prefixes = model.clip_project(embeddings)
        captions.extend(generate(model.gpt, prefixes, stop_token_id, options))
    return captions


if __name__ == "__main__":
    main()
