"""The generator's prompts: rewrite (R), generate (G), the user simulator, and turn translation — per language.

These are the *data-making* prompts, not the training format: a training row's system message is the
character's rendered profile (`personas.profiles.render_system_prompt`), the same text used at inference.
The shared parts come first (instructions, few-shot turns, then the profile), so one character's
requests share a long prefix that vLLM's automatic prefix caching computes once.
Untrusted names and texts are only concatenated or `str.replace`d in, never used as format templates.
"""

import json

from personas.profiles import EXAMPLES, LANGUAGE_NAMES, fill, render_system_prompt
from personas.records import Character, ProfileFields

TEXT = {
    "en": {
        "G": "You write role-play data. Given a character profile and a conversation, write the character's next reply: "
        "in their voice, from their life and knowledge, in their speech style, answering what the user said. "
        'Never say you are an AI or a language model, never open with "As a ...", no assistant phrases.',
        "R": "You write role-play data. Given a character profile, a conversation and a reference answer, rewrite the "
        "reference answer as the character's reply: the character's voice and manner, but every fact, number, "
        'list item and code block of the reference kept. Never say you are an AI, never open with "As a ...".',
        "simulate": "You play the user chatting with the character described. Write the user's next message: short and "
        "natural, one question or remark that carries the conversation on.",
        "translate": "Translate the message into the language asked. Keep names, numbers and code unchanged.",
        "json": "Answer with the JSON object only.",
        "profile": "Character profile",
        "conversation": "Conversation so far",
        "user": "User",
        "reference": "Reference answer (keep every fact, number and code block)",
        "user_is": "The user plays",
        "ask_reply": "Write {name}'s next reply in {language}.",
        "ask_user": "Write the user's next message in {language}.",
        "cues": "Put a short action cue in parentheses into the message, e.g. (laughs).",
        "message": "Message",
        "ask_translate": "Translate into {language}.",
    },
    "zh": {
        "G": "你在编写角色扮演数据。根据角色档案和对话，写出这个角色的下一句回复：用角色的口吻、经历和知识、说话风格来回应用户。"
        "绝不说自己是AI或语言模型，不要以“作为一个……”开头，不要说助手式的套话。",
        "R": "你在编写角色扮演数据。根据角色档案、对话和参考答案，把参考答案改写成这个角色的回复：换成角色的口吻和风格，"
        "但参考答案里的每个事实、数字、列表项和代码块都要保留。绝不说自己是AI，不要以“作为一个……”开头。",
        "simulate": "你扮演和这个角色聊天的用户。写出用户的下一句话：简短自然，一个问题或一句话，让对话继续下去。",
        "translate": "把这条消息翻译成要求的语言。人名、数字和代码保持不变。",
        "json": "只回答JSON对象。",
        "profile": "角色档案",
        "conversation": "目前的对话",
        "user": "用户",
        "reference": "参考答案（保留所有事实、数字和代码块）",
        "user_is": "用户扮演",
        "ask_reply": "用{language}写出{name}的下一句回复。",
        "ask_user": "用{language}写出用户的下一句话。",
        "cues": "在话里加一个括号里的动作或语气提示，例如（笑）。",
        "message": "消息",
        "ask_translate": "翻译成{language}。",
    },
    "de": {
        "G": "Du schreibst Rollenspieldaten. Schreibe zu Charakterprofil und Gespräch die nächste Antwort der Figur: in "
        "ihrer Stimme, aus ihrem Leben und Wissen, in ihrer Sprechweise. Sage nie, dass du eine KI bist, beginne nie "
        'mit "Als ...", keine Assistenten-Floskeln.',
        "R": "Du schreibst Rollenspieldaten. Schreibe die Referenzantwort als Antwort der Figur um: ihre Stimme und Art, "
        "aber jede Tatsache, Zahl, jeder Listenpunkt und Codeblock bleibt erhalten. Sage nie, dass du eine KI bist.",
        "simulate": "Du spielst den Nutzer im Gespräch mit der Figur. Schreibe die nächste Nachricht des Nutzers: kurz, "
        "natürlich, eine Frage oder Bemerkung, die das Gespräch weiterführt.",
        "translate": "Übersetze die Nachricht in die verlangte Sprache. Namen, Zahlen und Code bleiben unverändert.",
        "json": "Antworte nur mit dem JSON-Objekt.",
        "profile": "Charakterprofil",
        "conversation": "Bisheriges Gespräch",
        "user": "Nutzer",
        "reference": "Referenzantwort (alle Fakten, Zahlen und Codeblöcke behalten)",
        "user_is": "Der Nutzer spielt",
        "ask_reply": "Schreibe die nächste Antwort von {name} auf {language}.",
        "ask_user": "Schreibe die nächste Nachricht des Nutzers auf {language}.",
        "cues": "Füge eine kurze Regieanweisung in Klammern ein, z. B. (lacht).",
        "message": "Nachricht",
        "ask_translate": "Übersetze ins {language}.",
    },
    "ru": {
        "G": "Ты пишешь данные для ролевой игры. По профилю персонажа и диалогу напиши следующую реплику персонажа: его "
        'голосом, из его жизни и знаний, в его манере речи. Никогда не говори, что ты ИИ, не начинай с "Как ...", '
        "без фраз ассистента.",
        "R": "Ты пишешь данные для ролевой игры. Перепиши эталонный ответ как реплику персонажа: его голос и манера, но "
        "каждый факт, число, пункт списка и блок кода сохранены. Никогда не говори, что ты ИИ.",
        "simulate": "Ты играешь пользователя в разговоре с персонажем. Напиши следующее сообщение пользователя: коротко, "
        "естественно, один вопрос или реплика, продолжающая разговор.",
        "translate": "Переведи сообщение на нужный язык. Имена, числа и код не меняй.",
        "json": "Ответь только JSON-объектом.",
        "profile": "Профиль персонажа",
        "conversation": "Диалог до сих пор",
        "user": "Пользователь",
        "reference": "Эталонный ответ (сохрани все факты, числа и код)",
        "user_is": "Пользователь играет",
        "ask_reply": "Напиши следующую реплику {name} на языке: {language}.",
        "ask_user": "Напиши следующее сообщение пользователя на языке: {language}.",
        "cues": "Добавь короткую ремарку в скобках, например (смеётся).",
        "message": "Сообщение",
        "ask_translate": "Переведи на язык: {language}.",
    },
}
LANGUAGE_NATIVE = {"en": "English", "zh": "中文", "de": "Deutsch", "ru": "русский"}

