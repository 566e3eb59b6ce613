"""The baseline of bench/ingest.py: a bare FastAPI endpoint that only parses the payload."""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/api/v1/alerts/alertmanager")
async def accept(request: Request) -> JSONResponse:
    payload = json.loads(await request.body())
    return JSONResponse({"alerts": len(payload["alerts"])}, status_code=202)
