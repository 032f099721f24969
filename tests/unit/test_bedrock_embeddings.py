"""Bedrock embeddings fail as domain errors: a model still loading (429) or timing out (408) is transient like a
5xx, throttling is Throttled (all retryable by the caller), and an embedding model whose request body this
adapter does not speak is refused at construction instead of being sent Titan's body."""

import json

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from deflect.adapters.bedrock_embeddings import BedrockEmbeddings
from deflect.domain.errors import Throttled, TransientFailure


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_):
        yield self.data


def bedrock(status, code):
    """A bedrock-runtime client whose InvokeModel answers `status` with error `code` through botocore's parser."""
    # One request per call: botocore's own retries would only repeat the same canned answer (and sleep).
    client = boto3.session.Session(region_name="us-east-1").client(
        "bedrock-runtime",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    calls = []

    def hook(request, **_):
        calls.append(request.url)
        headers = {"Content-Type": "application/json", "x-amzn-ErrorType": code}
        return AWSResponse(request.url, status, headers, _Raw(json.dumps({"message": code}).encode()))

    client.meta.events.register("before-send.bedrock-runtime.InvokeModel", hook)
    return client, calls


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (429, "ModelNotReadyException", TransientFailure),
        (408, "ModelTimeoutException", TransientFailure),
        (503, "ServiceUnavailableException", TransientFailure),
        (500, "InternalServerException", TransientFailure),
        (429, "ThrottlingException", Throttled),
    ],
)
def test_retryable_bedrock_errors_become_domain_errors(status, code, error):
    client, calls = bedrock(status, code)
    with pytest.raises(error) as caught:
        BedrockEmbeddings(client, workers=1).embed(["hello"])
    assert type(caught.value).__module__ == "deflect.domain.errors" and len(calls) == 1


@pytest.mark.parametrize(
    "model_id",
    [
        "cohere.embed-english-v3",
        "cohere.embed-multilingual-v3",
        "amazon.titan-embed-image-v1",
        "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123",
    ],
)
def test_an_embedding_model_this_adapter_cannot_call_is_refused_at_construction(model_id):
    with pytest.raises(ValueError, match="not supported"):
        BedrockEmbeddings(bedrock(200, "")[0], model_id, dimensions=1024)


@pytest.mark.parametrize(
    ("model_id", "dimensions"),
    [
        ("amazon.titan-embed-text-v2:0", 512),
        ("amazon.titan-embed-text-v1", 1536),
        ("amazon.titan-embed-g1-text-02", 1536),
        ("arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0", 512),
    ],
)
def test_titan_text_embedding_ids_are_accepted(model_id, dimensions):
    assert BedrockEmbeddings(bedrock(200, "")[0], model_id, dimensions=512).dimensions == dimensions
