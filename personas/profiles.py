"""Persona → character profile: the prompt, the JSON schema, validation, and the system-prompt renderer.

Untrusted persona text is only ever concatenated into messages, never used as a format template.
"""

import json
import re

from pydantic import ValidationError

from personas.errors import Rejected
from personas.language import detect_language
from personas.records import Character, Persona, ProfileFields, stable_id

SYSTEM_TEMPLATE = "profile@1"
LANGUAGE_NAMES = {
    "en": "English",
    "zh": "Simplified Chinese",
    "de": "German",
    "ru": "Russian",
    "fr": "French",
    "es": "Spanish",
    "ja": "Japanese",
    "ko": "Korean",
}


def fill(template: str, **values: str) -> str:
    """Our own `{placeholder}` templates, filled in one pass: an inserted value is never scanned again, so
    untrusted text holding braces stays text (str.format would read braces in model or persona text as fields)."""
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), template)


def profile_schema() -> dict:
    schema = ProfileFields.model_json_schema()
    schema["additionalProperties"] = False
    return schema


INSTRUCTIONS = (
    "You turn a one-line persona into a detailed, concrete character profile for role-play. "
    "Invent a plausible full name, an age, a birthplace and a life story consistent with the persona. "
    "Write every field in the requested language. Answer with the JSON object only."
)
# Few-shot pairs: a base model (the offline default is Gemma 3 270M base) needs to see the task done.
EXAMPLES = [
    (
        "A retired lighthouse keeper who collects shipwreck stories",
        "en",
        {
            "name": "Eamon Gallagher",
            "age": 71,
            "gender": "male",
            "race": "Irish",
            "born_place": "Dingle, County Kerry, Ireland",
            "appearance": "Weathered face, white beard trimmed short, a navy wool sweater with patched elbows.",
            "experience": "Kept the Inishtooskert light for thirty-four years until it was automated in 1998. Since then he has interviewed fishermen's families and filled nine notebooks with wreck stories.",
            "personality": "Patient, dry-humoured, stubborn about facts, tender about the drowned.",
            "speech_style": "Slow, lilting sentences; starts stories with the weather; calls everyone 'lad' or 'girl'.",
            "catchphrases": ["The sea keeps its own ledger.", "Now, here's the thing of it."],
            "relationships": ["widower of Maire", "teaches his granddaughter Siobhan to read charts"],
            "likes": ["strong tea", "storm nights", "old logbooks"],
            "dislikes": ["GPS bores", "people who whistle on boats"],
        },
    ),
    (
        "一位在成都开了三十年茶馆的退休老板娘",
        "zh",
        {
            "name": "刘桂芬",
            "age": 68,
            "gender": "女",
            "race": "汉族",
            "born_place": "四川成都",
            "appearance": "个子不高，短发烫卷，总穿一件蓝底碎花的棉布衫，手腕上戴着玉镯。",
            "experience": "1990年在宽窄巷子附近开了“桂芬茶馆”，三十年间看着老街坊来来去去。去年把茶馆交给儿子，自己每天还去坐一坐。",
            "personality": "热情、爽快、爱打听事，嘴硬心软。",
            "speech_style": "一口成都话，说话快，爱用“巴适”“要得”，喜欢拿茶打比方。",
            "catchphrases": ["莫着急，先喝口茶。", "巴适得板！"],
            "relationships": ["儿子陈建接手了茶馆", "和隔壁修鞋的王师傅是三十年的老朋友"],
            "likes": ["盖碗茶", "川剧变脸", "打麻将"],
            "dislikes": ["奶茶", "说话拐弯抹角的人"],
        },
    ),
]


def _request_text(persona_text: str, language: str) -> str:
    return "Persona: " + persona_text + "\nLanguage: " + LANGUAGE_NAMES.get(language, language)


def profile_messages(persona: Persona, language: str) -> list[dict]:
    """Chat messages asking for `persona`'s profile in `language` (few-shot turns first)."""
    messages = [{"role": "system", "content": INSTRUCTIONS}]
    # The example nearest the question sways a small model most: put the one in the asked language last.
    for text, lang, profile in sorted(EXAMPLES, key=lambda example: example[1] == language):
        messages.append({"role": "user", "content": _request_text(text, lang)})
        messages.append({"role": "assistant", "content": json.dumps(profile, ensure_ascii=False)})
    messages.append({"role": "user", "content": _request_text(persona.text, language)})
    return messages


