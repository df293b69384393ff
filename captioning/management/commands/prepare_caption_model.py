"""Makes CAPTION_MODEL the active model (`make run` runs this in the background through `serve --prepare-model`):
installs it from the catalogue or registers it, or builds the offline demo model when it cannot be had."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from captioning.services.model_preparation import ModelPreparationFailed, model_prepare


class Command(BaseCommand):
    help = (
        "Make CAPTION_MODEL (a catalogue name, 'demo', a registered model or a checkpoint directory) the active "
        "model; without internet, fall back to the offline demo model (built once). Progress shows on the pages."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", default=None, help=f"instead of CAPTION_MODEL ({settings.CAPTION_MODEL})")

    def handle(self, *args, model, **options):
        try:
            preparation = model_prepare(requested=model or settings.CAPTION_MODEL, log=self.stdout.write)
        except ModelPreparationFailed as error:
            raise CommandError(
                f"{error}. Until a model is registered (`python manage.py register_model PATH --activate`), uploaded "
                "photos fail with a message naming these commands; they are queued again as soon as a model is made "
                "active."
            ) from None
        if preparation.fallback_reason:
            self.stdout.write(self.style.WARNING(f"{preparation.fallback_reason}."))
        self.stdout.write(self.style.SUCCESS(f"Captioning model {preparation.model_name!r} is active."))
