"""Per-tenant, per-provider secrets in SSM Parameter Store (SecureString), cached through Powertools.

Layout: {prefix}/{tenant}/{provider}/current and .../previous (kept during rotation so both verify).
"""

from __future__ import annotations

from typing import Any

from deflect.adapters.aws_errors import translated
from deflect.domain.tenancy import validate_tenant_id


class SsmSecretStore:
    def __init__(self, client: Any, prefix: str, *, cache_s: int = 60) -> None:
        self._client = client
        self._prefix = prefix.rstrip("/")
        self._cache_s = cache_s
        self._provider: Any = None

    def _path(self, tenant_id: str, provider: str) -> str:
        return f"{self._prefix}/{validate_tenant_id(tenant_id)}/{provider}"

    def _parameters(self) -> Any:
        if self._provider is None:
            from aws_lambda_powertools.utilities.parameters import SSMProvider

            self._provider = SSMProvider(boto3_client=self._client)
        return self._provider

    def secrets(self, tenant_id: str, provider: str) -> list[str]:
        with translated("GetParametersByPath"):
            found = self._parameters().get_multiple(
                self._path(tenant_id, provider),
                decrypt=True,
                max_age=self._cache_s,
                raise_on_transform_error=False,
            )
        return [found[name] for name in ("current", "previous") if found.get(name)]

    def put_secret(self, tenant_id: str, provider: str, value: str, *, keep_previous: bool = True) -> None:
        path = self._path(tenant_id, provider)
        current = self.secrets(tenant_id, provider) if keep_previous else []
        with translated("PutParameter"):
            if keep_previous and current:
                self._client.put_parameter(
                    Name=f"{path}/previous", Value=current[0], Type="SecureString", Overwrite=True
                )
            self._client.put_parameter(
                Name=f"{path}/current", Value=value, Type="SecureString", Overwrite=True
            )
        self._provider = None  # drop the cache so the new secret verifies at once
