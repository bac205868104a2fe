"""aelab.core.urls: storage and tracking URLs shown without their credentials."""

from __future__ import annotations

import pytest

from aelab.tracking.urls import redacted, without_secrets


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://aelab:pw@db:5432/optuna", "postgresql+psycopg://aelab:***@db:5432/optuna"),
        ("postgresql+psycopg://127.0.0.1:5432/optuna?user=aelab&password=pw",
         "postgresql+psycopg://127.0.0.1:5432/optuna?user=aelab&password=***"),
        ("postgresql://aelab@db/x?sslmode=require&sslpassword=pw&PassWord=pw",
         "postgresql://aelab@db/x?sslmode=require&sslpassword=***&PassWord=***"),
        ("https://h/x?flag&token=t&api_key=k#top", "https://h/x?flag&token=***&api_key=***#top"),
        ("http://user:p%40ss@localhost:5000", "http://user:***@localhost:5000"),
        ("sqlite:////abs/optuna.db", "sqlite:////abs/optuna.db"),
        ("sqlite:///optuna.db", "sqlite:///optuna.db"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("host=db password=pw user=aelab", "host=db password=*** user=aelab"),
    ],
)  # fmt: skip
def test_credentials_are_replaced_and_the_rest_kept(url: str, shown: str):
    assert redacted(url) == shown


def test_text_that_quotes_a_secret_loses_it_as_written_and_decoded():
    url = "postgresql://aelab:p%40ss@db/x?password=two+words"
    text = f"connecting to {url} failed: password 'p@ss' or 'two words' or p%40ss refused"
    assert without_secrets(text, url) == (
        "connecting to postgresql://aelab:***@db/x?password=*** failed: password '***' or "
        "'***' or *** refused"
    )
