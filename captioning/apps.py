from django.apps import AppConfig
from django.core.management import call_command
from django.db.models.signals import post_delete, post_migrate, post_save


def create_cache_table(using: str = "default", **kwargs) -> None:
    """The database cache (the default, settings.CACHES) needs its table; `createcachetable` makes it when missing
    and does nothing for other caches, so every `migrate` runs it."""
    call_command("createcachetable", database=using, verbosity=0)


class CaptioningConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "captioning"
    verbose_name = "Captioning"

    def ready(self) -> None:
        from captioning.models import Translation
        from captioning.translators import forget_stored_languages

        post_migrate.connect(create_cache_table, sender=self)
        post_save.connect(forget_stored_languages, sender=Translation, dispatch_uid="forget_stored_languages_on_save")
        post_delete.connect(
            forget_stored_languages, sender=Translation, dispatch_uid="forget_stored_languages_on_delete"
        )
