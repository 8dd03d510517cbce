"""Record types of the evaluation stages: `Item` (a question put to a character), `Reply` (one model's answer
to an item under one seed), `Judgement` (one judge's rubric score of a reply), `Verdict` (one judge's GSB
comparison of two models' replies to the same item and seed, both orders). `Question` lives in eval.personagym.

Rows are self-contained (who was asked what, by which model, judged by whom) so the Arrow results can be
aggregated across evaluations without the run folder they came from.
"""

from pydantic import BaseModel, Field


class Item(BaseModel):
    """One question to one character: the unit every model answers and every comparison is paired on."""

    id: str = Field(description="i-<hash of benchmark, character id, question id>")
    benchmark: str = Field(description="heldout | personagym")
    task: str = Field(description="a PersonaGym task, or 'Instruction' for an unused instruction prompt")
    question_id: str
    question: str
    character_id: str
    character: str = Field(description="the character's name")
    language: str
    system: str = Field(description="the system prompt the model answers under (the training template)")
    persona: str = Field(description="the one-line persona: what PersonaGym's judge reads")
    profile: str = Field(
        description="'profile' (expanded by the profile stage) or 'line' (the one-line persona as given)"
    )


class Reply(Item):
    """A model's answer to an item: the item's fields, then the model, the seed and what came back."""

    item_id: str
    model: str = Field(description="the model's label in the recipe, e.g. base / tuned")
    model_id: str = Field(description="what was loaded: path or HF id, plus a content hash for a local folder")
    seed: int
    text: str
    finish_reason: str
    prompt_tokens: int
    output_tokens: int
    out_of_character: str = Field(
        description="'' when the judge-free checks read it as the character speaking, else why not"
    )


class Judgement(BaseModel):
    """One judge's absolute score of one reply on one rubric."""

    id: str = Field(description="j-<hash of reply id, judge, rubric>")
    reply_id: str
    item_id: str
    model: str
    benchmark: str
    task: str
    character_id: str
    seed: int
    judge: str = Field(description="the judge's label")
    judge_model: str = Field(description="the judge's model identity (path or HF id + content hash), backend kind")
    rubric: str = Field(description="'persona' (PersonaGym's 1-5 rubric of the item's task) or 'roleplay' (0-4)")
    low: int = Field(description="lowest score on the rubric's scale")
    high: int = Field(description="highest score on the rubric's scale")
    score: int
    justification: str
    prompt_tokens: int
    output_tokens: int


class Verdict(BaseModel):
    """One judge's pairwise comparison of the reference model (a) and another model (b) on one item and seed,
    judged twice with the replies in both orders; `outcome` is from b's side: G (b better), S, B (b worse)."""

    id: str = Field(description="v-<hash of item id, seed, judge, model a, model b>")
    item_id: str
    benchmark: str
    task: str
    character_id: str
    seed: int
    judge: str
    judge_model: str
    model_a: str
    model_b: str
    a_first: str = Field(description="the winner with a's reply shown first: a | b | same")
    b_first: str = Field(description="the winner with b's reply shown first, in model terms: a | b | same")
    outcome: str = Field(description="G, S or B for model b; the orders disagreeing (a flip) counts as S")
    justification_a_first: str
    justification_b_first: str
    prompt_tokens: int
    output_tokens: int
