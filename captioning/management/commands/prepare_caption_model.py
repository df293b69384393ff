"""Makes sure there is a model to caption with: builds the offline demo model into CAPTION_MODEL_PATH when
it is missing, and makes it the active model when none is active. `make run` calls this."""

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from captioning.selectors import model_version_active
from mlcore.checkpoint import CONFIG_FILE


class Command(BaseCommand):
    help = "Build the demo captioning model if it is missing and activate it when no model is active."

    def handle(self, *args, **options):
        active = model_version_active()
        if active is not None:
            self.stdout.write(f"Captioning model {active.name!r} is active ({active.checkpoint_path}).")
            return
        path = settings.CAPTION_MODEL_PATH
        if not (path / CONFIG_FILE).is_file():
            self.stdout.write(f"Building the demo captioning model into {path} (a few minutes, once)…")
            try:
                call_command("build_demo_model", "--out", str(path), "--if-missing")
            except CommandError as error:
                raise CommandError(
                    f"Could not build the demo model ({error}). Until a model is registered (`python manage.py "
                    "register_model PATH --activate`), uploaded photos fail with a message naming these commands; "
                    "they are queued again as soon as a model is made active."
                ) from None
        call_command("register_model", str(path), "--name", "demo", "--if-none-active", stdout=self.stdout)
