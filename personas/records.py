"""One record type per stage: `Persona` (seeds stage) and `Character` (profiles stage).

Pydantic models because validation matters here; `synth.shards.arrow_schema` derives their Arrow schemas.
"""

import hashlib
from typing import Annotated

from pydantic import BaseModel, Field

# List items need a cap too: an unbounded string inside a list lets a weak model run to max_tokens.
Item = Annotated[str, Field(min_length=1, max_length=120)]


def stable_id(prefix: str, *parts: str) -> str:
    """Content-derived id: the same input always gets the same id, on any machine, in any run."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return f"{prefix}-{digest[:16]}"


def name_key(name: str) -> str:
    """A name as compared across characters: case and spacing do not make two people."""
    return " ".join(name.casefold().split())


def derive_seed(recipe_seed: int, record_id: str, attempt: int | str = 0) -> int:
    """Every random choice derives from (recipe seed, record id) — and the attempt, for retries."""
    digest = hashlib.sha256(f"{recipe_seed}\x1f{record_id}\x1f{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class Persona(BaseModel):
    id: str = Field(description="p-<hash of the normalized text>")
    text: str = Field(description="the normalized one-line persona")
    language: str = Field(description="ISO 639-1 code of the persona text")
    source: str = Field(description="file or dataset the persona came from ('builtin' for ours)")
    source_line: int = Field(description="1-based line (or row) in the source")


class ProfileFields(BaseModel):
    """What the LLM fills in: the JSON schema for constrained decoding is derived from this.

    Length caps keep a small model from rambling until max_tokens (a 'length' reject).
    """

    name: str = Field(min_length=1, max_length=60)
    age: int = Field(ge=1, le=120)
    gender: str = Field(min_length=1, max_length=30)
    race: str = Field(min_length=1, max_length=60, description="race or ethnicity")
    born_place: str = Field(min_length=1, max_length=80)
    appearance: str = Field(min_length=1, max_length=300)
    experience: str = Field(min_length=1, max_length=600)
    personality: str = Field(min_length=1, max_length=300)
    speech_style: str = Field(min_length=1, max_length=240)
    catchphrases: list[Item] = Field(min_length=1, max_length=3)
    relationships: list[Item] = Field(min_length=1, max_length=4)
    likes: list[Item] = Field(min_length=1, max_length=5)
    dislikes: list[Item] = Field(min_length=1, max_length=5)


class Character(ProfileFields):
    id: str = Field(description="c-<hash of persona id and name>: stable across runs")
    persona_id: str
    persona: str
    language: str = Field(description="language the profile is written in")
    system_prompt: str = Field(description="the profile rendered as the role-play system message")
    system_template: str = Field(description="name@version of the renderer, so inference renders the same")
    model: str
    seed: int = Field(description="sampling seed of the accepted attempt")
    attempts: int = Field(description="LLM attempts it took (1 = first try)")
    split: str = Field(default="", description="train / validation / heldout, set by the split stage ('' before it)")
