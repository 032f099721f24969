"""Task tokens encrypted with KMS, bound to the tenant through the encryption context."""

from __future__ import annotations

import base64
from typing import Any

from deflect.adapters.aws_errors import translated


class KmsTokenCipher:
    def __init__(self, client: Any, key_id: str | None) -> None:
        self._client = client
        self._key_id = key_id

    def encrypt(self, tenant_id: str, plaintext: str) -> str:
        with translated("Encrypt"):
            blob = self._client.encrypt(
                KeyId=self._key_id, Plaintext=plaintext.encode(), EncryptionContext={"tenant": tenant_id}
            )["CiphertextBlob"]
        return base64.b64encode(blob).decode()

    def decrypt(self, tenant_id: str, ciphertext: str) -> str:
        with translated("Decrypt"):
            plain = self._client.decrypt(
                CiphertextBlob=base64.b64decode(ciphertext), EncryptionContext={"tenant": tenant_id}
            )["Plaintext"]
        return plain.decode()
