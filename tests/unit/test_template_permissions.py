"""What the template must grant and wire so the functions can do on AWS what they do locally (moto does not check
IAM): writeback relays stream records to its queue and re-queues held notes; evidence writers can tell a missing key."""

from __future__ import annotations

from infra.local import template as tpl


def _writeback() -> dict:
    return tpl.resources("AWS::Serverless::Function")["WritebackFunction"]["Properties"]


def test_the_writeback_function_may_send_to_its_own_queue():
    sends = [
        policy["SQSSendMessagePolicy"]["QueueName"]
        for policy in _writeback()["Policies"]
        if isinstance(policy, dict) and "SQSSendMessagePolicy" in policy
    ]
    assert {"Fn::GetAtt": ["WritebackQueue", "QueueName"]} in sends


def test_the_table_stream_feeds_the_writeback_function_and_is_on():
    stream = _writeback()["Events"]["OutboxStream"]["Properties"]
    assert stream["Enabled"] is True
    assert stream["Stream"] == {"Fn::GetAtt": ["SupportTable", "StreamArn"]}
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_every_function_that_touches_evidence_may_list_the_bucket():
    """Without s3:ListBucket, S3 answers 403 instead of 404 for a key that is not there yet."""
    for name, function in tpl.resources("AWS::Serverless::Function").items():
        statements = [
            s
            for policy in function["Properties"].get("Policies", [])
            if isinstance(policy, dict)
            for s in policy.get("Statement", [])
        ]
        touches = any("EvidenceBucket.Arn" in str(s.get("Resource")) for s in statements)
        lists = any(
            s.get("Action") == "s3:ListBucket"
            and s.get("Resource") == {"Fn::GetAtt": ["EvidenceBucket", "Arn"]}
            for s in statements
        )
        assert lists or not touches, name


def test_the_intake_function_may_do_what_triage_does_since_conversations_triage_inside_it():
    from infra.checks import permissions

    functions = tpl.resources("AWS::Serverless::Function")
    intake, triage = functions["IntakeFunction"]["Properties"], functions["TriageFunction"]["Properties"]
    assert set(permissions.granted("TriageFunction")) <= set(permissions.granted("IntakeFunction"))
    assert permissions.queues_sent_to("TriageFunction") <= permissions.queues_sent_to("IntakeFunction")
    assert permissions.tables_of("TriageFunction") <= permissions.tables_of("IntakeFunction")
    assert triage["Environment"]["Variables"].items() <= intake["Environment"]["Variables"].items()


def test_the_permission_check_names_the_bucket_an_s3_call_needs():
    """A grant on the evidence bucket does not cover reading the knowledge import bucket (local bucket names are
    the lower-cased template ids; deployed ones have their BucketName)."""
    from infra.checks import permissions

    assert permissions.missing([("RetrievalFunction", "s3", "GetObject@knowledgeimportbucket")]) == []
    assert permissions.missing([("TriageFunction", "s3", "PutObject@evidencebucket")]) == []
    assert permissions.missing(
        [("TriageFunction", "s3", "GetObject@deflect-kb-import-123456789012-prod")]
    ) == ["TriageFunction: s3:GetObject on bucket KnowledgeImportBucket"]


