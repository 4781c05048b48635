"""Tests for the login form: they talk about passwords and tokens but hold none."""

import pytest

from app.auth import TokenKind, login, tokenize


@pytest.mark.parametrize("password", [None, "", "   "])
def test_login_requires_password(client, password):
    response = client.post("/login", data={"user": "ada", "password": password})
    assert response.status_code == 400
    assert "password is required" in response.text


def test_password_prompt(capsys):
    prompt = "Enter your password: "
    assert prompt.endswith(": ")


def test_token_is_not_logged(caplog, client):
    token = client.issue_token(user="ada")
    assert token not in caplog.text
    assert login(user="ada", password=client.password_for("ada"))


def test_lexer_tokens():
    tokens = tokenize("a = b + 1")
    token = tokens[0]
    next_token = tokens[1]
    assert token.kind is TokenKind.NAME and next_token.value == "="


def test_fixture_passwords_are_masked(settings):
    settings.password = "********"
    settings.api_key = "<your-api-key>"
    settings.secret = "${APP_SECRET}"
    settings.token = "{{ vault_token }}"
    settings.client_secret = "REDACTED"
    settings.webhook_secret = "xxxxxxxxxxxxxxxxxxxxxxxx"
    assert settings.masked()


def test_reset_link_uses_placeholder():
    url = "https://app.internal/reset?token={token}"
    assert "{token}" in url
    dsn = "postgresql://{user}:{password}@{host}:5432/orders"
    assert dsn.count("{") == 3
