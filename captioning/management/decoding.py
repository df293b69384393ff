"""Decoding flags shared by the commands that caption (caption_images, evaluate_model)."""

from django.core.management.base import CommandError, CommandParser

from mlcore.generate import DecodingOptions


def add_decoding_arguments(parser: CommandParser) -> None:
    parser.add_argument("--beam_size", "--beam-size", type=int, default=5, help="beam search width (default 5)")
    parser.add_argument("--sample", action="store_true", help="sample instead of beam search")
    parser.add_argument("--greedy", action="store_true", help="always take the likeliest next token")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top_p", "--top-p", type=float, help="nucleus sampling mass (with --sample)")
    parser.add_argument("--top_k", "--top-k", type=int, help="sample among the k likeliest tokens (with --sample)")
    parser.add_argument("--seed", type=int, help="seed for --sample")
    parser.add_argument("--max-length", type=int, default=40, help="most tokens per caption (default 40)")


def decoding_options_from(options: dict) -> DecodingOptions:
    if options["sample"] and options["greedy"]:
        raise CommandError("choose one of --sample and --greedy")
    if not options["sample"] and (options["top_p"] is not None or options["top_k"] is not None):
        raise CommandError("--top_p and --top_k apply to sampling; add --sample")
    try:
        if options["sample"]:
            return DecodingOptions(
                strategy="sample",
                temperature=options["temperature"],
                top_p=options["top_p"],
                top_k=options["top_k"],
                seed=options["seed"],
                max_length=options["max_length"],
            )
        if options["greedy"]:
            return DecodingOptions(strategy="greedy", max_length=options["max_length"])
        return DecodingOptions(
            beam_size=options["beam_size"], temperature=options["temperature"], max_length=options["max_length"]
        )
    except ValueError as error:
        raise CommandError(str(error)) from error
