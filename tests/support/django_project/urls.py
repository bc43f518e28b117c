"""Views of the test project: a login, a view behind ``login_required``, a public one."""

from __future__ import annotations

from django.contrib.auth import authenticate, login
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

import auditwire


@csrf_exempt  # type: ignore[untyped-decorator]
def sign_in(request: HttpRequest) -> HttpResponse:
    user = authenticate(
        request, username=request.POST.get("username"), password=request.POST.get("password")
    )
    if user is None:
        return HttpResponse("no", status=401)
    login(request, user)
    context = auditwire.current()
    assert context is not None
    context.set_action("login")
    return HttpResponse("in")


@csrf_exempt  # type: ignore[untyped-decorator]
@login_required  # type: ignore[untyped-decorator]
def void(request: HttpRequest, n: int) -> HttpResponse:
    context = auditwire.current()
    assert context is not None
    context.set_action("settings_changed", target={"type": "invoice", "id": n})
    return HttpResponse(f"voided {n}")


def hello(request: HttpRequest, tenant: str) -> HttpResponse:
    return HttpResponse("hello")


urlpatterns = [
    path("login/", sign_in),
    path("invoices/<int:n>/void", void),
    path("t/<str:tenant>/hello", hello),
]
