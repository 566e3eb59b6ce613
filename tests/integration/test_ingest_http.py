import json, httpx, pytest
from pathlib import Path
from slack_tools.service.app import create_app
from slack_tools.service.container import build_service
from slack_tools.storage.tenants import TenantStore
from slack_tools.configs.security import new_api_key

FIX = Path("/work/main/tests/fixtures")

async def test_proto(make_runtime):
    runtime = make_runtime(extra={"SLACK_TOOLS__SECURITY__ADMIN_TOKEN": "admintok", "SLACK_TOOLS__SERVER__MAX_BODY_BYTES": "2048"})
    service = build_service(runtime, port=1)
    app = create_app(service)
    store = TenantStore(runtime.database.engine)
    store.create("acme", "Acme")
    key = new_api_key()
    store.add_key("acme", digest=key.digest, prefix=key.prefix, label="t")
    await service.start()
    am = json.loads((FIX / "alertmanager-webhook-v4.json").read_text())
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            h = {"Authorization": f"Bearer {key.key}", "content-type": "application/json"}
            async def post(p, body):
                if not isinstance(body, bytes): body = json.dumps(body).encode()
                r = await c.post(p, content=body, headers=h)
                print(p, body[:80], r.status_code, r.text[:300])
            g = "/api/v1/alerts"
            await post(g, [{"labels": {"alertname": "X", "v": "\ud800"}}])
            await post(g, b'[{"labels": {"alertname": "X", "v": "\\ud800"}}]')
            await post(g, b'[{"labels": {"alertname": "X\\u0000", "v": "a"}}]')
            await post(g, [{"labels": {"alertname": "X"}, "startsAt": "9999-12-31T23:59:59-23:59"}])
            await post(g, [{"labels": {"alertname": "X"}, "startsAt": "0001-01-01T00:00:00+23:59"}])
            await post(g, [{"labels": {"alertname": "Y"}, "startsAt": "0002-01-01T00:00:00+23:59"}])
            await post(g, [{"labels": {"alertname": "Z"}, "startsAt": "2020-01-01T00:00:00", "endsAt": "9999-12-31T23:59:59+14:00"}])
            await post(g, [{"labels": {"alertname": "X", "xoxb-secret-1234": 5}}])
            await post(g, {"alerts": [{"labels": {"alertname": "X"}, "annotations": {"a": 1}}]})
            await post(g, [{"labels": {"alertname": "X"}, "fingerprint": ""}])
            await post(g, b"[]")
            await post(g, b"{}")
            await post(g, b"  [")
            await post(g, b"\xff\xfe")
            await post(g, b"[" * 5000)
            await post(g, b"")
            am2 = dict(am, truncatedAlerts=10**30)
            await post("/api/v1/alerts/alertmanager", am2)
            am3 = dict(am, version="5")
            await post("/api/v1/alerts/alertmanager", am3)
            am4 = dict(am, groupKey="k"*1200)
            await post("/api/v1/alerts/alertmanager", am4)
            am5 = dict(am, alerts=[dict(am["alerts"][0], labels={})])
            await post("/api/v1/alerts/alertmanager", am5)
            am6 = dict(am, alerts=[dict(am["alerts"][0], startsAt="9999-12-31T23:59:59-23:59")], groupKey="zz")
            await post("/api/v1/alerts/alertmanager", am6)
            r = await c.post(g, content=b"x"*3000, headers=h); print(r.status_code, r.text)
            async def gen():
                for _ in range(10): yield b"x"*300
            r = await c.post(g, content=gen(), headers=h); print(r.status_code, r.headers, r.text)
            r = await c.get("/admin/deadletters"); print(r.status_code, r.headers, r.text)
            r = await c.get("/admin/deadletters", headers={"Authorization": "Bearer nope"}); print(r.status_code, r.text)
            r = await c.get("/admin/deadletters", headers={"Authorization": "Bearer admintok"}); print(r.status_code, r.text)
            r = await c.post("/admin/deadletters/replay", json={"ids": "x"}, headers={"Authorization": "Bearer admintok"}); print(r.status_code, r.text)
    finally:
        await service.close(1.0)
