from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm

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


class RecaptionForm(forms.Form):
    model_version = forms.ModelChoiceField(
        queryset=ModelVersion.objects.none(), required=False, empty_label="The active model"
    )
    strategy = forms.ChoiceField(
        choices=[("beam", "Beam search"), ("greedy", "Greedy"), ("sample", "Sampling")], initial="beam"
    )
    beam_size = forms.IntegerField(min_value=1, max_value=10, initial=5, required=False)
    max_length = forms.IntegerField(min_value=5, max_value=80, initial=40, required=False)
    temperature = forms.FloatField(min_value=0.1, max_value=2.0, required=False)
    top_p = forms.FloatField(min_value=0.05, max_value=1.0, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model_version"].queryset = model_version_list()

    def decoding(self) -> dict:
        values = {key: self.cleaned_data.get(key) for key in ("strategy", "beam_size", "max_length")}
        if values["strategy"] == "sample":
            values["temperature"] = self.cleaned_data.get("temperature")
            values["top_p"] = self.cleaned_data.get("top_p")
        return {key: value for key, value in values.items() if value not in (None, "")}