def test_the_retrieval_function_queues_the_parts_of_large_imports_and_reads_them_back():
    """A part that runs out of time sends the rest to KnowledgeImportQueue, which feeds the same function; the
    queue is encrypted with the data key, which the function may use."""
    from infra.checks import permissions

    retrieval = tpl.resources("AWS::Serverless::Function")["RetrievalFunction"]["Properties"]
    assert "KnowledgeImportQueue" in permissions.queues_sent_to("RetrievalFunction")
    assert retrieval["Environment"]["Variables"]["KNOWLEDGE_IMPORT_QUEUE_URL"] == {"Ref": "KnowledgeImportQueue"}
    parts = retrieval["Events"]["BulkImportParts"]["Properties"]
    assert parts["Queue"] == {"Fn::GetAtt": ["KnowledgeImportQueue", "Arn"]}
    assert parts["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = tpl.resources("AWS::SQS::Queue")["KnowledgeImportQueue"]["Properties"]
    assert queue["KmsMasterKeyId"] == {"Ref": "DataKey"}
    assert permissions.allows(permissions.granted("RetrievalFunction"), "kms:GenerateDataKey")
    # Lambda advises a visibility timeout of six times the function's timeout for SQS event sources.
    assert queue["VisibilityTimeout"] >= 6 * retrieval["Timeout"]


def test_no_function_may_scan_a_table_even_though_the_crud_policy_template_grants_it():
    from infra.checks.permissions import missing, tables_of

    functions = tpl.resources("AWS::Serverless::Function")
    for name in functions:
        if tables_of(name):
            assert missing([(name, "dynamodb", "Scan@SupportTable")]) == [
                f"{name}: dynamodb:Scan (dynamodb.Scan) is denied"
            ]
            assert missing([(name, "dynamodb", "Query@SupportTable")]) == []


# --------------------------------------------------------------------------- OpenSearch methods, secrets, keys


def _opensearch_methods(operation) -> set[str]:
    """The es:ESHttp* actions the real opensearch-py client needs for `operation(index)` (a recording connection
    answers in place of a domain: no socket). The index is not there yet, so the first write creates it."""
    import json

    from opensearchpy import Connection, OpenSearch

    from deflect.adapters.opensearch_index import OpenSearchKnowledgeIndex
    from tests.unit.test_knowledge_opensearch import FixedEmbeddings

    sent: list[str] = []

    class Recording(Connection):
        def perform_request(self, method, url, params=None, body=None, timeout=None, ignore=(), headers=None):
            sent.append(method)
            if method == "HEAD":
                return 404, {}, ""
            if url.endswith("/_bulk"):
                return 200, {}, json.dumps({"errors": False, "items": []})
            if url.endswith("/_msearch"):
                return 200, {}, json.dumps({"responses": [{"hits": {"hits": []}}, {"hits": {"hits": []}}]})
            return 200, {}, json.dumps({"hits": {"hits": []}})

    client = OpenSearch(hosts=[{"host": "search.example", "port": 443}], connection_class=Recording)
    operation(OpenSearchKnowledgeIndex(client, FixedEmbeddings(), service="es"))
    return {f"es:ESHttp{method.capitalize()}" for method in sent}


def _writes(index) -> None:
    from deflect.domain.tenancy import TenantContext
    from tests.unit.test_knowledge_opensearch import chunks

    acme = TenantContext.system("acme")
    index.replace_article(acme, "refunds", chunks())
    index.flush()  # creates the missing index, indexes, refreshes, settles
    index.remove_article(acme, "refunds")
    index.flush()


def _searches(index) -> None:
    from deflect.domain.tenancy import TenantContext
    from tests.unit.test_knowledge_opensearch import REQUEST

    acme = TenantContext.system("acme")
    index.search(acme, REQUEST)
    index.search(acme, REQUEST.model_copy(update={"locale": "en"}))
    index.sections(acme, REQUEST, [("refunds", 2)])


def _es_grants(function: str) -> set[str]:
    from infra.checks import permissions

    return {a for a in permissions.granted(function) if a.startswith("es:")}


def test_the_retrieval_function_may_send_every_opensearch_method_an_article_write_uses_and_no_other():
    """An article write first asks whether the index exists (HEAD): without es:ESHttpHead every write was refused."""
    needed = _opensearch_methods(_writes) | _opensearch_methods(_searches)

    assert "es:ESHttpHead" in needed
    assert _es_grants("RetrievalFunction") == needed


def test_searching_functions_may_only_search_and_the_health_check_may_look_at_the_index():
    searching = _opensearch_methods(_searches)

    assert _es_grants("TriageFunction") == searching == {"es:ESHttpPost"}
    assert _es_grants("IntakeFunction") == searching | {"es:ESHttpHead"}  # GET /v1/health: HEAD on the index


STACK = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "Stage": "dev",
}


def _ssm_resources(function: str) -> list[str]:
    """The SSM parameter ARNs (patterns) the function may read, for a `dev` stack."""
    from infra.checks import permissions

    found = []
    for statement in permissions._statements(function):
        actions = permissions._list(statement.get("Action"))
        if statement.get("Effect") == "Allow" and any(a.startswith("ssm:") for a in actions):
            for resource in permissions._list_of(statement.get("Resource")):
                text = resource["Fn::Sub"] if isinstance(resource, dict) else resource
                for name, value in STACK.items():
                    text = text.replace("${" + name + "}", value)
                found.append(text)
    return found


def _may_read(function: str, secret: str) -> bool:
    """Whether the function may read `secret` of tenant acme (SsmSecretStore: GetParametersByPath on its path)."""
    import fnmatch

    arn = f"arn:aws:ssm:us-east-1:123456789012:parameter/deflect/dev/acme/{secret}"
    return any(fnmatch.fnmatchcase(arn, pattern) for pattern in _ssm_resources(function))


