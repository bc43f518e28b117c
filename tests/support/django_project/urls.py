"""Views of the test project: a login, a view behind ``login_required``, a public one, and the
audit-log API twice — for the whole project, and per tenant (everyone here works for acme)."""

from __future__ import annotations

from django.contrib.auth import authenticate, login
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

import auditwire
from auditwire.integrations.django import audit_log_urls


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


def acme_staff(request: HttpRequest) -> str | None:
    return "acme" if request.user.is_authenticated else None


urlpatterns = [
    path("login/", sign_in),
    path("invoices/<int:n>/void", void),
    path("t/<str:tenant>/hello", hello),
    path("audit/", include(audit_log_urls())),
    path("t/<str:tenant>/audit/", include(audit_log_urls(tenant_of=acme_staff))),
]
