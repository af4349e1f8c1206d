"""The replica gauges read from Ray Serve's status: every state and status of each deployment, 0 where none."""

from prometheus_client import generate_latest

from serving.replica_metrics import families


def test_every_state_and_status_is_a_series():
    fams = families({"Gateway": {"status": "UNHEALTHY", "replicas": {"STARTING": 1}},
                     "credit.v1": {"status": "HEALTHY", "replicas": {"RUNNING": 2}}})

    class C:
        def collect(self):
            return fams

    text = generate_latest(C()).decode()
    assert 'ferry_serve_replicas{deployment="Gateway",state="RUNNING"} 0.0' in text
    assert 'ferry_serve_replicas{deployment="Gateway",state="STARTING"} 1.0' in text
    assert 'ferry_serve_replicas{deployment="credit.v1",state="RUNNING"} 2.0' in text
    assert 'ferry_serve_deployment_status{deployment="Gateway",status="UNHEALTHY"} 1.0' in text
    assert 'ferry_serve_deployment_status{deployment="Gateway",status="HEALTHY"} 0.0' in text
    assert 'ferry_serve_deployment_status{deployment="credit.v1",status="HEALTHY"} 1.0' in text
