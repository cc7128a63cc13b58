"""Typed connection parameters of Kafka, Redis, MongoDB, Elasticsearch/OpenSearch and REST APIs:
no server needed (connectors are built, never connected)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr

from nexus_dagster.connectors.base import Connector
from nexus_dagster.connectors.kafka import KafkaConnector
from nexus_dagster.connectors.mongodb import MongoDBConnector
from nexus_dagster.connectors.redis import RedisConnector
from nexus_dagster.connectors.rest_api import ApiConnector
from nexus_dagster.connectors.search import OpenSearchConnector, SearchConnector
from nexus_dagster.errors import SpecError
from nexus_dagster.secrets import mask


@dataclass
class Case:
    """A connector with valid params, where its secret goes, a wrong type and a typo."""

    cls: type[Connector]
    params: dict[str, Any]
    secret: str  # a params key holding a secret (dotted: inside a mapping)
    wrong: tuple[str, Any]  # a key and a value of the wrong type
    typo: str  # a key the connector does not know


CASES = {
    "kafka": Case(KafkaConnector, {"bootstrap_servers": "k1:9092", "consumer_group": "g"},
                  "sasl_password", ("timeout", "soon"), "sasl_pasword"),
    "redis": Case(RedisConnector, {"host": "cache", "port": 6380}, "password",
                  ("port", "abc"), "pasword"),
    "mongodb": Case(MongoDBConnector, {"host": "mongo", "database": "app", "username": "etl"},
                    "password", ("port", "abc"), "colection"),
    "search": Case(OpenSearchConnector, {"host": "search", "username": "etl"}, "password",
                   ("verify_certs", "perhaps"), "hots"),
    "api": Case(ApiConnector, {"api_endpoint": "https://api.example.com/v1/users"},
                "api_auth.token", ("max_retries", "many"), "base_ulr"),
}


def with_value(params: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """``params`` with ``key`` set; a dotted key puts a bearer auth block holding it."""
    if "." in key:
        block, field = key.split(".")
        return {**params, block: {"type": "bearer", field: value}}
    return {**params, key: value}


@pytest.mark.parametrize("name", list(CASES))
def test_a_wrong_type_names_the_field_without_the_value(name: str):
    case = CASES[name]
    key, value = case.wrong
    with pytest.raises(SpecError) as caught:
        case.cls({**case.params, key: value})
    text = str(caught.value)
    assert f"connection_params.{key}:" in text and case.cls.__name__ in text
    assert repr(value) not in text and f" {value}" not in text


@pytest.mark.parametrize("name", list(CASES))
def test_an_unknown_key_is_named_without_its_value(name: str):
    case = CASES[name]
    with pytest.raises(SpecError, match=rf"connection_params\.{case.typo}: .*Extra inputs") \
            as caught:
        case.cls({**case.params, case.typo: "typo-value-0193"})
    assert "typo-value-0193" not in str(caught.value)
    fields, _, fix = case.cls.params_problems({**case.params, case.typo: "x"})[0]
    assert fields == f"connection_params.{case.typo}" and "parameters:" in fix


@pytest.mark.parametrize("name", list(CASES))
def test_secrets_are_secret_str_masked_and_never_shown(name: str):
    case = CASES[name]
    secret = f"Sup3r-Secret-{name}-4711"
    connector = case.cls(with_value(case.params, case.secret, secret))
    holder: Any = connector.config
    for part in case.secret.split("."):
        holder = getattr(holder, part)
    assert isinstance(holder, SecretStr) and holder.get_secret_value() == secret
    for shown in (repr(connector.config), str(connector.config), repr(connector),
                  connector.describe()):
        assert secret not in shown
    assert mask(f"failed with {secret}") == "failed with ***"


@pytest.mark.parametrize("name", list(CASES))
def test_env_and_enc_references_pass_the_load_time_check(name: str):
    case = CASES[name]
    key, value = case.wrong
    unresolved = with_value({**case.params, key: "${SOME_SETTING}"}, case.secret,
                            "enc:gAAAAABtoken")
    assert case.cls.params_problems(unresolved) == []
    problems = case.cls.params_problems({**case.params, key: value})
    assert [p[0] for p in problems] == [f"connection_params.{key}"]


def test_kafka_aliases_lists_and_librdkafka_settings():
    kafka = KafkaConnector({
        "brokers": ["k1:9092", "k2:9092"], "group_id": "orders", "sasl_mechanisms": "PLAIN",
        "ssl_check_hostname": False, "ssl.key.password": "key-pass-5521",
        "config": {"linger.ms": 50, "sasl_password": "cfg-pass-7781"},
    })
    assert kafka.config.bootstrap_servers == "k1:9092,k2:9092"
    assert kafka.config.consumer_group == "orders"
    settings = kafka.client_config
    assert settings["bootstrap.servers"] == "k1:9092,k2:9092"
    assert settings["sasl.mechanism"] == "PLAIN" and settings["linger.ms"] == 50
    assert settings["ssl.endpoint.identification.algorithm"] == "none"
    assert isinstance(settings["ssl.key.password"], SecretStr)
    assert settings["sasl.password"].get_secret_value() == "cfg-pass-7781"
    assert "key-pass-5521" not in repr(kafka.config) and mask("key-pass-5521") == "***"
    with pytest.raises(SpecError, match=r"connection_params\.config: .*lingerms is not a "):
        KafkaConnector({"brokers": "k:1", "config": {"lingerms": 5}})
    with pytest.raises(SpecError, match="bootstrap_servers"):
        KafkaConnector({"consumer_group": "g"})


def test_redis_url_password_is_masked_and_describe_shows_the_server():
    redis = RedisConnector({"url": "rediss://etl:url-pass-3318@cache.example.com:6390/2"})
    assert redis.describe() == "rediss://cache.example.com:6390/2"
    assert mask("auth url-pass-3318") == "auth ***"
    assert RedisConnector({"host": "h", "ssl": "true", "db": "3"}).describe() == "rediss://h:6379/3"


def test_mongodb_accepts_pymongo_names_and_needs_a_database():
    mongo = MongoDBConnector({"uri": "mongodb://etl:uri-pass-6610@db1:27017,db2:27017/",
                              "database": "app", "authSource": "admin", "ca_certs": "/ca.pem",
                              "directConnection": True})
    assert (mongo.config.auth_source, mongo.config.tls_ca_file) == ("admin", "/ca.pem")
    assert mongo.config.direct_connection is True
    assert mongo.describe() == "mongodb://db1:27017,db2:27017/app"
    assert mask("uri-pass-6610") == "***"
    with pytest.raises(SpecError, match=r"connection_params\.database: .*Field required"):
        MongoDBConnector({"host": "db"})


def test_search_hosts_engine_and_kinds():
    search = SearchConnector({"type": "opensearch", "hosts": "es1,https://es2:9201",
                              "api_key": "api-key-9012"})
    assert search.engine_name == "opensearch"
    assert search.describe() == "opensearch http://es1:9200,https://es2:9201"
    with_url = SearchConnector({"url": "https://etl:url-pass-2207@es.example.com:9243"})
    assert with_url.describe() == "elasticsearch https://es.example.com:9243"
    assert mask("url-pass-2207") == "***"
    assert SearchConnector.asset_kinds("elasticsearch", {"type": "opensearch"}) == {"opensearch"}
    assert OpenSearchConnector.asset_kinds("opensearch", {}) == {"opensearch"}
    assert SearchConnector.asset_kinds("elasticsearch", {"engine": "${ENGINE}"}) == {
        "elasticsearch"
    }
    with pytest.raises(SpecError, match=r"connection_params\.engine: "):
        SearchConnector({"engine": "solr"})


def test_api_params_settings_styles_and_defaults():
    api = ApiConnector({
        "base_url": "https://crm.example.com/v2", "api_endpoint": "/contacts",
        "headers": {"X-Tenant": 42, "Authorization": "Token hdr-secret-8841"},
        "auth": {"type": "basic", "username": "etl", "password": "basic-pass-1150"},
        "api_pagination": {"type": "offset", "limit": "25"},
        "verify": "false", "timeout_seconds": None, "idempotency_header": None,
    })
    config = api.config
    assert api.url() == "https://crm.example.com/v2/contacts"
    assert config.headers["X-Tenant"].get_secret_value() == "42"
    assert config.verify is False and config.timeout_seconds == 30.0  # null: the default
    assert config.idempotency_header is None  # null: no idempotency header
    assert type(config.api_pagination).__name__ == "OffsetPaginationConfig"
    assert config.api_pagination.limit == 25
    assert isinstance(config.auth.password, SecretStr)
    assert "hdr-secret-8841" not in repr(config) and "basic-pass-1150" not in repr(config)
    with pytest.raises(SpecError, match=r"connection_params\.api_auth: .*api_auth\.token: "
                                        r"Field required") as caught:
        ApiConnector({"api_auth": {"type": "bearer", "tokn": "tok-value-3391"}})
    assert "tok-value-3391" not in str(caught.value) and "did you mean 'token'" in str(
        caught.value)
    with pytest.raises(SpecError, match=r"api_pagination\.type: 'graphql' is not a registered"):
        ApiConnector({"api_pagination": {"type": "graphql"}})
