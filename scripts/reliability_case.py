"""One row of the reliability table: what was tried, what should happen, what did."""

from pydantic import BaseModel


class Case(BaseModel):
    case: str
    expected: str
    observed: str
    passed: bool
    part: str = ""
