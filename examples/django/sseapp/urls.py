from django.contrib.auth import views as auth_views
from django.urls import path

from sseapp import views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("", views.page, name="page"),
    path("sse-cookie", views.sse_cookie, name="sse-cookie"),
    path("notify", views.notify, name="notify"),
    path("sse-auth", views.sse_auth, name="sse-auth"),
]
