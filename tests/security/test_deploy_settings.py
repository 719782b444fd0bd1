"""Production settings from the environment (issue 12): Secure cookies, HSTS, HTTPS redirect,
proxy header opt-in; `check --deploy` clean with them; a CSP of this origin only on every
page, and no inline script or style in any template; Swagger UI from the installed package,
for signed-in users only."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from tests.rv.conftest import PASSWORD, make_user

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "x7-" + "kQ3vT9pZ2mW8rB5nY4cF6hJ1dL0sG" * 2,
    "DJANGO_ALLOWED_HOSTS": "rv.hospital.example",
    "DJANGO_SECURE_COOKIES": "true",
    "DJANGO_HSTS_SECONDS": "31536000",
    "DJANGO_HSTS_INCLUDE_SUBDOMAINS": "true",
    "DJANGO_HSTS_PRELOAD": "true",
    "DJANGO_SSL_REDIRECT": "true",
    "DJANGO_TRUST_PROXY": "true",
}


def _manage(*args: str, extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(extra)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_production_environment() -> None:
    done = _manage("check", "--deploy", "--fail-level", "WARNING", extra=PRODUCTION)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout


def test_check_deploy_warns_without_them() -> None:
    """The same check is not vacuous: the development defaults do warn."""
    done = _manage("check", "--deploy", "--fail-level", "WARNING", extra={})
    assert done.returncode != 0 and "security.W008" in done.stdout + done.stderr


def test_environment_reaches_the_settings() -> None:
    code = ("from django.conf import settings as s; import json; print(json.dumps(["
            "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, "
            "s.SECURE_SSL_REDIRECT, list(s.SECURE_PROXY_SSL_HEADER or ()), s.DEBUG]))")
    done = _manage("shell", "-c", code, extra=PRODUCTION)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [
        True, True, 31536000, True, ["HTTP_X_FORWARDED_PROTO", "https"], False]


@pytest.mark.django_db
def test_pages_carry_a_self_only_csp(client: Client) -> None:
    make_user("cara", "therapist")
    client.login(username="cara", password=PASSWORD)
    for url in ("/login/", "/console/", "/patients/"):
        policy = client.get(url)["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
        assert directives["default-src"] == "'self'"
        assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
        assert "unsafe-inline" not in policy and "http" not in policy


def test_templates_have_no_inline_script_or_style() -> None:
    for path in (REPO / "templates").rglob("*.html"):
        text = path.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), path
        assert "<style" not in text and " style=" not in text, path
        assert not re.search(r"\son[a-z]+=", text), path  # onclick= and friends


@pytest.mark.django_db
def test_api_docs_need_login_and_use_no_cdn(client: Client) -> None:
    for url in ("/api/docs/", "/api/schema/", "/api/docs/?script="):
        anonymous = Client().get(url)
        assert anonymous.status_code in (401, 302, 403), (url, anonymous.status_code)
    make_user("dora", "physicist")
    client.login(username="dora", password=PASSWORD)
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "cdn" not in html.lower() and "https://" not in html and "http://" not in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("swagger-ui-bundle.js" in a for a in assets)
    for asset in assets:
        got = client.get(asset)
        assert got.status_code == 200, asset  # served from this server (the sidecar)
        if hasattr(got, "streaming_content"):
            b"".join(got.streaming_content)
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and b"/api/schema/" in script.content