def parse_profile(text: str, finish_reason: str, language: str) -> ProfileFields:
    if finish_reason == "length":
        raise Rejected("truncated", "the output hit max_tokens")
    try:
        # strict=False: grammars let raw control characters into strings; that is text quality, not syntax.
        data = json.loads(text, strict=False)
    except json.JSONDecodeError as e:
        raise Rejected("invalid_json", f"{e.msg} at column {e.colno}") from None
    try:
        fields = ProfileFields.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        raise Rejected("schema_violation", ".".join(map(str, first["loc"])) + ": " + first["msg"]) from None
    # Seen from Gemma 3 270M: a profile named ",  ", which then played (and was judged) as a character. Checked here,
    # not in the record type, so runs that already hold such a character still load.
    if not re.search(r"[^\W\d_]", fields.name):
        raise Rejected("schema_violation", f"name: {fields.name!r} has no letters")
    written = detect_language(fields.experience + " " + fields.personality)
    if written != language:
        raise Rejected("wrong_language", f"profile written in {written}, asked for {language}")
    return fields


LABELS = {
    "en": (
        "You are {name}. Stay in character: speak as {name} would, never as an AI assistant.",
        [
            "Name",
            "Age",
            "Gender",
            "Race/ethnicity",
            "Born in",
            "Appearance",
            "Experience",
            "Personality",
            "Speech style",
            "Catchphrases",
            "Relationships",
            "Likes",
            "Dislikes",
        ],
    ),
    "zh": (
        "你是{name}。请始终保持角色：像{name}那样说话，绝不要以AI助手的身份回答。",
        [
            "姓名",
            "年龄",
            "性别",
            "民族",
            "出生地",
            "外貌",
            "经历",
            "性格",
            "说话风格",
            "口头禅",
            "人际关系",
            "喜欢",
            "讨厌",
        ],
    ),
    "de": (
        "Du bist {name}. Bleib in der Rolle: sprich wie {name}, niemals wie ein KI-Assistent.",
        [
            "Name",
            "Alter",
            "Geschlecht",
            "Herkunft",
            "Geboren in",
            "Aussehen",
            "Erfahrung",
            "Persönlichkeit",
            "Sprechweise",
            "Redewendungen",
            "Beziehungen",
            "Mag",
            "Mag nicht",
        ],
    ),
    "ru": (
        "Ты — {name}. Оставайся в роли: говори как {name}, никогда как ИИ-ассистент.",
        [
            "Имя",
            "Возраст",
            "Пол",
            "Происхождение",
            "Место рождения",
            "Внешность",
            "Опыт",
            "Характер",
            "Манера речи",
            "Любимые фразы",
            "Отношения",
            "Любит",
            "Не любит",
        ],
    ),
}


def render_system_prompt(fields: ProfileFields, language: str) -> str:
    """The role-play system message. Same text at training and inference: its version is SYSTEM_TEMPLATE."""
    header, labels = LABELS.get(language, LABELS["en"])
    values = [
        fields.name,
        str(fields.age),
        fields.gender,
        fields.race,
        fields.born_place,
        fields.appearance,
        fields.experience,
        fields.personality,
        fields.speech_style,
        "; ".join(fields.catchphrases),
        "; ".join(fields.relationships),
        ", ".join(fields.likes),
        ", ".join(fields.dislikes),
    ]
    lines = [fill(header, name=fields.name), ""]
    lines += [label + ": " + value for label, value in zip(labels, values, strict=False)]
    return "\n".join(lines)


def character(
    persona: Persona, fields: ProfileFields, language: str, model: str, seed: int, attempts: int
) -> Character:
    return Character(
        **fields.model_dump(),
        id=stable_id("c", persona.id, fields.name),
        persona_id=persona.id,
        persona=persona.text,
        language=language,
        system_prompt=render_system_prompt(fields, language),
        system_template=SYSTEM_TEMPLATE,
        model=model,
        seed=seed,
        attempts=attempts,
    )


# Two-character role-play: the user plays a character too — "你是{character}，我是{user}".
USER_LINES = {
    "en": "You are {name}; I am {user}. About me: {about}",
    "zh": "你是{name}，我是{user}。关于我：{about}",
    "de": "Du bist {name}, ich bin {user}. Über mich: {about}",
    "ru": "Ты — {name}, я — {user}. Обо мне: {about}",
}


def render_user_persona(character: Character, user: Character) -> str:
    """The system message's last line when the user plays `user` (template "user@1")."""
    return fill(
        USER_LINES.get(character.language, USER_LINES["en"]), name=character.name, user=user.name, about=user.persona
    )
