"""An alias's stored `routing:` read back, for the exporter, the REST API, the console and the control plane.

It is stored as policy_to_dict wrote it, but PostgreSQL's jsonb keeps a mapping's keys in an order of its own;
read here, weights and experiment arms come in the alias's deployment order, whatever the database."""

from dataclasses import replace

from core.values import RoutingPolicy
from routing.engine.policy import parse_policy, policy_to_dict


def stored_policy(stored: dict, *, deployments: tuple[str, ...]) -> tuple[RoutingPolicy, list[str]]:
    """The policy, and the problems parse_policy finds in it. There are none unless a write went past the
    importer: a deployment removed from the alias in the admin leaves its weight behind, which is dropped."""
    policy, problems = parse_policy(stored or None, path="routing", deployments=deployments)
    position = {name: index for index, name in enumerate(deployments)}

    def in_deployment_order(pairs: tuple) -> tuple:
        return tuple(sorted(pairs, key=lambda pair: position.get(pair[0], len(position))))

    policy = replace(policy, weights=in_deployment_order(policy.weights))
    if policy.experiment is not None:
        policy = replace(
            policy, experiment=replace(policy.experiment, arms=in_deployment_order(policy.experiment.arms))
        )
    return policy, problems


def routing_mapping(stored: dict, *, deployments: tuple[str, ...]) -> dict:
    """The `routing:` mapping as export writes it: policy_to_dict's key order; {} for the default."""
    return policy_to_dict(stored_policy(stored, deployments=deployments)[0]) or {}
