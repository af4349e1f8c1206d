import pytest

from ferry.config import ConfigError, apply_env_overrides, load_config, parse_config
from ferry.demo import demo_config


def test_demo_config_is_valid_and_defaults_are_safe(tmp_path):
    cfg = parse_config(demo_config(), base=tmp_path)
    assert cfg.server.host == "127.0.0.1"
    assert cfg.endpoints[0].variants[0].max_ongoing_requests >= 32  # Ray's default 5 collapses under load
    assert cfg.models[0].path == str(tmp_path / "model.onnx")


@pytest.mark.parametrize("mutate, where", [
    (lambda d: d["server"].update(http_port=70000), "server.http_port"),
    (lambda d: d["server"].update(colour="blue"), "server.colour"),
    (lambda d: d.update(surprise=1), "surprise"),
    (lambda d: d["endpoints"][0]["variants"][0].update(model="nope"), "endpoints.0.variants.0.model"),
    (lambda d: d["endpoints"][0].update(name="bad name!"), "endpoints.0.name"),
    (lambda d: d["endpoints"][0]["variants"][0].update(autoscaling={"min_replicas": 3, "max_replicas": 1}),
     "endpoints.0.variants.0.autoscaling"),
    (lambda d: d["endpoints"][0].update(variants=[]), "endpoints.0.variants"),
    (lambda d: d["endpoints"][0].update({"async": {"output_path": "o", "notification": {"success_topic": "t"}}}),
     "endpoints.0.async.notification: success_topic and error_topic are Kafka topics"),
    (lambda d: d["endpoints"][0].update({"async": {"output_path": "o", "notification": {"webhook_url": "ftp://x"}}}),
     "endpoints.0.async.notification.webhook_url"),
    (lambda d: d["endpoints"][0].update({"async": {"output_path": "o", "queue": "kafka"}}),
     "endpoints.0.async.queue: kafka needs the deploy file's kafka section"),
    (lambda d: d["endpoints"][0].update({"async": {"output_path": "o", "scaling": {"min_instances": 3}}}),
     "min_instances (3) is above max_instances (1)"),
    (lambda d: d["endpoints"][0]["data_capture"].update(destination="s3://bucket/capture"),
     "endpoints.0.data_capture.destination"),
    (lambda d: d["endpoints"][0]["data_capture"].update(destination="kafka://"), "names no topic"),
    (lambda d: d.update(kafka={"bootstrap_servers": "b:9092", "security_protocol": "SSL"}),
     "kafka.security_protocol"),  # no Kafka client of Ferry's would use it: an error, not a silent PLAINTEXT
])
def test_invalid_files_name_the_field(mutate, where, tmp_path):
    doc = demo_config()
    mutate(doc)
    with pytest.raises(ConfigError) as err:
        parse_config(doc, base=tmp_path, environ={})
    assert where in str(err.value)


def test_env_overrides_win_over_the_file_and_keep_types(tmp_path):
    env = {"FERRY_SERVER__HTTP_PORT": "9001", "FERRY_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:19092",
           "FERRY_ENDPOINTS__0__VARIANTS__0__REPLICAS": "3", "UNRELATED": "x", "FERRY_NOT_A_SECTION": "1"}
    cfg = parse_config(demo_config(), base=tmp_path, environ=env)
    assert cfg.server.http_port == 9001
    assert cfg.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert cfg.endpoints[0].variants[0].replicas == 3


def test_env_override_of_a_missing_list_index_is_an_error():
    with pytest.raises(ConfigError, match="index"):
        apply_env_overrides(demo_config(), {"FERRY_ENDPOINTS__5__NAME": "x"})


def test_load_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(lst)


def test_duplicate_names_are_rejected(tmp_path):
    doc = demo_config()
    doc["models"].append(dict(doc["models"][0]))
    with pytest.raises(ConfigError, match="duplicate"):
        parse_config(doc, base=tmp_path, environ={})


@pytest.mark.parametrize("value", ["s3cr3t #prod", "null", "~", "123", "true", "[a, b]", "{a: 1}", "'quoted'"])
def test_secrets_from_the_environment_are_taken_literally(tmp_path, value):
    env = {"FERRY_SERVER__AUTH_TOKEN": value, "FERRY_SERVER__CONTROL_TOKEN": value}
    cfg = parse_config(demo_config(), base=tmp_path, environ=env)
    assert cfg.server.auth_token == value and cfg.server.control_secret == value


def test_an_empty_token_is_an_error_not_auth_off(tmp_path):
    with pytest.raises(ConfigError, match="server.auth_token"):
        parse_config(demo_config(), base=tmp_path, environ={"FERRY_SERVER__AUTH_TOKEN": ""})


def test_token_files(tmp_path):
    (tmp_path / "token").write_text("  from-a-secret\n")
    (tmp_path / "control").write_text("ctl #1\n")
    doc = demo_config()
    doc["server"].update(auth_token_file="token", control_token_file=str(tmp_path / "control"))
    cfg = parse_config(doc, base=tmp_path, environ={})
    assert cfg.server.auth_token == "from-a-secret" and cfg.server.control_secret == "ctl #1"
    cfg = parse_config(demo_config(), base=tmp_path, environ={"FERRY_SERVER__AUTH_TOKEN_FILE": "token"})
    assert cfg.server.auth_token == "from-a-secret"
    (tmp_path / "empty").write_text("\n")
    for server, said in [({"auth_token_file": "missing"}, "cannot read"), ({"auth_token_file": "empty"}, "is empty"),
                         ({"auth_token_file": "token", "auth_token": "x"}, "not both")]:
        doc = demo_config()
        doc["server"].update(server)
        with pytest.raises(ConfigError, match=said):
            parse_config(doc, base=tmp_path, environ={})


@pytest.mark.parametrize("env", [{"FERRY_SERVER__HTTP_PORT": "%x"}, {"FERRY_SERVER__HTTP_PORT": "*a"},
                                 {"FERRY_SERVER__HTTP_PORT": "{a: ["}, {"FERRY_SERVER__HOST__X": "1"}])
def test_a_bad_environment_override_is_a_config_error(tmp_path, env):  # fuzz findings: tracebacks before
    with pytest.raises(ConfigError, match="FERRY_SERVER__|server.host"):
        parse_config(demo_config(), base=tmp_path, environ=env)
