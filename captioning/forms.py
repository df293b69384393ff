from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm

from captioning.decoding import NUMBER_LIMITS, STRATEGIES
from captioning.models import Gallery, GalleryMembership, ModelVersion
from captioning.selectors import model_version_list


class SignupForm(UserCreationForm):
    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username",)


class GalleryForm(forms.Form):
    title = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    visibility = forms.ChoiceField(
        choices=Gallery.Visibility.choices, initial=Gallery.Visibility.PRIVATE, widget=forms.RadioSelect
    )


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=GalleryMembership.Role.choices, initial=GalleryMembership.Role.VIEWER)


class CaptionEditForm(forms.Form):
    text = forms.CharField(max_length=1000, widget=forms.Textarea(attrs={"rows": 2}))


def _decoding_field(name: str, **options) -> forms.Field:
    """A form field for one of the numeric decoding settings, within its limits (captioning.decoding)."""
    limit = NUMBER_LIMITS[name]
    field_class = forms.IntegerField if limit.kind is int else forms.FloatField
    return field_class(min_value=limit.minimum, max_value=limit.maximum, required=False, **options)


class RecaptionForm(forms.Form):
    model_version = forms.ModelChoiceField(
        queryset=ModelVersion.objects.none(), required=False, empty_label="The active model"
    )
    strategy = forms.ChoiceField(choices=list(STRATEGIES.items()), initial="beam")
    beam_size = _decoding_field("beam_size", initial=lambda: settings.CAPTION_BEAM_SIZE)
    max_length = _decoding_field("max_length", initial=lambda: settings.CAPTION_MAX_LENGTH)
    temperature = _decoding_field("temperature")
    top_p = _decoding_field("top_p")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model_version"].queryset = model_version_list()

    def decoding(self) -> dict:
        values = {key: self.cleaned_data.get(key) for key in ("strategy", "beam_size", "max_length")}
        if values["strategy"] == "sample":
            values["temperature"] = self.cleaned_data.get("temperature")
            values["top_p"] = self.cleaned_data.get("top_p")
        return {key: value for key, value in values.items() if value not in (None, "")}
