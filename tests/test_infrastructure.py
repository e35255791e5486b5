"""The deployable template, read (and translated by the SAM translator) offline: routes, least privilege,
bucket and database hardening, the environment each function needs, the schedule wiring."""

from __future__ import annotations

import copy
import functools
import json
import os
from typing import Any

import pytest
from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform
from test_mcp_sign_in import METADATA_PATHS

from activity_dev import (
    REPO_ROOT,
    lambdas,
)
from glow_activity import API_PREFIX, OPERATIONS


def raw() -> dict[str, Any]:
    return lambdas.load_template()


@functools.cache
def translated() -> dict[str, Any]:
    """CloudFormation as SAM would deploy it (code locations replaced by dummy S3 URIs, as sam validate does)."""
    template = yaml_parse((REPO_ROOT / "template.yaml").read_text())
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if key in props:
                props[key] = "s3://bucket/key"

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return transform(copy.deepcopy(template), {}, NoManagedPolicies())["Resources"]


def resources_of(kind: str) -> dict[str, Any]:
    return {k: v for k, v in translated().items() if v["Type"] == kind}


def test_each_route_is_its_own_function() -> None:
    routes = {spec.path: spec.logical_id for spec in lambdas.functions() if spec.path}
    assert set(routes) == {f"{API_PREFIX}/{op}" for op in (*OPERATIONS, "mcp")}
    assert len(set(routes.values())) == 8
    api_routes = resources_of("AWS::ApiGatewayV2::Route") or {}
    # SAM renders HttpApi routes into the OpenAPI body of the API
    body = next(iter(resources_of("AWS::ApiGatewayV2::Api").values()))["Properties"]["Body"]
    assert {p for p in body["paths"]} == set(routes) | set(METADATA_PATHS)
    for path, item in body["paths"].items():
        if path in METADATA_PATHS:  # the MCP endpoint's protected-resource metadata, on the MCP function
            assert sorted(item) == ["get"], path
            continue
        assert sorted(item) == (["delete", "get", "post"] if path.endswith("/mcp") else ["post"]), path
    assert not api_routes


def _statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement of the role's inline policies (both branches of a conditional policy)."""
    out = []
    for policy in role["Properties"].get("Policies", []):
        branches = policy["Fn::If"][1:] if "Fn::If" in policy else [policy]
        for branch in branches:
            if isinstance(branch, dict) and "PolicyDocument" in branch:
                out.extend(branch["PolicyDocument"].get("Statement", []))
    return out


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_every_function_has_its_own_role_without_wildcards() -> None:
    functions = resources_of("AWS::Lambda::Function")
    roles = resources_of("AWS::IAM::Role")
    role_refs = {fn["Properties"]["Role"]["Fn::GetAtt"][0] for fn in functions.values()}
    assert len(role_refs) == len(functions)
    for name in role_refs:
        for statement in _statements(roles[name]):
            actions = [a for a in _listify(statement.get("Action", [])) if isinstance(a, str)]
            resources = _listify(statement.get("Resource", []))
            assert not ("*" in actions and "*" in resources), (name, statement)
            assert "*" not in actions, (name, statement)


def test_only_the_exporting_functions_touch_s3_and_invoke_lambda() -> None:
    roles = resources_of("AWS::IAM::Role")
    function_roles = {
        fn["Properties"]["Role"]["Fn::GetAtt"][0] for fn in resources_of("AWS::Lambda::Function").values()
    }
    for name in function_roles:
        role = roles[name]
        actions = {a for s in _statements(role) for a in _listify(s.get("Action", [])) if isinstance(a, str)}
        if name in ("ExportFunctionRole", "McpFunctionRole"):  # both run exports (MCP: activity_export)
            assert {"s3:PutObject", "lambda:InvokeFunction"} <= actions
            invoked = [s["Resource"] for s in _statements(role) if s.get("Action") == "lambda:InvokeFunction"]
            own = name.removesuffix("FunctionRole").lower()  # only its own asynchronous half
            assert len(invoked) == 1 and f"${{AWS::StackName}}-{own}" in json.dumps(invoked[0]), (name, invoked)
        else:
            assert not {a for a in actions if a.startswith(("s3:", "lambda:"))}, name


