"""Authentication settings: where passwords come from, and everywhere they must not show up."""

from __future__ import annotations

import argparse

import pytest

from stream import config
from stream.config import ConfigError, Secret

PASSWORD = "s3cr3t-pa55w0rd"
SASL = {"EDDY_KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "EDDY_KAFKA_USERNAME": "eddy"}


def _parser(only=None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eddy worker")
    config.add_arguments(p, only=only)
    return p


def test_the_default_stays_plaintext_and_unauthenticated():
    s = config.from_env({})
    assert s.kafka_config() == {"bootstrap.servers": "127.0.0.1:9092", "reconnect.backoff.ms": 20}
    assert s.redis_options() == {}


def test_sasl_ssl_reaches_every_kafka_client_config(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("pem")
    s = config.from_env({**SASL, "EDDY_KAFKA_PASSWORD": PASSWORD, "EDDY_KAFKA_CA_FILE": str(ca)})
    want = {"security.protocol": "sasl_ssl", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "eddy",
            "sasl.password": PASSWORD, "ssl.ca.location": str(ca)}
    for cfg in (s.consumer_config(), s.producer_config(transactional=True), s.admin_config()):
        assert want.items() <= cfg.items()


def test_redis_acl_user_and_ca(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("pem")
    s = config.from_env({"EDDY_REDIS_URL": "rediss://h:6380/0", "EDDY_REDIS_USERNAME": "eddy",
                         "EDDY_REDIS_PASSWORD": PASSWORD, "EDDY_REDIS_CA_FILE": str(ca)})
    assert s.redis_options() == {"username": "eddy", "password": PASSWORD, "ssl_ca_certs": str(ca)}
    assert config.from_env({"EDDY_REDIS_PASSWORD": PASSWORD}).redis_options()["username"] == "default"


def test_password_from_a_file_drops_one_trailing_newline(tmp_path):
    f = tmp_path / "pw"
    f.write_text(PASSWORD + "\n")
    s = config.from_env({**SASL, "EDDY_KAFKA_PASSWORD_FILE": str(f)})
    assert s.kafka_password.reveal() == PASSWORD
    args = _parser().parse_args([*"--kafka-security-protocol sasl_ssl --kafka-username eddy".split(),
                                 "--kafka-password-file", str(f)])
    assert config.from_args(args).kafka_password.reveal() == PASSWORD


@pytest.mark.parametrize("env,message", [
    ({**SASL}, "kafka_password must be set (EDDY_KAFKA_PASSWORD or EDDY_KAFKA_PASSWORD_FILE)"),
    ({"EDDY_KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "EDDY_KAFKA_PASSWORD": PASSWORD},
     "kafka_username must be set with kafka_security_protocol=sasl_ssl"),
    ({"EDDY_KAFKA_USERNAME": "eddy", "EDDY_KAFKA_PASSWORD": PASSWORD}, "kafka_security_protocol must be sasl_ssl"),
    ({"EDDY_KAFKA_SECURITY_PROTOCOL": "tls"}, "EDDY_KAFKA_SECURITY_PROTOCOL must be plaintext or ssl"),
    ({**SASL, "EDDY_KAFKA_PASSWORD": PASSWORD, "EDDY_KAFKA_SASL_MECHANISM": "GSSAPI"},
     "EDDY_KAFKA_SASL_MECHANISM must be SCRAM-SHA-512"),
    ({"EDDY_KAFKA_CA_FILE": "/nonexistent/ca.crt", "EDDY_KAFKA_SECURITY_PROTOCOL": "ssl"},
     "EDDY_KAFKA_CA_FILE must be an existing PEM file"),
    ({"EDDY_REDIS_URL": f"redis://eddy:{PASSWORD}@h:6379/0"}, "EDDY_REDIS_URL must not hold a password"),
    ({"EDDY_REDIS_USERNAME": "eddy"}, "redis_password must be set (EDDY_REDIS_PASSWORD or EDDY_REDIS_PASSWORD_FILE)"),
    ({**SASL, "EDDY_KAFKA_PASSWORD": PASSWORD, "EDDY_KAFKA_PASSWORD_FILE": "/x"},
     "set EDDY_KAFKA_PASSWORD or EDDY_KAFKA_PASSWORD_FILE, not both"),
    ({**SASL, "EDDY_KAFKA_PASSWORD_FILE": "/nonexistent/pw"},
     "EDDY_KAFKA_PASSWORD_FILE: cannot read '/nonexistent/pw': No such file or directory"),
])
def test_bad_security_settings_are_one_line_naming_the_variable_never_the_password(env, message):
    with pytest.raises(ConfigError) as err:
        config.from_env(env)
    text = str(err.value)
    assert text.startswith(message) and "\n" not in text
    assert PASSWORD not in text


def test_a_password_shows_nowhere_but_reveal():
    s = config.from_env({**SASL, "EDDY_KAFKA_PASSWORD": PASSWORD, "EDDY_REDIS_PASSWORD": PASSWORD})
    assert PASSWORD not in repr(s) + str(s) + f"{s.kafka_password}" + repr(s.redis_password)
    assert PASSWORD not in str(config.redacted(s.producer_config(transactional=True)))
    assert config.redacted(s.consumer_config())["sasl.password"] == "***"
    assert Secret(PASSWORD) == Secret(PASSWORD) and Secret(PASSWORD) != Secret("other") and not Secret()


def test_help_has_password_files_never_password_flags(monkeypatch):
    monkeypatch.setenv("EDDY_KAFKA_PASSWORD", PASSWORD)
    text = _parser().format_help() + _parser(only=("bootstrap", "redis_url")).format_help()
    assert "--kafka-password-file" in text and "--redis-password-file" in text
    assert "--kafka-password " not in text and "--redis-password " not in text
    assert PASSWORD not in text



def test_a_password_flag_is_refused_without_echoing_it(capsys):
    for argv in (["--kafka-password", PASSWORD], ["--redis-password", PASSWORD], [f"--kafka-password={PASSWORD}"]):
        with pytest.raises(SystemExit):
            _parser().parse_args(argv)
        err = capsys.readouterr().err
        assert "is not accepted" in err and PASSWORD not in err


def test_child_processes_get_the_password_itself_not_both_variables(tmp_path):
    f = tmp_path / "pw"
    f.write_text(PASSWORD)
    s = config.from_env({**SASL, "EDDY_KAFKA_PASSWORD_FILE": str(f)})
    env = config.child_environment(s, base={"EDDY_KAFKA_PASSWORD_FILE": str(f), "PATH": "/bin"})
    assert env["EDDY_KAFKA_PASSWORD"] == PASSWORD and "EDDY_KAFKA_PASSWORD_FILE" not in env
    assert config.from_env(env) == s


def test_every_client_is_configured_from_settings():
    """A client built from a bare address would connect without the credentials: the product's
    Kafka clients take ``Settings.*_config()``, and only stream/store.py opens Redis clients."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    bare = []
    for path in sorted([*root.glob("stream/**/*.py"), *root.glob("benchmarks/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            where = f"{path.relative_to(root)}:{node.lineno}"
            if name in ("Producer", "Consumer", "AdminClient"):
                arg = node.args[0] if node.args else None
                if not (isinstance(arg, ast.Call) and getattr(arg.func, "attr", "").endswith("_config")):
                    bare.append(where)
            elif name == "from_url" and path.name != "store.py":
                bare.append(where)
    assert not bare, bare


def test_failures_no_retry_fixes_are_not_outages():
    """A refused password or an unverifiable certificate ends the process in one line; an
    unreachable service is waited out (the worker's outage path)."""
    import ssl

    import redis
    from confluent_kafka import KafkaError

    from stream.errors import StoreAuthFailed, StoreUnavailable, redis_failure
    from stream.kafka_io import KafkaAuthFailed, quiet_logging

    assert isinstance(redis_failure(redis.AuthenticationError("WRONGPASS")), StoreAuthFailed)
    try:
        try:
            raise ssl.SSLCertVerificationError("certificate verify failed")
        except ssl.SSLError:
            raise redis.ConnectionError("Error 1 connecting to 127.0.0.1:6390")  # as redis-py does
    except redis.ConnectionError as exc:
        assert isinstance(redis_failure(exc), StoreAuthFailed)
    assert isinstance(redis_failure(redis.ConnectionError("Connection refused")), StoreUnavailable)

    on_error = quiet_logging()["error_cb"]
    for code in (KafkaError._AUTHENTICATION, KafkaError._SSL):
        with pytest.raises(KafkaAuthFailed):
            on_error(KafkaError(code, "broker: SASL authentication error (after 334ms in state AUTH_REQ)"))
    on_error(KafkaError(KafkaError._TRANSPORT, "Connection refused"))  # logged, retried by librdkafka


def test_the_faust_monitor_takes_the_same_kafka_credentials():
    from stream.monitor.app import broker_credentials

    assert broker_credentials(config.from_env({})) is None
    creds = broker_credentials(config.from_env({**SASL, "EDDY_KAFKA_PASSWORD": PASSWORD}))
    assert (creds.username, creds.password, creds.mechanism.value) == ("eddy", PASSWORD, "SCRAM-SHA-512")
    assert creds.ssl_context is not None  # sasl_ssl: TLS under SASL
    assert PASSWORD not in repr(creds)