def _secrets_read_by() -> dict[str, set[str]]:
    """The secrets each function's code reads (grep `secrets(`: intake.py, triage/profile.py, helpdesk/directory.py)."""
    from deflect.helpdesk.directory import secret_name
    from deflect.services.intake import API_PROVIDER
    from deflect.webhooks import PROVIDERS

    writeback = {secret_name(name) for name in ("zendesk", "intercom", "freshdesk", "jira", "crm", "generic")}
    triage = {"telemetry"} | writeback  # diagnostic tools; attachments fetched with the helpdesk connection
    return {
        # Webhook signing secrets, API key hashes, and what the conversation API's synchronous triage reads.
        "IntakeFunction": set(PROVIDERS) | {API_PROVIDER} | triage,
        "TriageFunction": triage,
        "ApprovalFunction": {"telemetry"},  # diagnostic tools an agent runs from a task
        "WritebackFunction": writeback,
    }


def test_each_function_may_read_the_secrets_its_code_reads_and_no_others():
    from infra.checks import permissions

    reads = _secrets_read_by()
    every = set().union(*reads.values()) | {"zendesk/current", "other-tool"}
    for function in tpl.resources("AWS::Serverless::Function"):
        wanted = reads.get(function, set())
        assert {s for s in every if _may_read(function, s)} == wanted, function
        # SsmSecretStore only reads paths; nothing reads a parameter by name.
        assert not permissions.allows(permissions.granted(function), "ssm:GetParameter"), function


def test_no_function_may_read_every_secret_of_the_stage():
    for function in tpl.resources("AWS::Serverless::Function"):
        assert not any(r.endswith("parameter/deflect/dev/*") for r in _ssm_resources(function)), function
        assert not _may_read(function, "some-new-secret"), function


def test_only_the_escalation_function_may_encrypt_with_the_data_key():
    """It stores a human task's callback token encrypted (KmsTokenCipher.encrypt); the others decrypt, and queues,
    evidence and customer keys need GenerateDataKey, not Encrypt."""
    from infra.checks import permissions

    encrypting = {
        f
        for f in tpl.resources("AWS::Serverless::Function")
        if permissions.allows(permissions.granted(f), "kms:Encrypt")
    }
    assert encrypting == {"EscalationFunction"}


# --------------------------------------------------------------------------- failures that must not vanish


def _alarmed_encrypted_queue(queue: str) -> None:
    props = tpl.resources("AWS::SQS::Queue")[queue]["Properties"]
    assert props["KmsMasterKeyId"] == {"Ref": "DataKey"}
    assert not props.get("FifoQueue")  # Lambda's on-failure destinations are standard queues
    dimension = {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}
    alarmed = [
        a["Properties"]
        for a in tpl.resources("AWS::CloudWatch::Alarm").values()
        if dimension in a["Properties"].get("Dimensions", [])
    ]
    assert alarmed and alarmed[0]["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert alarmed[0]["MetricName"] == "ApproximateNumberOfMessagesVisible"


def test_a_bulk_import_the_bucket_invocation_gives_up_on_lands_in_an_alarmed_queue():
    """S3 invokes the retrieval function asynchronously: after Lambda's retries the event was dropped."""
    from infra.checks import permissions

    retrieval = tpl.resources("AWS::Serverless::Function")["RetrievalFunction"]["Properties"]
    assert retrieval["Events"]["BulkImport"]["Type"] == "S3"
    on_failure = retrieval["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
    assert on_failure["Type"] == "SQS"  # SAM grants the role sqs:SendMessage on it
    queue = on_failure["Destination"]["Fn::GetAtt"][0]
    _alarmed_encrypted_queue(queue)
    # The destination queue is encrypted with the data key: sending needs both.
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        assert permissions.allows(permissions.granted("RetrievalFunction"), action)


def test_the_outbox_stream_stops_retrying_a_failing_record_and_keeps_it():
    """A stream record that keeps failing held up its shard until it expired from the stream, then vanished."""
    from infra.checks import permissions

    stream = _writeback()["Events"]["OutboxStream"]["Properties"]
    assert 0 <= stream["MaximumRetryAttempts"] <= 10
    assert stream["BisectBatchOnFunctionError"] is True
    on_failure = stream["DestinationConfig"]["OnFailure"]
    assert on_failure["Type"] == "SQS"
    _alarmed_encrypted_queue(on_failure["Destination"]["Fn::GetAtt"][0])
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        assert permissions.allows(permissions.granted("WritebackFunction"), action)
