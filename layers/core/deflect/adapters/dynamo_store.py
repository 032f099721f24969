"""SupportTable on DynamoDB: tenant-checked keys, optimistic locking, all-or-nothing transactions. No Scan."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from deflect.adapters.aws_errors import translated
from deflect.domain.canonical import json_default
from deflect.domain.errors import Forbidden
from deflect.domain.tenancy import TenantContext
from deflect.ports import Delete, Item, Put

INDEX_KEYS = {"GSI1": ("GSI1PK", "GSI1SK"), "GSI2": ("GSI2PK", "GSI2SK"), "GSI3": ("GSI3PK", "GSI3SK")}
_ser = TypeSerializer()
_de = TypeDeserializer()


def _stored_json(data: dict[str, Any]) -> str:
    """Item JSON as UTF-8 text: `\\uXXXX` escapes would make a CJK character 6 bytes and an emoji 12, against the
    400 KB item limit. Nothing hashes these bytes (hashes are over canonical JSON); readers only json.loads them."""
    text = json.dumps(data, default=json_default, separators=(",", ":"), ensure_ascii=False)
    try:
        text.encode()
    except UnicodeEncodeError:
        # A lone surrogate (from a `\\ud800` escape in some JSON we were sent) is not UTF-8: keep it escaped.
        text = json.dumps(data, default=json_default, separators=(",", ":"))
    return text


def _owned(ctx: TenantContext, key: str) -> None:
    """Keys must start with `T#{tenant}#` (or be the tenant root): the trailing `#` stops prefix collisions."""
    root = f"T#{ctx.tenant_id}"
    if key != root and not key.startswith(root + "#"):
        raise Forbidden("key outside the caller's tenant")


class DynamoSupportStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    # -- reads
    def get(self, ctx: TenantContext, pk: str, sk: str) -> Item | None:
        _owned(ctx, pk)
        with translated("GetItem"):
            response = self._client.get_item(
                TableName=self._table, Key={"PK": {"S": pk}, "SK": {"S": sk}}, ConsistentRead=True
            )
        raw = response.get("Item")
        return self._item(raw) if raw and not self._expired(raw) else None

    def query(
        self,
        ctx: TenantContext,
        pk: str,
        sk_prefix: str = "",
        *,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Item]:
        _owned(ctx, pk)
        condition = "PK = :pk" + (" AND begins_with(SK, :sk)" if sk_prefix else "")
        values: dict[str, Any] = {":pk": {"S": pk}}
        if sk_prefix:
            values[":sk"] = {"S": sk_prefix}
        return self._paged_query(
            dict(KeyConditionExpression=condition, ExpressionAttributeValues=values, ConsistentRead=True),
            limit,
            newest_first,
        )

    def query_index(
        self, ctx: TenantContext, index: str, pk: str, *, sk_prefix: str = "", limit: int | None = None
    ) -> list[Item]:
        _owned(ctx, pk)
        pk_attr, sk_attr = INDEX_KEYS[index]
        condition = f"{pk_attr} = :pk" + (f" AND begins_with({sk_attr}, :sk)" if sk_prefix else "")
        values: dict[str, Any] = {":pk": {"S": pk}}
        if sk_prefix:
            values[":sk"] = {"S": sk_prefix}
        return self._paged_query(
            dict(IndexName=index, KeyConditionExpression=condition, ExpressionAttributeValues=values), limit, False
        )

    def _paged_query(self, params: dict[str, Any], limit: int | None, newest_first: bool) -> list[Item]:
        items: list[Item] = []
        start: dict[str, Any] | None = None
        while True:
            call = dict(TableName=self._table, ScanIndexForward=not newest_first, **params)
            if start:
                call["ExclusiveStartKey"] = start
            if limit:
                call["Limit"] = limit - len(items)
            with translated("Query"):
                page = self._client.query(**call)
            items.extend(self._item(raw) for raw in page.get("Items", []) if not self._expired(raw))
            start = page.get("LastEvaluatedKey")
            if not start or (limit and len(items) >= limit):
                return items

    # -- writes
    def put(self, ctx: TenantContext, put: Put) -> None:
        request = self._put_request(ctx, put)
        with translated("PutItem"):
            self._client.put_item(**request)

    def delete(self, ctx: TenantContext, delete: Delete) -> None:
        with translated("DeleteItem"):
            self._client.delete_item(**self._delete_request(ctx, delete))

    def transact(self, ctx: TenantContext, writes: Iterable[Put | Delete]) -> None:
        items = []
        for write in writes:
            if isinstance(write, Put):
                items.append({"Put": self._put_request(ctx, write)})
            else:
                items.append({"Delete": self._delete_request(ctx, write)})
        if not items:
            return
        with translated("TransactWriteItems"):
            self._client.transact_write_items(TransactItems=items)

    # -- counters (accountability, issue 8): atomic ADD on numeric attributes, no read-modify-write race
    def add_counters(
        self, ctx: TenantContext, pk: str, sk: str, counters: dict[str, int], *, ttl_epoch: int | None = None
    ) -> dict[str, int]:
        """Add to named counters of one item (created on first use); returns the counters' new totals."""
        _owned(ctx, pk)
        names = {f"#c{i}": f"n_{name}" for i, name in enumerate(counters)}
        values: dict[str, Any] = {f":c{i}": {"N": str(int(v))} for i, v in enumerate(counters.values())}
        expression = "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(counters)))
        if ttl_epoch:
            names["#ttl"] = "expires_at"
            values[":ttl"] = {"N": str(ttl_epoch)}
            expression += " SET #ttl = if_not_exists(#ttl, :ttl)"
        with translated("UpdateItem"):
            response = self._client.update_item(
                TableName=self._table,
                Key={"PK": {"S": pk}, "SK": {"S": sk}},
                UpdateExpression=expression,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_NEW",
            )
        return self._counter_values(response.get("Attributes", {}))

    def counters(self, ctx: TenantContext, pk: str, sk_from: str, sk_to: str) -> list[tuple[str, dict[str, int]]]:
        """Counter items of one partition with sort keys in [sk_from, sk_to], in key order."""
        _owned(ctx, pk)
        params: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :pk AND SK BETWEEN :a AND :b",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":a": {"S": sk_from}, ":b": {"S": sk_to}},
            "ConsistentRead": True,
        }
        found: list[tuple[str, dict[str, int]]] = []
        while True:
            with translated("Query"):
                page = self._client.query(**params)
            found += [(raw["SK"]["S"], self._counter_values(raw)) for raw in page.get("Items", []) if not self._expired(raw)]
            if not page.get("LastEvaluatedKey"):
                return found
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    @staticmethod
    def _counter_values(raw: dict[str, Any]) -> dict[str, int]:
        return {k[2:]: int(v["N"]) for k, v in raw.items() if k.startswith("n_") and "N" in v}

    # -- translation
    def _put_request(self, ctx: TenantContext, put: Put) -> dict[str, Any]:
        _owned(ctx, put.pk)
        if put.expect == "version":
            new_version = (put.expected_version or 0) + 1
        elif put.expect == "new":
            new_version = 1
        else:
            new_version = int(put.data.get("version", 0) or 0) + 1
        data = dict(put.data)
        if "version" in data:
            # Versioned records read back their stored version; others (messages, decisions, index items) have
            # no such field and would fail validation with one (their models forbid extra fields).
            data["version"] = new_version
        item: dict[str, Any] = {
            "PK": {"S": put.pk},
            "SK": {"S": put.sk},
            "data": {"S": _stored_json(data)},
            "version": {"N": str(new_version)},
            # The entity kind lets stream consumers filter (e.g. writeback only wants OUTBOX items).
            "entity": {"S": put.pk.split("#")[2] if put.pk.count("#") >= 2 else "TENANT"},
        }
        for attr, value in put.indexes.items():
            if attr.endswith("PK"):
                _owned(ctx, value)
            item[attr] = {"S": value}
        if put.ttl_epoch:
            item["expires_at"] = {"N": str(put.ttl_epoch)}
        request: dict[str, Any] = {"TableName": self._table, "Item": item}
        if put.expect == "new":
            request["ConditionExpression"] = "attribute_not_exists(PK)"
        elif put.expect == "version":
            request["ConditionExpression"] = "#v = :v"
            request["ExpressionAttributeNames"] = {"#v": "version"}
            request["ExpressionAttributeValues"] = {":v": {"N": str(put.expected_version or 0)}}
        return request

    def _delete_request(self, ctx: TenantContext, delete: Delete) -> dict[str, Any]:
        _owned(ctx, delete.pk)
        request: dict[str, Any] = {"TableName": self._table, "Key": {"PK": {"S": delete.pk}, "SK": {"S": delete.sk}}}
        if delete.expected_version is not None:
            request["ConditionExpression"] = "#v = :v"
            request["ExpressionAttributeNames"] = {"#v": "version"}
            request["ExpressionAttributeValues"] = {":v": {"N": str(delete.expected_version)}}
        return request

    @staticmethod
    def _expired(raw: dict[str, Any]) -> bool:
        # DynamoDB deletes expired items lazily (moto never): treat them as gone.
        expires = raw.get("expires_at")
        return bool(expires) and int(expires["N"]) < time.time()

    @staticmethod
    def _item(raw: dict[str, Any]) -> Item:
        indexes = {k: _de.deserialize(v) for k, v in raw.items() if k.startswith("GSI")}
        return Item(
            pk=raw["PK"]["S"],
            sk=raw["SK"]["S"],
            data=json.loads(raw["data"]["S"]),
            version=int(raw["version"]["N"]),
            indexes=indexes,
        )
