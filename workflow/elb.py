"""Where Airflow's api-server (or webserver) answers: its URL behind the load balancer its ECS service registers in.

An ECS service lists target groups under `loadBalancers`; ELBv2 knows which load balancers use a target group
(DescribeTargetGroups), their DNS names and schemes (DescribeLoadBalancers), and which listener forwards to it,
by its default action or by a rule (DescribeListeners, DescribeRules). The only code calling the ELBv2 client.
"""

from dataclasses import dataclass
from typing import Any

from .errors import NotFound, translated

DEFAULT_PORTS = {"http": 80, "https": 443}
# Listener protocols and the scheme a client speaks through them; UDP and the like carry no HTTP.
SCHEMES = {"HTTPS": "https", "TLS": "https", "HTTP": "http", "TCP": "http", "TCP_UDP": "http"}
DESCRIBE_TARGET_GROUPS_MAX = 20  # target group ARNs one DescribeTargetGroups call takes
DESCRIBE_LOAD_BALANCERS_MAX = 20
# Rule conditions a plain HTTP client satisfies when it uses the host and path the rule names; a rule with
# any other condition (HTTP header, query string, source IP, method) is not one to reach Airflow through.
_REACHABLE_CONDITIONS = {"host-header", "path-pattern"}
_AIRFLOW_PATHS = {"api", "auth", "health", "execution", "ui", "static", "pluginsv2", "home", "login"}


class TargetGroupNotFound(NotFound):
    def __init__(self, detail: str = ""):
        super().__init__("the service's target group was not found" + (f": {detail}" if detail else ""))


@dataclass(frozen=True)
class Endpoint:
    """A listener that forwards to the target group, and how to address it."""

    load_balancer_arn: str
    dns_name: str
    internal: bool  # Scheme "internal": reachable from inside the VPC only
    protocol: str  # the listener's: HTTPS, HTTP, TLS, TCP
    port: int
    host: str  # the DNS name, or the one host a host-header rule names
    path: str  # "" or the prefix a path-pattern rule names, such as "/airflow"
    by_rule: bool  # reached through a listener rule, not the listener's default action

    @property
    def scheme(self) -> str:
        return SCHEMES[self.protocol]

    @property
    def url(self) -> str:
        port = "" if DEFAULT_PORTS[self.scheme] == self.port else f":{self.port}"
        return f"{self.scheme}://{self.host}{port}{self.path}"


def discover_airflow_url(elbv2: Any, target_group_arns: list[str]) -> str | None:
    """The URL of the listener that forwards to one of these target groups, or None when none does.

    `target_group_arns` are the `targetGroupArn`s of the api-server's (webserver's) ECS service. With an
    HTTPS listener, the load balancer's own DNS name does not match its certificate: unless a host-header
    rule names the host, the operator may have to give the name the certificate is for.
    """
    endpoint = discover_endpoint(elbv2, target_group_arns)
    return endpoint.url if endpoint else None


def discover_endpoint(elbv2: Any, target_group_arns: list[str]) -> Endpoint | None:
    """The best listener forwarding to the target groups: HTTPS before HTTP, a default action before a rule,
    then the lowest port; None when no listener forwards to any of them."""
    wanted = set(target_group_arns)
    if not wanted:
        return None
    balancer_arns: list[str] = []
    for chunk in _chunks(sorted(wanted), DESCRIBE_TARGET_GROUPS_MAX):
        with translated(not_found={"TargetGroupNotFound": TargetGroupNotFound(", ".join(chunk))}):
            groups = elbv2.describe_target_groups(TargetGroupArns=chunk)["TargetGroups"]
        for group in groups:
            balancer_arns += [arn for arn in group.get("LoadBalancerArns", []) if arn not in balancer_arns]
    if not balancer_arns:
        return None
    candidates: list[Endpoint] = []
    for chunk in _chunks(balancer_arns, DESCRIBE_LOAD_BALANCERS_MAX):
        with translated(not_found={"LoadBalancerNotFound": NotFound(f"load balancer not found: {', '.join(chunk)}")}):
            balancers = elbv2.describe_load_balancers(LoadBalancerArns=chunk)["LoadBalancers"]
        for balancer in balancers:
            candidates += _endpoints(elbv2, balancer, wanted)
    if not candidates:
        return None
    return min(candidates, key=lambda e: (e.scheme != "https", e.by_rule, e.port, e.dns_name))