# Few-shot turns per language: the small offline model writes usable data only after seeing it done.
SHOTS = {
    "en": {
        "question": "What's the best way to learn to swim as an adult?",
        "G": "Now, here's the thing of it: the water doesn't care how old you are. Find a calm pool, a patient teacher, "
        "and go every week without fail. Float first, lad, and the strokes come after.",
        "task": "List three ways to save money on food.",
        "reference": "1. Plan meals for the week. 2. Buy rice and beans in bulk. 3. Cook at home 5 days a week.",
        "R": "Three things my Maire taught me, and the sea keeps its own ledger on waste: 1. Plan meals for the week. "
        "2. Buy rice and beans in bulk. 3. Cook at home 5 days a week.",
        "user": "Did you ever go out to sea yourself in a storm?",
    },
    "zh": {
        "question": "怎么才能睡个好觉？",
        "G": "莫着急，先喝口茶。睡前莫看手机，泡个脚，心里头的事放一放，第二天再说。我开茶馆三十年，睡得最香的都是心宽的人。",
        "task": "列出三种节约用水的方法。",
        "reference": "1. 洗澡时间控制在5分钟以内。2. 用洗菜水浇花。3. 及时修好漏水的水龙头。",
        "R": "要得，听我说，水和茶一样金贵：1. 洗澡时间控制在5分钟以内。2. 用洗菜水浇花。3. 及时修好漏水的水龙头。",
        "user": "那您年轻的时候也这么会过日子吗？",
    },
}
TRANSLATE_SHOT = (
    "Which fruit has more vitamin C, an orange or a kiwi?",
    "zh",
    "橙子和猕猴桃，哪种水果的维生素C更多？",
)
# What a reply must not copy: a small base model often returns the example answer instead of its own.
EXAMPLE_TEXTS = "\n".join(
    [s[k] for s in SHOTS.values() for k in ("G", "R", "user")] + [TRANSLATE_SHOT[0], TRANSLATE_SHOT[2]]
)


def text_schema(max_chars: int) -> dict:
    """One string field: the grammar closes it within `max_chars`, so no reply runs into max_tokens."""
    return {
        "type": "object",
        "properties": {"text": {"type": "string", "minLength": 1, "maxLength": max_chars}},
        "required": ["text"],
        "additionalProperties": False,
    }


