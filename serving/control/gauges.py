"""The control plane's Prometheus clients (a module of their own: Ray pickles the Control class, and a
client referenced as a global of its module would travel with it)."""

from serving.metrics import ROLLOUTS, VARIANT_WEIGHT

WEIGHTS = VARIANT_WEIGHT.client()
ROLLOUT_COUNT = ROLLOUTS.client()
