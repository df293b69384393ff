"""The home page, sign-up, the model pages and the help pages."""

from django.contrib import messages
from django.contrib.auth import login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from captioning import selectors
from captioning.forms import SignupForm
from captioning.model_facts import model_version_facts
from captioning.translators import (
    PROVIDERS,
    SOURCE_LANGUAGE,
    language_name,
    provider_host,
    translatable_languages,
    translation_provider,
)
from captioning.views.common import offered_languages


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("gallery-list")
    return render(request, "captioning/home.html", {"public_galleries": selectors.gallery_list_public(limit=6)})


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("gallery-list")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="captioning.sign_in.AccountBackend")
        messages.success(request, f"Welcome, {user.username}! Create your first gallery to start uploading.")
        return redirect("gallery-list")
    return render(request, "registration/signup.html", {"form": form})


@require_GET
def model_list(request: HttpRequest) -> HttpResponse:
    return render(request, "captioning/model_list.html", {"model_versions": selectors.model_version_list()})


@require_GET
def model_detail(request: HttpRequest, model_version_id: int) -> HttpResponse:
    """What captions the photos: public, like the captions that link here."""
    model_version = selectors.model_version_list().filter(pk=model_version_id).first()
    if model_version is None:
        raise Http404("No such model")
    return render(request, "captioning/model_detail.html", {"facts": model_version_facts(model_version)})


@require_GET
def translation_help(request: HttpRequest) -> HttpResponse:
    """What is translated, by whom, and how an administrator turns a translation service on."""
    provider = translation_provider()
    return render(
        request,
        "captioning/translation_help.html",
        {
            "provider": provider,
            "provider_host": provider_host(provider) if provider else "",
            "providers": [(code, name, host) for code, (name, host) in PROVIDERS.items()],
            "languages": [(code, language_name(code)) for code in translatable_languages()],
            "stored_languages": [name for code, name in offered_languages(request) if code != SOURCE_LANGUAGE],
        },
    )
