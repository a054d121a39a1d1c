"""The baseline: a bare FastAPI endpoint that only parses the body and answers 201."""

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Body(BaseModel):
    student_id: str
    text: str


@app.post("/v1/requests", status_code=201)
async def create(body: Body) -> dict[str, str]:
    return {"id": "bare", "status": "received"}
