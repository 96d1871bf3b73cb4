"""URLs: each answers with and without its trailing slash (`/healthz` is the app role's default health path)."""

from django.urls import re_path

from jobs import views as jobs
from refapp import views

urlpatterns = [
    re_path(r"^healthz/?$", views.healthz, name="healthz"),
    re_path(r"^(?:version|release)/?$", views.version, name="version"),
    re_path(r"^tasks/?$", jobs.enqueue, name="tasks"),
    re_path(r"^$", jobs.index, name="index"),
]