def test_bucket_is_private_encrypted_tls_only_and_expires_exports() -> None:
    bucket = raw()["Resources"]["ExportBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    rule = bucket["LifecycleConfiguration"]["Rules"][0]
    assert rule["ExpirationInDays"] == 7 and rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1
    policy = raw()["Resources"]["ExportBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert policy["Effect"] == "Deny" and policy["Condition"]["Bool"]["aws:SecureTransport"] == "false"


def test_database_is_private_encrypted_with_a_managed_secret() -> None:
    resources = raw()["Resources"]
    cluster = resources["DbCluster"]
    props = cluster["Properties"]
    assert props["Engine"] == "aurora-postgresql"
    assert props["EngineVersion"] == {"Ref": "DbEngineVersion"}
    assert raw()["Parameters"]["DbEngineVersion"]["Default"].startswith("16.")
    assert props["ServerlessV2ScalingConfiguration"]["MinCapacity"] == {"Ref": "DbMinCapacity"}
    assert props["ManageMasterUserPassword"] is True and props["StorageEncrypted"] is True
    assert props["DeletionProtection"] == {"Fn::If": ["IsProd", True, False]}
    assert cluster["DeletionPolicy"] == "Snapshot"
    assert raw()["Parameters"]["DbMinCapacity"]["MinValue"] == 0
    for name in ("DbWriterInstance", "DbReaderInstance"):
        assert resources[name]["Properties"]["PubliclyAccessible"] is False
    ingress = resources["DbSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert ingress == [
        {
            "IpProtocol": "tcp",
            "FromPort": 5432,
            "ToPort": 5432,
            "SourceSecurityGroupId": {"Ref": "FunctionSecurityGroup"},
            "Description": "PostgreSQL from the Activity functions only",
        }
    ]


def test_functions_get_the_environment_they_need() -> None:
    template = raw()
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    for name in (
        "DB_HOST",
        "DB_READER_HOST",
        "DB_NAME",
        "DB_SECRET_ARN",
        "DB_SSLROOTCERT",
        "JWT_JWKS_URL",
        "JWT_SECRET_ARN",
        "JWT_ISSUER",
        "JWT_AUDIENCE",
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_LOG_LEVEL",
    ):
        assert name in env, name
    export_env = template["Resources"]["ExportFunction"]["Properties"]["Environment"]["Variables"]
    assert {"EXPORT_BUCKET", "EXPORT_URL_TTL_SECONDS"} <= set(export_env)
    assert template["Globals"]["Function"]["Architectures"] == ["arm64"]
    for spec in lambdas.functions():
        props = template["Resources"][spec.logical_id]["Properties"]
        assert "LoggingConfig" in props, spec.logical_id
        group = template["Resources"][props["LoggingConfig"]["LogGroup"]["Ref"]]["Properties"]
        assert group["RetentionInDays"] == {"Fn::If": ["IsProd", 90, 14]}
    timeouts = {
        spec.operation: template["Resources"][spec.logical_id]["Properties"].get("Timeout", 29)
        for spec in lambdas.functions()
        if spec.operation
    }
    assert timeouts["export"] == 900 and timeouts["refresh"] == 300 and timeouts["get"] == 29


def test_refresh_schedule_with_retries_and_dead_letters() -> None:
    template = raw()
    schedule = template["Resources"]["RefreshFunction"]["Properties"]["Events"]["Schedule"]
    assert schedule["Type"] == "ScheduleV2"
    assert schedule["Properties"]["ScheduleExpression"] == {"Ref": "RefreshSchedule"}
    assert template["Parameters"]["RefreshSchedule"]["Default"] == "rate(5 minutes)"
    assert schedule["Properties"]["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert schedule["Properties"]["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["RefreshDeadLetterQueue", "Arn"]}
    schedules = resources_of("AWS::Scheduler::Schedule")
    (generated,) = schedules.values()
    assert generated["Properties"]["Target"]["DeadLetterConfig"]["Arn"] == {
        "Fn::GetAtt": ["RefreshDeadLetterQueue", "Arn"]
    }
    assert "RefreshDeadLetterAlarm" in template["Resources"]


def test_network_endpoints_and_migration_resource() -> None:
    resources = raw()["Resources"]
    assert resources["S3GatewayEndpoint"]["Properties"]["VpcEndpointType"] == "Gateway"
    assert resources["SecretsManagerEndpoint"]["Properties"]["VpcEndpointType"] == "Interface"
    migrations = resources["Migrations"]
    assert migrations["Type"] == "Custom::Migrations"
    assert migrations["Properties"]["ServiceToken"] == {"Fn::GetAtt": ["MigrateFunction", "Arn"]}
    # a long migration goes on in fresh invocations: CloudFormation waits its most, the function may invoke itself
    assert migrations["Properties"]["ServiceTimeout"] == 3600 and migrations["DependsOn"] == "MigrateSelfInvokePolicy"
    assert resources["MigrateFunction"]["Properties"]["Timeout"] == 900
    policy = translated()["MigrateSelfInvokePolicy"]["Properties"]
    assert policy["Roles"] == [{"Ref": "MigrateFunctionRole"}]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == "lambda:InvokeFunction"
    assert statement["Resource"] == {"Fn::GetAtt": ["MigrateFunction", "Arn"]}  # itself, nothing else


@pytest.mark.parametrize(
    "output", ["ApiUrl", "ExportBucketName", "DbClusterEndpoint", "DbSecretArn", "RuntimeDbSecretArn"]
)
def test_outputs(output: str) -> None:
    assert output in raw()["Outputs"]


# ---------------------------------------------------------------- standalone or attached
ATTACHED = {
    "ExistingDbHost": "glow-db.cluster-abc.us-east-1.rds.amazonaws.com",
    "ExistingDbSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:glow-master",
    "ExistingDbSecurityGroupId": "sg-0123456789abcdef0",
    "VpcId": "vpc-0123456789abcdef0",
    "PrivateSubnetIds": "subnet-a,subnet-b",
    "ExistingVpcCidr": "172.31.0.0/16",
}


def conditions(parameters: dict[str, str]) -> dict[str, bool]:
    """The template's Conditions evaluated for these parameter values (the others at their defaults)."""
    template = raw()
    values = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()} | parameters
    results: dict[str, bool] = {}

    def value(node: Any) -> Any:
        if isinstance(node, dict) and "Ref" in node:
            return values[node["Ref"]]
        return node

    def truth(node: Any) -> bool:
        ((fn, args),) = node.items()
        if fn == "Fn::Equals":
            return str(value(args[0])) == str(value(args[1]))
        if fn == "Fn::Not":
            return not truth(args[0])
        if fn == "Fn::And":
            return all(truth(a) for a in args)
        if fn == "Fn::Or":
            return any(truth(a) for a in args)
        if fn in ("Condition", "Fn::Condition"):
            return evaluate(args)
        raise AssertionError(fn)

    def evaluate(name: str) -> bool:
        if name not in results:
            results[name] = truth(template["Conditions"][name])
        return results[name]

    for name in template["Conditions"]:
        evaluate(name)
    return results


def created(parameters: dict[str, str]) -> dict[str, str]:
    """The resources a stack with these parameters creates: name -> type."""
    truth = conditions(parameters)
    return {
        name: resource["Type"]
        for name, resource in raw()["Resources"].items()
        if resource.get("Condition") is None or truth[resource["Condition"]]
    }


def test_attached_parameters_create_no_database_and_everything_else_the_same() -> None:
    standalone, attached = created({}), created(ATTACHED)
    database = {name for name, kind in standalone.items() if kind.startswith("AWS::RDS::")}
    assert database == {"DbCluster", "DbWriterInstance", "DbSubnetGroup"}
    assert not [name for name, kind in attached.items() if kind.startswith("AWS::RDS::")]
    assert "DbSecurityGroup" in standalone and "DbSecurityGroup" not in attached
    assert "DbReaderInstance" not in created({**ATTACHED, "DbReader": "true"})
    # the stack's own network is made only when no VPC is given; attached, it is the database's
    network = {name for name, kind in standalone.items() if kind.startswith("AWS::EC2::") and name not in attached}
    assert network >= {"Vpc", "PrivateSubnetA", "PrivateSubnetB", "DbSecurityGroup"}
    # functions, the schedule, exports, MCP, alarms, the runtime secret and the migrations: in both
    rest = {name for name in standalone if name not in database and name not in network}
    assert rest == {name for name in attached if name not in network}
    assert {"GetFunction", "McpFunction", "RefreshFunction", "ExportBucket", "Migrations", "RuntimeDbSecret"} <= rest
    assert conditions(ATTACHED)["Attached"] and not conditions({})["Attached"]


def test_attached_functions_reach_the_existing_database_as_their_own_user() -> None:
    template = raw()
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["DB_HOST"] == {
        "Fn::If": ["Attached", {"Ref": "ExistingDbHost"}, {"Fn::GetAtt": ["DbCluster", "Endpoint.Address"]}]
    }
    assert env["DB_SECRET_ARN"] == {"Ref": "RuntimeDbSecret"}
    groups = template["Globals"]["Function"]["VpcConfig"]["SecurityGroupIds"]
    assert groups["Fn::If"][1] == [{"Ref": "FunctionSecurityGroup"}, {"Ref": "ExistingDbSecurityGroupId"}]
    migrate_env = template["Resources"]["MigrateFunction"]["Properties"]["Environment"]["Variables"]
    assert migrate_env["DB_SECRET_ARN"] == {
        "Fn::If": [
            "Attached",
            {"Ref": "ExistingDbSecretArn"},
            {"Fn::GetAtt": ["DbCluster", "MasterUserSecret.SecretArn"]},
        ]
    }
    assert migrate_env["DB_RUNTIME_SECRET_ARN"] == {"Ref": "RuntimeDbSecret"}
    assert migrate_env["DB_ATTACHED"] == {"Fn::If": ["Attached", "true", "false"]}


def test_only_the_migration_function_holds_the_master_secret() -> None:
    roles = resources_of("AWS::IAM::Role")
    function_roles = {
        fn["Properties"]["Role"]["Fn::GetAtt"][0] for fn in resources_of("AWS::Lambda::Function").values()
    }
    for name in function_roles:
        secrets = [
            json.dumps(s["Resource"])
            for s in _statements(roles[name])
            if "secretsmanager:GetSecretValue" in _listify(s.get("Action", []))
        ]
        master = [s for s in secrets if "MasterUserSecret" in s or "ExistingDbSecretArn" in s]
        if name == "MigrateFunctionRole":
            assert master and any("RuntimeDbSecret" in s for s in secrets), secrets
        else:
            assert not master, (name, secrets)
            assert any("RuntimeDbSecret" in s for s in secrets), (name, secrets)


# ---------------------------------------------------------------- many callers at once


def test_the_callers_limits_reach_every_function() -> None:
    template = raw()
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["CALLER_REQUESTS_PER_MINUTE"] == {"Ref": "CallerRequestsPerMinute"}
    assert env["REFRESH_WAIT_SECONDS"] == {"Ref": "RefreshWaitSeconds"}
    assert env["EXPORT_MAX_RUNNING"] == {"Ref": "ExportMaxRunning"}
    parameters = template["Parameters"]
    assert parameters["CallerRequestsPerMinute"]["Default"] == 600
    assert parameters["RefreshWaitSeconds"]["Default"] == 20 and parameters["RefreshWaitSeconds"]["MaxValue"] < 30
    assert parameters["ExportMaxRunning"]["Default"] == 4
    migrate_env = template["Resources"]["MigrateFunction"]["Properties"]["Environment"]["Variables"]
    assert migrate_env["DB_CONNECTION_LIMIT"] == {"Ref": "DbConnectionLimit"}
    exposed = template["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"]["ExposeHeaders"]
    assert {"retry-after", "ratelimit-policy", "ratelimit"} <= set(exposed)


# connections one container of each function may hold: the writer's, and the reader's for what exports
CONNECTIONS_PER_CONTAINER = {
    "Get": 1,
    "Search": 1,
    "Problem": 1,
    "Resolve": 1,
    "Refresh": 1,
    "Docs": 1,
    "Export": 2,
    "Mcp": 2,
}


def test_reserved_concurrency_fits_inside_every_connection_limit() -> None:
    template = raw()
    table = template["Mappings"]["ConcurrencyByConnectionLimit"]
    assert sorted(table, key=int) == template["Parameters"]["DbConnectionLimit"]["AllowedValues"]
    for limit, reserved in table.items():
        assert set(reserved) == set(CONNECTIONS_PER_CONTAINER), limit
        held = sum(reserved[name] * CONNECTIONS_PER_CONTAINER[name] for name in reserved)
        assert held <= int(limit) - 1, f"DbConnectionLimit {limit}: the functions could hold {held}"
        # an asynchronous export needs a container of its own beside the synchronous ones
        assert reserved["Export"] >= 2, limit
    for name in CONNECTIONS_PER_CONTAINER:
        props = template["Resources"][f"{name}Function"]["Properties"]
        assert props["ReservedConcurrentExecutions"] == {
            "Fn::If": [
                "Reserve",
                {"Fn::FindInMap": ["ConcurrencyByConnectionLimit", {"Ref": "DbConnectionLimit"}, name]},
                {"Ref": "AWS::NoValue"},
            ]
        }
    assert template["Conditions"]["Reserve"] == {"Fn::Equals": [{"Ref": "ReserveConcurrency"}, "true"]}


def test_a_jwks_makes_issuer_and_audience_required() -> None:
    rule = raw()["Rules"]["JwksNeedsIssuerAndAudience"]
    assert rule["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "JwtJwksUrl"}, ""]}]}
    asserted = [a["Assert"] for a in rule["Assertions"]]
    assert asserted == [{"Fn::Not": [{"Fn::Equals": [{"Ref": name}, ""]}]} for name in ("JwtIssuer", "JwtAudience")]


def test_the_schedule_names_each_run() -> None:
    schedule = raw()["Resources"]["RefreshFunction"]["Properties"]["Events"]["Schedule"]
    payload = json.loads(schedule["Properties"]["Input"])
    assert payload["id"] == "<aws.scheduler.execution-id>"
    assert json.loads((REPO_ROOT / "events" / "refresh_schedule.json").read_text()).keys() == payload.keys()


def test_the_operators_dashboard_and_alarms() -> None:
    resources = raw()["Resources"]
    body = resources["OperatorDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    widgets = json.loads(body.replace("${", "{"))["widgets"]
    titles = [w["properties"]["title"] for w in widgets]
    assert [t for t in titles if t.startswith("Duration")] == [
        f"Duration {p} by operation (ms)" for p in ("p50", "p95", "p99")
    ]
    for widget in widgets:
        if widget["properties"]["title"].startswith("Duration"):
            functions = {m[3] for m in widget["properties"]["metrics"]}
            assert functions == {f"{{{name}Function}}" for name in CONNECTIONS_PER_CONTAINER}
    metrics = {m[1] for w in widgets if w["type"] == "metric" for m in w["properties"]["metrics"]}
    assert {"4xx", "5xx", "CallerThrottled", "ServiceUnavailable", "DbConnectionsInUse", "DbConnectionLimit"} <= metrics
    assert {"RefreshDuration", "ExportsRunning"} <= metrics
    queries = [w["properties"]["query"] for w in widgets if w["type"] == "log"]
    assert any("by caller" in q and "status = 429" in q for q in queries)
    assert any("by caller" in q and "status = 429" not in q for q in queries)
    for query in queries:  # every function's log group
        assert all(f"-{name.lower()}'" in query for name in CONNECTIONS_PER_CONTAINER)
    assert resources["CallerThrottledAlarm"]["Properties"]["MetricName"] == "CallerThrottled"
    assert resources["ServiceUnavailableAlarm"]["Properties"]["MetricName"] == "ServiceUnavailable"
    share = resources["DbConnectionsHighAlarm"]["Properties"]
    assert share["Metrics"][0]["Expression"] == "inuse / limit" and share["Threshold"] == 0.8


def test_in_an_existing_vpc_postgres_and_the_lambda_api_are_reachable() -> None:
    template = raw()
    egress = template["Resources"]["FunctionSecurityGroup"]["Properties"]["SecurityGroupEgress"]
    postgres = next(rule for rule in egress if rule["FromPort"] == 5432)
    assert postgres["CidrIp"] == {"Fn::If": ["CreateVpc", {"Ref": "VpcCidr"}, {"Ref": "ExistingVpcCidr"}]}
    rule = template["Rules"]["ExistingVpcNeedsItsCidr"]
    assert rule["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "VpcId"}, ""]}]}
    # the asynchronous export half invokes its own function through the Lambda API: an endpoint unless one is there
    assert "LambdaEndpoint" in created({}) and "LambdaEndpoint" in created(ATTACHED)
    assert "LambdaEndpoint" not in created({**ATTACHED, "ExistingVpcLambdaEndpoint": "present"})
    endpoint = template["Resources"]["LambdaEndpoint"]["Properties"]
    assert endpoint["SubnetIds"]["Fn::If"][2] == {"Ref": "PrivateSubnetIds"}
    assert template["Resources"]["EndpointSecurityGroup"]["Condition"] == "CreateLambdaEndpoint"


def test_the_api_url_output_is_the_glow_clients_base_url() -> None:
    outputs = raw()["Outputs"]
    assert outputs["ApiUrl"]["Value"] == {
        "Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${Stage}"
    }
    assert outputs["McpUrl"]["Value"]["Fn::Sub"].endswith(f"/${{Stage}}{API_PREFIX}/mcp")
