"""Adapters: boto3, opensearch-py, Bedrock and helpdesk HTTP implementations of the ports."""
