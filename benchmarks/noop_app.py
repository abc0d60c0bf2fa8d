"""Baseline for benchmarks/ingest.py: a FastAPI endpoint that reads the body and does nothing."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/v1/events")
async def noop(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"ok": True}, status_code=202)


@app.post("/v1/events/batch")
async def noop_batch(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"ok": True})
