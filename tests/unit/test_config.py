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
