"""Settings: the sources' precedence (options > environment > TOML > defaults) and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from trunkline.server import Settings, SettingsError, env_var, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trunkline.toml"
    path.write_text(text)
    return path


def test_defaults() -> None:
    settings = load_settings()
    assert settings == Settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 4000)
    assert settings.database == "sqlite:///./trunkline.db"
    assert (settings.log_format, settings.log_level) == ("human", "info")
    assert settings.jobs.queues == {"default": 10}


def test_each_source_overrides_the_ones_below(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        'host = "0.0.0.0"\nport = 4100\nlog_format = "json"\nshutdown_grace_s = 3\n'
        "[jobs.queues]\nmail = 5\n",
    )
    env = {"TRUNKLINE_PORT": "4200", "TRUNKLINE_LOG_FORMAT": "human", "OTHER_PORT": "1"}
    settings = load_settings(cli={"port": 4300, "host": None}, env=env, config_path=config)
    assert settings.port == 4300  # option > environment > file
    assert settings.log_format == "human"  # environment > file
    assert settings.host == "0.0.0.0"  # file > default (an option given as None is not given)
    assert settings.shutdown_grace_s == 3.0
    assert settings.jobs.queues == {"mail": 5}  # replaced whole, not merged with the default
    assert settings.database == "sqlite:///./trunkline.db"  # default


def test_environment_alone_and_its_queue_syntax() -> None:
    env = {
        "TRUNKLINE_HOST": "::1",
        "TRUNKLINE_DATABASE": "postgresql://postgres@127.0.0.1/test",
        "TRUNKLINE_LOG_LEVEL": "DEBUG",
        "TRUNKLINE_JOBS_QUEUES": "default=10, mail=5",
    }
    settings = load_settings(env=env)
    assert settings.host == "::1"
    assert settings.database == "postgresql://postgres@127.0.0.1/test"
    assert settings.log_level == "debug"
    assert settings.jobs.queues == {"default": 10, "mail": 5}
    assert env_var("jobs.queues") == "TRUNKLINE_JOBS_QUEUES"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            {"env": {"TRUNKLINE_PORT": "99999"}},
            "invalid setting port = '99999' (from environment variable TRUNKLINE_PORT): "
            "Input should be less than or equal to 65535",
        ),
        (
            {"cli": {"port": -1}},
            "invalid setting port = -1 (from option --port): Input should be greater than or "
            "equal to 0",
        ),
        (
            {"cli": {"log_format": "xml"}},
            "invalid setting log_format = 'xml' (from option --log-format): Input should be "
            "'human' or 'json'",
        ),
        (
            {"env": {"TRUNKLINE_JOBS_QUEUES": "mail=0"}},
            "invalid setting jobs.queues = {'mail': '0'} (from environment variable "
            "TRUNKLINE_JOBS_QUEUES): queue 'mail': the limit must be 1 to 10,000, not 0",
        ),
        (
            {"env": {"TRUNKLINE_JOBS_QUEUES": "mail"}},
            "invalid setting jobs.queues = 'mail' (from environment variable "
            "TRUNKLINE_JOBS_QUEUES): expected name=limit pairs separated by commas, such as "
            "default=10,mail=5",
        ),
    ],
)
def test_invalid_values_name_the_setting_and_the_source(
    kwargs: dict[str, object], expected: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(**kwargs)  # type: ignore[arg-type]
    assert str(raised.value) == expected


def test_invalid_database_url() -> None:
    with pytest.raises(
        SettingsError,
        match=r"^invalid setting database = 'mysql://x' \(from "
        r"option --database\): invalid database URL",
    ):
        load_settings(cli={"database": "mysql://x"})


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    typo = write(tmp_path, "prot = 4000\n")
    with pytest.raises(SettingsError) as raised:
        load_settings(config_path=typo)
    assert str(raised.value) == f"unknown setting prot (from config file {typo})"

    bad_type = write(tmp_path, 'port = "many"\n')
    with pytest.raises(SettingsError, match=r"invalid setting port = 'many' \(from config file"):
        load_settings(config_path=bad_type)

    broken = write(tmp_path, "port = \n")
    with pytest.raises(SettingsError, match="is not valid TOML"):
        load_settings(config_path=broken)

    with pytest.raises(SettingsError, match=r"cannot read config file .*missing\.toml"):
        load_settings(config_path=tmp_path / "missing.toml")


def test_an_overridden_invalid_value_does_not_matter(tmp_path: Path) -> None:
    config = write(tmp_path, "port = 70000\n")
    assert load_settings(env={"TRUNKLINE_PORT": "4001"}, config_path=config).port == 4001


def test_chat_limits_come_from_every_source_and_reach_the_node(tmp_path: Path) -> None:
    from trunkline.server import NodeContext
    from trunkline.server.node import TrunklineNode

    config = tmp_path / "trunkline.toml"
    config.write_text("[chat]\nrate_per_s = 5.5\ntoken_ttl_s = 3600\n")
    settings = load_settings(
        cli={}, env={env_var("chat.max_frame_bytes"): "2048"}, config_path=config
    )
    node = TrunklineNode(NodeContext(settings))
    assert (node.chat.limits.max_frame_bytes, node.chat.limits.rate_per_s) == (2048, 5.5)
    assert node.chat.limits.max_replay == 1_000  # the default
    assert node.chat.token_ttl_s == 3600
    with pytest.raises(SettingsError, match=r"chat\.rate_burst = '0' \(from environment"):
        load_settings(cli={}, env={"TRUNKLINE_CHAT_RATE_BURST": "0"})
