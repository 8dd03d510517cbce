"""Record types of the dialogue stages: `Prompt` (instructions), `Task` (one character × prompt × mode),
`Dialogue` (the training row). `Persona` and `Character` live in `personas.records`.
"""

from pydantic import BaseModel, Field


class Prompt(BaseModel):
    id: str = Field(description="q-<hash of source and the row's own id>")
    source: str = Field(description="file or dataset the instruction came from")
    source_id: str = Field(description="the row's own id in its source (or its line number)")
    source_line: int
    turns: list[str] = Field(description="the user turns as given (instruction and input joined); >1 for MT-Bench")
    references: list[str] = Field(description="reference answer per turn, '' where the source has none")
    category: str = ""
    language: str


class Task(BaseModel):
    """One dialogue to build: the dialogues stage's input, ordered so one character's tasks are adjacent."""

    id: str = Field(description="d-<hash of prompt, character, mode>: also the dialogue's id")
    prompt_id: str
    character_id: str
    mode: str = Field(description="R (rewrite the reference) or G (generate)")
    user_turns: int = Field(description="user turns the dialogue will have (1 = single-turn)")
    user_character_id: str = Field(default="", description="the character the user plays, '' for a plain user")
    action_cues: bool = False
    split: str


class Message(BaseModel):
    role: str
    content: str
    # OpenAI's fine-tuning format: weight 0 marks a character turn not to train on (train.loss=flags).
    weight: int = Field(default=1, description="1: train on this character turn, 0: keep it as context only")


class Dialogue(BaseModel):
    """A training row: OpenAI-style messages for TRL's SFTTrainer plus provenance."""

    id: str
    messages: list[Message] = Field(description="system (the rendered profile), then user/assistant turns")
    character_id: str
    character_name: str
    user_character_id: str = ""
    mode: str
    split: str = Field(description="train / validation / heldout: the character's split")
    prompt_id: str
    prompt_source: str
    prompt_source_id: str
    turns: int = Field(description="assistant turns")
    language: str
    system_template: str = Field(description="name@version of the system-message renderer, used again at inference")
    model: str
    seed: int = Field(description="sampling seed of the dialogue's first request; later ones derive from it")
    requests: int
    prompt_tokens: int
    output_tokens: int
