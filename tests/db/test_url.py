"""Database URLs: which driver, where, the layer's options, and clear errors with the
password masked."""

import pytest

from trunkline.db import DEFAULT_URL, InvalidURL
from trunkline.db.url import DatabaseURL, mask_password


def test_the_default_is_a_sqlite_file_in_the_working_directory() -> None:
    url = DatabaseURL.parse(DEFAULT_URL)
    assert (url.dialect, url.path) == ("sqlite", "./trunkline.db")
    assert url.options == {
        "readers": 4,
        "busy_timeout_s": 5.0,
        "synchronous": "full",
        "temp_store": "memory",
    }


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("sqlite:///data/app.db", "data/app.db"),
        ("sqlite:////var/lib/app.db", "/var/lib/app.db"),
        ("sqlite:///:memory:", ":memory:"),
        ("SQLite:///x.db", "x.db"),
    ],
)
def test_sqlite_paths(text: str, path: str) -> None:
    url = DatabaseURL.parse(text)
    assert (url.dialect, url.path, url.host) == ("sqlite", path, None)


def test_sqlite_options_are_parsed_and_checked() -> None:
    url = DatabaseURL.parse(
        "sqlite:///x.db?readers=0&busy_timeout_s=0.5&synchronous=NORMAL&temp_store=File"
    )
    assert url.options == {
        "readers": 0,
        "busy_timeout_s": 0.5,
        "synchronous": "normal",
        "temp_store": "file",
    }


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_postgresql(scheme: str) -> None:
    url = DatabaseURL.parse(
        f"{scheme}://app:s3cret@db.internal:6543/chat?max_size=20&sslmode=disable"
    )
    assert url.dialect == "postgresql"
    assert (url.host, url.port, url.database) == ("db.internal", 6543, "chat")
    assert url.options["max_size"] == 20
    assert url.options["min_size"] == 1
    assert url.dsn == f"{scheme}://app:s3cret@db.internal:6543/chat?sslmode=disable"
    assert str(url) == f"{scheme}://app:***@db.internal:6543/chat?max_size=20&sslmode=disable"
    assert url.target == "PostgreSQL at db.internal:6543/chat"


def test_postgresql_options_have_defaults_and_are_checked() -> None:
    url = DatabaseURL.parse("postgresql://u@h/db?command_timeout_s=2.5")
    assert url.options == {
        "min_size": 1,
        "max_size": 10,
        "connect_timeout_s": 10.0,
        "reconnect_timeout_s": 10.0,
        "command_timeout_s": 2.5,
        "health_check_interval_s": 15.0,
    }
    assert (
        DatabaseURL.parse("postgresql://u@h/db?command_timeout_s=0").options["command_timeout_s"]
        is None
    )  # no timeout
    with pytest.raises(InvalidURL, match="health_check_interval_s='0'"):
        DatabaseURL.parse("postgresql://u@h/db?health_check_interval_s=0")
    with pytest.raises(InvalidURL, match="expected a number of seconds > 0, or 0 for none"):
        DatabaseURL.parse("postgresql://u@h/db?command_timeout_s=-1")


def test_postgresql_defaults_as_libpq() -> None:
    url = DatabaseURL.parse("postgresql://ada@/")
    assert (url.host, url.port, url.database) == ("localhost", 5432, "ada")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("mysql://u:pw@h/db", "unknown scheme mysql:"),
        ("just a path.db", "unknown scheme (none)"),
        ("sqlite://host/x.db", "has no host"),
        ("sqlite:///", "no file"),
        ("sqlite:///x.db?readers=-1", "readers='-1': expected an integer >= 0"),
        ("sqlite:///x.db?busy_timeout_s=soon", "expected a number of seconds > 0"),
        ("sqlite:///x.db?synchronous=maybe", "expected one of off, normal, full, extra"),
        ("sqlite:///x.db?temp_store=disk", "expected one of memory, file"),
        ("sqlite:///x.db?pool=3", "unknown option 'pool'"),
        ("postgresql://u:pw@h:port/db", "Port could not be cast"),
        ("postgresql://u:pw@h/db?max_size=0", "max_size='0'"),
        ("postgresql://u:pw@h/db?min_size=5&max_size=2", "min_size is larger than max_size"),
    ],
)
def test_bad_urls_say_what_is_wrong_and_mask_the_password(text: str, problem: str) -> None:
    with pytest.raises(InvalidURL) as caught:
        DatabaseURL.parse(text)
    assert problem in str(caught.value)
    assert "pw" not in str(caught.value).replace("pw@", "")
    assert isinstance(caught.value, ValueError)


def test_a_url_must_be_a_string() -> None:
    with pytest.raises(TypeError):
        DatabaseURL.parse(b"sqlite:///x.db")  # type: ignore[arg-type]


def test_mask_password() -> None:
    assert mask_password("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"
    assert mask_password("postgresql://u@h/db") == "postgresql://u@h/db"
    assert mask_password("sqlite:///x.db") == "sqlite:///x.db"


def test_passwords_given_as_query_parameters_are_masked_but_reach_asyncpg() -> None:
    text = "postgresql://u@h/db?password=hunter2&sslmode=require&sslpassword=s3same"
    url = DatabaseURL.parse(text)
    assert str(url) == "postgresql://u@h/db?password=***&sslmode=require&sslpassword=***"
    assert "hunter2" not in repr(url)
    assert url.dsn == text
    with pytest.raises(InvalidURL) as caught:
        DatabaseURL.parse("postgresql://u:pw1@h/db?Password=hunter2&max_size=zero")
    assert "hunter2" not in str(caught.value)
    assert "pw1" not in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "sqlite:///x.db",
        "postgresql:///db?sslmode=disable",
        "postgresql://u@h/db?application_name=pass%77ord&x=1#password=kept",
    ],
)
def test_a_url_without_a_password_is_shown_as_written(text: str) -> None:
    assert mask_password(text) == text
