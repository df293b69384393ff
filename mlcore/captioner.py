"""The one entry point the rest of the project uses: load a checkpoint, embed images, caption them."""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from PIL import Image

from mlcore.checkpoint import load_checkpoint
from mlcore.devices import default_batch_size, inference_context, resolve_device
from mlcore.encoder import ClipEncoder
from mlcore.errors import CheckpointError
from mlcore.familiarity import FamiliarityReference, FamiliarityScore, familiarity_scores, load_reference
from mlcore.generate import DecodingOptions, GeneratedTokens, generate_candidates
from mlcore.model import CaptionerConfig, ClipCaptionModel, stop_token_id

# Rough memory per image during beam search with a 124M GPT-2 (KV cache for 5 beams and the logits).
BYTES_PER_CAPTION = 24 * 1024 * 1024


@dataclass(frozen=True)
class CaptionResult:
    text: str
    score: float
    token_ids: list[int]


class Captioner:
    """A captioning model ready to run. CLIP loads on first use, so captioning stored embeddings needs no CLIP."""

    def __init__(
        self,
        config: CaptionerConfig,
        model: ClipCaptionModel,
        tokenizer,
        device: torch.device,
        checkpoint_dir: Path | None = None,
        encoder: ClipEncoder | None = None,
        int8: bool = False,
        familiarity_reference: FamiliarityReference | None = None,
    ):
        if int8 and device.type != "cpu":
            raise ValueError(f"int8 captioning is for CPUs; on {device.type} the captioner uses bf16/fp16 instead")
        self.config = config
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = device
        self.checkpoint_dir = checkpoint_dir
        self.stop_token_id = stop_token_id(tokenizer, config.stop_token)
        self._encoder = encoder
        self.int8 = int8
        self.familiarity_reference = familiarity_reference

    @classmethod
    def load(
        cls,
        checkpoint: str | Path,
        device: str | torch.device | None = "auto",
        clip_model: str | None = None,
        int8: bool = False,
    ) -> "Captioner":
        """`clip_model` replaces the checkpoint's CLIP (same embedding size), e.g. a local copy of ViT-B/32.
        `int8` runs GPT-2 and CLIP's image transformer as int8 matmuls on a CPU, several times faster (mlcore.int8)."""
        checkpoint = Path(checkpoint)
        config, model, tokenizer = load_checkpoint(checkpoint)
        if clip_model:
            config = replace(config, clip_model=clip_model)
        return cls(
            config,
            model,
            tokenizer,
            resolve_device(device),
            checkpoint_dir=checkpoint,
            int8=int8,
            familiarity_reference=load_reference(checkpoint),
        )

    @property
    def encoder(self) -> ClipEncoder:
        if self._encoder is None:
            encoder = ClipEncoder.load(
                self.config.clip_model, device=self.device, base_dir=self.checkpoint_dir, int8=self.int8
            )
            if encoder.embedding_size != self.config.clip_embedding_size:
                raise CheckpointError(
                    f"CLIP {self.config.clip_model!r} gives {encoder.embedding_size}-d embeddings but the captioner "
                    f"was trained on {self.config.clip_embedding_size}-d ones"
                )
            self._encoder = encoder
        return self._encoder

    @property
    def embedding_size(self) -> int:
        return self.config.clip_embedding_size

    def embed(self, images: Sequence[Image.Image], batch_size: int = 64) -> torch.Tensor:
        """CLIP image embeddings, [N, D] float32 on the CPU (not normalised: the mapper was trained on these)."""
        return self.encoder.encode_images(images, batch_size=batch_size)

    def familiarity(self, embeddings: torch.Tensor) -> list[FamiliarityScore]:
        """How close each image embedding [N, D] is to the training images, and whether the model is confident
        about it (mlcore.familiarity); unknown (None) and confident when the checkpoint has no reference sample."""
        return familiarity_scores(self.familiarity_reference, embeddings)

    def embed_text(self, texts: Sequence[str]) -> torch.Tensor:
        return self.encoder.encode_texts(texts)

    def caption(
        self,
        images: Sequence[Image.Image],
        options: DecodingOptions | None = None,
        batch_size: int | None = None,
        **overrides,
    ) -> list[CaptionResult]:
        return self.caption_embeddings(self.embed(images), options, batch_size=batch_size, **overrides)

    def caption_embeddings(
        self,
        embeddings: torch.Tensor,
        options: DecodingOptions | None = None,
        batch_size: int | None = None,
        **overrides,
    ) -> list[CaptionResult]:
        options = self.decoding_options(options, **overrides)
        self.model.check_embeddings(embeddings)
        batch_size = batch_size or default_batch_size(self.device, BYTES_PER_CAPTION)
        results: list[CaptionResult] = []
        for start in range(0, embeddings.shape[0], batch_size):
            batch = embeddings[start : start + batch_size]
            with inference_context(self.device):
                prefixes = self.model.prefix_embeddings(batch.to(self.device))
                candidates = generate_candidates(self.model.gpt, prefixes, self.stop_token_id, options, int8=self.int8)
            if options.clip_rerank:
                results.extend(self._closest_in_clip(batch, candidates))
            else:
                results.extend(self._result(generated[0]) for generated in candidates)
        return results

    def _closest_in_clip(
        self, embeddings: torch.Tensor, candidates: list[list[GeneratedTokens]]
    ) -> list[CaptionResult]:
        """Each image's candidate whose text embedding is closest (cosine) to the image's, the likeliest on a tie.
        The likeliest caption may bind words wrongly that the CLIP tells apart ("a red square and a blue circle"
        for a red circle and a blue square: on the demo model the CLIP ranks the truth first for 99.4-100%)."""
        results = [[self._result(generated) for generated in image_candidates] for image_candidates in candidates]
        texts = [result.text for image_results in results for result in image_results]
        text_embeddings = torch.nn.functional.normalize(self.embed_text(texts), dim=-1)  # [candidates, D]
        image_embeddings = torch.nn.functional.normalize(embeddings.float().cpu(), dim=-1)  # [N, D]
        chosen, offset = [], 0
        for image_embedding, image_results in zip(image_embeddings, results, strict=True):
            similarities = text_embeddings[offset : offset + len(image_results)] @ image_embedding  # [candidates]
            chosen.append(image_results[int(similarities.argmax())])
            offset += len(image_results)
        return chosen

    def _result(self, generated: GeneratedTokens) -> CaptionResult:
        return CaptionResult(self.decode(generated.token_ids), generated.score, generated.token_ids)

    def decoding_options(self, options: DecodingOptions | None = None, **overrides) -> DecodingOptions:
        """`options` with `overrides` on top, and this model's own max_length and clip_rerank where neither sets
        them."""
        values = {
            "max_length": self.config.max_length,
            "clip_rerank": self.config.clip_rerank,
            **(options.to_dict() if options else {}),
            **overrides,
        }
        return DecodingOptions.from_dict(values)

    def decode(self, token_ids: list[int]) -> str:
        if token_ids and token_ids[-1] == self.stop_token_id and self.stop_token_id == self.tokenizer.eos_token_id:
            token_ids = token_ids[:-1]
        return self.tokenizer.decode(token_ids, skip_special_tokens=True).strip()
