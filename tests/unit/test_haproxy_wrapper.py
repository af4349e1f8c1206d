"""ferry-haproxy confines the listeners Ray Serve's HAProxy template binds to every interface."""

from ray.serve._private import haproxy_templates

from serving.haproxy import confine


def test_wildcard_binds_and_admin_socket_are_confined():
    config = ("global\n    stats socket /tmp/x/admin.sock mode 666 level admin expose-fd listeners\n"
              "frontend prometheus\n    bind :9101\n    mode http\n"
              "frontend http_frontend\n    bind 127.0.0.1:8080\n"
              "listen stats\n  bind *:8404\n  stats enable\n")
    out = confine(config, "127.0.0.1")
    assert "    bind 127.0.0.1:9101\n" in out and "  bind 127.0.0.1:8404\n" in out
    assert "bind 127.0.0.1:8080" in out  # request listeners untouched
    assert "mode 600 level admin" in out and "666" not in out
    assert "bind [::1]:9101" in confine(config, "::1")


def test_rays_template_still_has_the_lines_the_wrapper_rewrites():
    """If Ray changes its template, this fails rather than leaving a port open on every interface."""
    text = haproxy_templates.HAPROXY_CONFIG_TEMPLATE
    assert "bind :{{ config.metrics_port }}" in text
    assert "bind *:{{ config.stats_port }}" in text
    assert "mode 666" in text