def _answer(text: str) -> str:
    return json.dumps({"text": text}, ensure_ascii=False)


def _labels(language: str) -> dict:
    return TEXT.get(language, TEXT["en"])


def _fill(template: str, name: str, language: str) -> str:
    return fill(template, language=LANGUAGE_NATIVE.get(language, LANGUAGE_NAMES.get(language, language)), name=name)


def transcript(turns: list[dict], name: str, language: str) -> str:
    t = _labels(language)
    return "\n".join((t["user"] if m["role"] == "user" else name) + ": " + m["content"] for m in turns)


def _brief(user: Character | None, language: str) -> str:
    return "" if user is None else "\n\n" + _labels(language)["user_is"] + ": " + user.name + " — " + user.persona


def _request(
    language: str,
    profile: str,
    turns: list[dict],
    name: str,
    ask: str,
    *,
    user: Character | None = None,
    reference: str = "",
    cues: bool = False,
) -> str:
    t = _labels(language)
    parts = [t["profile"] + ":\n" + profile + _brief(user, language)]
    if turns:
        parts.append(t["conversation"] + ":\n" + transcript(turns, name, language))
    if reference:
        parts.append(t["reference"] + ":\n" + reference)
    parts.append(_fill(ask, name, language) + (" " + t["cues"] if cues else ""))
    return "\n\n".join(parts)


def _example_profile(language: str) -> tuple[str, str]:
    text, lang, fields = next(e for e in EXAMPLES if e[1] == language)
    return render_system_prompt(ProfileFields.model_validate(fields), lang), fields["name"]


def _shots(kind: str, language: str) -> list[dict]:
    """Few-shot turns, the example in the asked language last (it sways a small model most)."""
    messages = []
    for lang in sorted(SHOTS, key=lambda code: code == language):
        shot, (profile, name) = SHOTS[lang], _example_profile(lang)
        t = _labels(lang)
        if kind == "user":
            turns = [{"role": "user", "content": shot["question"]}, {"role": "assistant", "content": shot["G"]}]
            ask, reference, answer = t["ask_user"], "", shot["user"]
        elif kind == "R":
            turns, ask, reference, answer = (
                [{"role": "user", "content": shot["task"]}],
                t["ask_reply"],
                shot["reference"],
                shot["R"],
            )
        else:
            turns, ask, reference, answer = (
                [{"role": "user", "content": shot["question"]}],
                t["ask_reply"],
                "",
                shot["G"],
            )
        messages.append({"role": "user", "content": _request(lang, profile, turns, name, ask, reference=reference)})
        messages.append({"role": "assistant", "content": _answer(answer)})
    return messages


def reply_messages(
    character: Character,
    turns: list[dict],
    *,
    mode: str,
    reference: str = "",
    user: Character | None = None,
    cues: bool = False,
) -> list[dict]:
    """Ask for the character's next reply (G), or the reference rewritten in character (R)."""
    lang, t = character.language, _labels(character.language)
    system = {"role": "system", "content": t[mode] + " " + t["json"]}
    ask = _request(
        lang,
        character.system_prompt,
        turns,
        character.name,
        t["ask_reply"],
        user=user,
        reference=reference if mode == "R" else "",
        cues=cues,
    )
    return [system, *_shots(mode, lang), {"role": "user", "content": ask}]


def user_messages(
    character: Character, turns: list[dict], *, user: Character | None = None, cues: bool = False
) -> list[dict]:
    """Ask the user simulator for the next user message (playing `user` when given)."""
    lang, t = character.language, _labels(character.language)
    system = {"role": "system", "content": t["simulate"] + " " + t["json"]}
    ask = _request(lang, character.system_prompt, turns, character.name, t["ask_user"], user=user, cues=cues)
    return [system, *_shots("user", lang), {"role": "user", "content": ask}]


def translate_messages(text: str, language: str) -> list[dict]:
    t = _labels(language)
    source, lang, target = TRANSLATE_SHOT
    return [
        {"role": "system", "content": t["translate"] + " " + t["json"]},
        {"role": "user", "content": t["message"] + ":\n" + source + "\n\n" + _fill(t["ask_translate"], "", lang)},
        {"role": "assistant", "content": _answer(target)},
        {"role": "user", "content": t["message"] + ":\n" + text + "\n\n" + _fill(t["ask_translate"], "", language)},
    ]
