from django.apps import AppConfig


class CaptioningConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "captioning"
    verbose_name = "Captioning"
