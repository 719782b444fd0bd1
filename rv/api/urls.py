from django.urls import path

from rv.api import auth

urlpatterns = [
    path("auth/token/", auth.TokenView.as_view(), name="api-token"),
]
