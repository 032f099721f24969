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