def _endpoints(elbv2: Any, balancer: dict, wanted: set[str]) -> list[Endpoint]:
    found = []
    for listener in _listeners(elbv2, balancer["LoadBalancerArn"]):
        protocol = listener.get("Protocol", "")
        if protocol not in SCHEMES:
            continue

        def endpoint(host: str = "", path: str = "", by_rule: bool = False, listener: dict = listener) -> Endpoint:
            return Endpoint(balancer["LoadBalancerArn"], balancer["DNSName"], balancer.get("Scheme") == "internal",
                            listener["Protocol"], listener["Port"], host or balancer["DNSName"], path, by_rule)

        if _forwards(listener.get("DefaultActions", []), wanted):
            found.append(endpoint())
            continue
        if protocol not in ("HTTP", "HTTPS"):  # only an Application Load Balancer's listeners have rules
            continue
        for rule in _rules(elbv2, listener["ListenerArn"]):
            if rule.get("IsDefault") or not _forwards(rule.get("Actions", []), wanted):
                continue
            reached = _reached_by(rule.get("Conditions", []))
            if reached is not None:
                found.append(endpoint(*reached, by_rule=True))
    return found


def _listeners(elbv2: Any, balancer_arn: str) -> list[dict]:
    with translated():
        pages = elbv2.get_paginator("describe_listeners").paginate(LoadBalancerArn=balancer_arn)
        return [listener for page in pages for listener in page.get("Listeners", [])]


def _rules(elbv2: Any, listener_arn: str) -> list[dict]:
    rules: list[dict] = []
    marker: str | None = None
    while True:
        with translated():
            page = elbv2.describe_rules(ListenerArn=listener_arn, **({"Marker": marker} if marker else {}))
        rules += page.get("Rules", [])
        marker = page.get("NextMarker")
        if not marker:
            return rules


def _forwards(actions: list[dict], wanted: set[str]) -> bool:
    """A forward action (plain, or weighted with a weight above zero) that sends to one of the target groups."""
    for action in actions:
        if action.get("Type") != "forward":
            continue
        if action.get("TargetGroupArn") in wanted:
            return True
        for group in (action.get("ForwardConfig") or {}).get("TargetGroups", []):
            if group.get("TargetGroupArn") in wanted and group.get("Weight", 1) > 0:
                return True
    return False


def _reached_by(conditions: list[dict]) -> tuple[str, str] | None:
    """(host, path prefix) a request needs to match these conditions, or None when a client cannot tell."""
    host = path = ""
    for condition in conditions:
        kind = condition.get("Field")
        if kind not in _REACHABLE_CONDITIONS:
            return None
        key = "HostHeaderConfig" if kind == "host-header" else "PathPatternConfig"
        values = (condition.get(key) or {}).get("Values") or condition.get("Values") or []
        if kind == "host-header":
            literal = [v for v in values if not any(c in v for c in "*?")]
            if not literal:
                return None  # only wildcards: no host to name
            host = literal[0]
        else:
            prefix = _path_prefix(values)
            if prefix is None:
                return None
            path = prefix
    return host, path


def _path_prefix(patterns: list[str]) -> str | None:
    """"/airflow/*" -> "/airflow"; "/*" -> ""; None for a pattern that is no prefix, or a prefix of Airflow's own
    paths ("/api/*" routes a part of Airflow, it does not move Airflow under a prefix)."""
    for pattern in patterns:
        if pattern in ("*", "/*"):
            return ""
        if pattern.endswith("/*") and not any(c in pattern[:-2] for c in "*?"):
            prefix = pattern[:-2]
            if prefix.split("/")[1] not in _AIRFLOW_PATHS:
                return prefix
    return None


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
