"""The backlog autoscaling policy of async workers, without Ray: replicas = ceil(backlog / target) within the
bounds, read from the real SQLite queue (queued and running requests count; finished ones do not), zero only
when the queue is empty; and the Ray Serve autoscaling_config that carries it."""

from __future__ import annotations

from types import SimpleNamespace

from ray.serve.config import AutoscalingConfig

from serving.asyncq import scaling
from serving.asyncq.sqlite import SqliteQueue
from serving.spec import AsyncSpec


def ctx(current=0, low=0, high=3):
    return SimpleNamespace(current_num_replicas=current, capacity_adjusted_min_replicas=low,
                           capacity_adjusted_max_replicas=high)


def decide(policy, c) -> int:
    policy(c)  # starts a reading in the background
    policy._thread.join(5)
    return policy(c)[0]


def test_replicas_follow_the_backlog_within_bounds(tmp_path):
    path = tmp_path / "q.db"
    queue = SqliteQueue(path)
    policy = scaling.BacklogPolicy("ep", {"kind": "sqlite", "path": str(path)}, target=2, poll_interval_s=0)
    assert decide(policy, ctx()) == 0  # empty queue: zero replicas
    for i in range(5):
        queue.put("ep", f"r{i}", "{}", None)
    queue.put("other", "x", "{}", None)  # another endpoint's request is not this one's backlog
    assert decide(policy, ctx()) == 3  # ceil(5 / 2)
    assert decide(policy, ctx(high=2)) == 2
    claimed = [queue.claim("ep", 60) for _ in range(4)]
    for c in claimed[:3]:
        queue.finish(c, "succeeded")
    assert decide(policy, ctx(current=2)) == 1  # one queued + one running
    queue.finish(claimed[3], "succeeded")
    queue.finish(queue.claim("ep", 60), "failed")
    assert decide(policy, ctx(current=1)) == 0
    assert decide(policy, ctx(current=1, low=1)) == 1


def test_a_missing_queue_file_is_an_empty_backlog(tmp_path):
    assert scaling.sqlite_backlog(str(tmp_path / "none.db"), "ep") == 0
    policy = scaling.BacklogPolicy("ep", {"kind": "sqlite", "path": str(tmp_path / "none.db")}, 1, 0)
    assert decide(policy, ctx()) == 0


def test_the_autoscaling_config_is_rays(tmp_path):
    spec = AsyncSpec(output_path="out", queue_path=str(tmp_path / "q.db"),
                     scaling={"min_instances": 0, "max_instances": 4, "target_backlog_per_instance": 3, "idle_s": 7})
    config = AutoscalingConfig(**scaling.autoscaling_config("ep", spec))
    assert (config.min_replicas, config.max_replicas, config.initial_replicas) == (0, 4, 0)
    assert config.downscale_to_zero_delay_s == 7 and config.upscale_delay_s == 0
    assert config.policy.policy_function == scaling.POLICY
    assert config.policy.policy_kwargs["queue"] == {"kind": "sqlite", "path": str(tmp_path / "q.db")}
    policy = config.policy.get_policy()(**config.policy.policy_kwargs)
    assert decide(policy, ctx()) == 0


def test_the_policy_reads_the_queue_the_spec_names():
    """queue_ref reads the typed AsyncSpec: the Kafka consumer group's lag for queue: kafka, the SQLite file else."""
    kafka = AsyncSpec(output_path="out", queue="kafka", topic="t")
    assert scaling.queue_ref(kafka, "ep", "127.0.0.1:9092") == {
        "kind": "kafka", "bootstrap": "127.0.0.1:9092", "topic": "t", "group": "t.workers"}
    assert scaling.queue_ref(AsyncSpec(output_path="out", queue="kafka"), "ep", "b:1")["topic"] == "ferry.async.ep"
    assert scaling.queue_ref(AsyncSpec(output_path="out", queue_path="q.db"), "ep") == {"kind": "sqlite",
                                                                                      "path": "q.db"}
