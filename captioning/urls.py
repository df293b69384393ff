from django.urls import path

from captioning import views

urlpatterns = [
    path("", views.home, name="home"),
]
