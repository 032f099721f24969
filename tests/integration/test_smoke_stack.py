from deflect.domain.tenancy import TenantContext


def test_template_resources_exist_in_moto(moto_stack):
    ddb = moto_stack.session.client("dynamodb")
    table = ddb.describe_table(TableName="SupportTable")["Table"]
    assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} == {"GSI1", "GSI2", "GSI3"}
    c = moto_stack.container()
    ctx = TenantContext.system("acme")
    assert c.tenants.find(ctx) is None
