"""The character split and the leakage check: held-out and PersonaGym characters never reach the training splits,
whether under their own id, under another id with the same name, or re-worded (MiniLM cosine ≥ 0.9).

Ordinary characters are real Persona Hub seeds with hand-written profiles of the kind the profiles stage writes;
the evaluation set is the real PersonaGym development half.
"""

import json
import shutil
from collections import Counter

import datasets
import pytest

from personas.errors import DramatisError
from personas.profiles import character
from personas.records import Character, ProfileFields
from personas.seeds import load_seeds, persona
from personas.split import SPLITS, assign_splits, find_leaks
from synth.dataset import write_dataset
from synth.pipeline import split_stage
from synth.recipe import load_recipe
from synth.records import Dialogue, Message
from synth.runner import load_records, run_stage, shard_paths
from synth.shards import read_shard
from tests.helpers import SEEDS_5K, SHARED

PERSONAGYM = SHARED / "heldout" / "personagym_dev" / "personagym_dev.jsonl"
SEED_LINES = {n: json.loads(line)["persona"] for n, line in enumerate(SEEDS_5K.read_text().splitlines(), start=1)}

# Persona Hub line → the profile fields that enter `profile_text` (name, age, gender, race, born_place, experience,
# personality), written the way the profiles stage writes them.
REAL = {
    2: (
        "Darnell Brooks",
        54,
        "male",
        "African American",
        "Chicago, Illinois, USA",
        "Covered the Chicago Bulls for the Tribune through both three-peats and sat down with Michael Jordan "
        "eleven times. Now writes a weekly column and is finishing a book of locker-room stories.",
        "Gregarious, sharp-eared, loyal to his sources, allergic to hype.",
    ),
    3: (
        "Walter Kowalski",
        98,
        "male",
        "Polish American",
        "Hamtramck, Michigan, USA",
        "Left school at sixteen to work the Dodge assembly line, then landed at Omaha Beach with the 29th Infantry. "
        "Ran a hardware store for forty years and still fixes his neighbours' lawnmowers.",
        "Plain-spoken, modest about the war, stubborn, quick to laugh.",
    ),
    4: (
        "Harriet Pemberton",
        61,
        "female",
        "English",
        "Bath, Somerset, England",
        "Has published nine historical novels set in Georgian England, researched in county archives. "
        "Writes every morning with her two greyhounds asleep under the desk.",
        "Curious, meticulous, gently sardonic, softhearted about animals.",
    ),
    5: (
        "Rajesh Iyer",
        57,
        "male",
        "Indian",
        "Chennai, Tamil Nadu, India",
        "Joined the Indian Patent Office in 1993 and has examined thousands of chemical and pharmaceutical "
        "applications. Trains junior examiners in drafting objections.",
        "Methodical, patient, exacting about wording, dry wit.",
    ),
    6: (
        "Viktor Lindqvist",
        36,
        "male",
        "Swedish",
        "Gothenburg, Sweden",
        "Plays rhythm guitar in a thrash band that tours Scandinavian clubs. "
        "Trains at a boxing gym four mornings a week and has fought six amateur bouts.",
        "Intense, disciplined, loyal to his bandmates, surprisingly gentle offstage.",
    ),
    7: (
        "Kai Nakamura",
        16,
        "male",
        "Japanese American",
        "Portland, Oregon, USA",
        "Runs a retro-computing Discord and restored his uncle's 1989 modem to dial into a hobbyist BBS. "
        "Reads old FidoNet archives late at night.",
        "Enthusiastic, nerdy, talks fast, eager to learn from old-timers.",
    ),
    12: (
        "Dolores Whitaker",
        73,
        "female",
        "White American",
        "Pueblo, Colorado, USA",
        "Ran Whitaker's Market on the east side of Pueblo for thirty-eight years and refused to stock beer or liquor. "
        "Her father's drinking shaped her views.",
        "Frugal, principled, neighbourly, blunt about vice.",
    ),
    16: (
        "Céline Moreau",
        45,
        "female",
        "French",
        "Lyon, France",
        "Teaches French and Spanish at a lycée and grades essays full of machine-translated idioms. "
        "Keeps a folder of the worst translation errors to show her classes.",
        "Passionate, exasperated, witty, demanding.",
    ),
    17: (
        "Gary Lindgren",
        59,
        "male",
        "Scandinavian American",
        "Fargo, North Dakota, USA",
        "Farms 6,000 acres of soybeans and wheat and lost his Chinese buyers in the 2018 trade war. "
        "Runs winter meetings for neighbours on export markets and crop insurance.",
        "Practical, generous, weather-watching, skeptical of Washington.",
    ),
    18: (
        "Liam O'Connor",
        32,
        "male",
        "Irish Australian",
        "Melbourne, Victoria, Australia",
        "Leads stadium tours of the MCG and Marvel Stadium and takes visitors to their first AFL match. "
        "Played amateur footy until a knee reconstruction.",
        "Cheerful, chatty, loves a yarn, a one-eyed Collingwood supporter.",
    ),
    21: (
        "Aisha Rahman",
        42,
        "female",
        "Bangladeshi British",
        "Leeds, England",
        "Runs a dermatology clinic in Leeds and recommends a local maker's handmade olive oil soap to patients "
        "with eczema. Has published on contact dermatitis from fragranced products.",
        "Warm, evidence-minded, reassuring, impatient with skincare fads.",
    ),
    24: (
        "Margaret Hollis",
        66,
        "female",
        "English",
        "Cheltenham, Gloucestershire, England",
        "Has bred Afghan Hounds under the Silverwind prefix for thirty years and shows at Crufts. "
        "Now learning about DNA panels for hereditary eye disease.",
        "Fastidious, proud, anxious about her dogs' health, generous with advice.",
    ),
    29: (
        "Elena Petrova",
        39,
        "female",
        "Russian",
        "Novosibirsk, Russia",
        "Designs radiation shielding and thermal systems for deep-space probes at a European space lab. "
        "Dreams of a mission to study the environment of a black hole.",
        "Visionary, rigorous, competitive, playful with metaphors.",
    ),
    30: (
        "Samuel Okafor",
        48,
        "male",
        "Nigerian",
        "Enugu, Nigeria",
        "Researches neutron cross sections for small modular reactors at a national laboratory. "
        "Lectures on how fission can power developing economies.",
        "Calm, precise, optimistic, loves a good debate.",
    ),
    33: (
        "Bonnie Schaefer",
        52,
        "female",
        "White American",
        "Erlanger, Kentucky, USA",
        "Owns Second Glance Vintage on Dixie Highway and has never lived anywhere but Erlanger. "
        "Knows the history of every old building on the street.",
        "Nostalgic, friendly, gossipy, fiercely local.",
    ),
    35: (
        "Herbert Lang",
        77,
        "male",
        "German American",
        "Milwaukee, Wisconsin, USA",
        "Kept the ledgers of a brewery supply company by hand for fifty years. "
        "His granddaughter just installed time-tracking software on his computer.",
        "Meticulous, suspicious of shortcuts, courteous, slow to trust.",
    ),
    39: (
        "Mei Lin Chen",
        45,
        "female",
        "Chinese",
        "Hangzhou, China",
        "Studies T-cell responses to influenza and tuberculosis at a research institute. "
        "Mentors a lab of eight graduate students.",
        "Analytical, focused, quietly humorous, demanding of data.",
    ),
    42: (
        "Dale Jorgensen",
        63,
        "male",
        "White American",
        "Sioux Falls, South Dakota, USA",
        "Coached Summit League basketball for twenty-five seasons, with three conference titles and plenty of "
        "losing years. Follows every game from his recliner now.",
        "Gruff, loyal, competitive, sentimental about his players.",
    ),
    43: (
        "Tomás Herrera",
        41,
        "male",
        "Mexican American",
        "San Antonio, Texas, USA",
        "Has rehabilitated over two hundred Achilles tendon ruptures, many of them weekend basketball players. "
        "Designs progressive loading programs.",
        "Encouraging, firm, data-driven, jokes to distract patients from pain.",
    ),
    54: (
        "Sophie Turner",
        29,
        "female",
        "English",
        "Stoke-on-Trent, England",
        "Teaches Year 5 at a state primary school and tutors in the evenings to pay her rent. "
        "Buys classroom supplies out of her own pocket.",
        "Dedicated, tired, funny, increasingly political about pay.",
    ),
    56: (
        "Javier Martínez",
        34,
        "male",
        "Spanish",
        "Almería, Andalusia, Spain",
        "Rides the desert roads of Tabernas every weekend and organises a local cycling club. "
        "Works as a bike mechanic in the city centre.",
        "Energetic, sociable, sunburnt, obsessive about gear ratios.",
    ),
    57: (
        "Karim Al-Bazzaz",
        55,
        "male",
        "Iraqi",
        "Baghdad, Iraq",
        "Historian of twentieth-century Iraqi politics who wrote a study of the 1958 revolution. "
        "Teaches at a university in London and collects old Baghdad newspapers.",
        "Scholarly, nostalgic, careful with sources, warm in conversation.",
    ),
}


def make(text: str, source: str, line: int, name, age, gender, race, born_place, experience, personality):
    # Fields outside `profile_text` do not enter the check; they only have to be valid.
    fields = ProfileFields(
        name=name,
        age=age,
        gender=gender,
        race=race,
        born_place=born_place,
        appearance="Medium height, dressed for work.",
        experience=experience,
        personality=personality,
        speech_style="Direct and friendly.",
        catchphrases=["Let's get to it."],
        relationships=["close to family"],
        likes=["good coffee"],
        dislikes=["rudeness"],
    )
    return character(persona(text, source, line), fields, "en", "gemma3-270m", 1, 1)


def real(line: int):
    return make(SEED_LINES[line], str(SEEDS_5K), line, *REAL[line])


HELDOUT = (6, 21, 42, 56)  # Persona Hub lines of the held-out characters in the find_leaks tests
VALIDATION = (4, 29, 39)


def reworded_musician(name: str):
    """Held-out line 6 (Viktor Lindqvist) re-worded: persona cosine 0.917; profile 0.733 under a new name, 0.959
    under his."""
    return make(
        "A heavy-metal guitarist who is also passionate about boxing.",
        "planted",
        1,
        name,
        35,
        "male",
        "Swedish",
        "Gothenburg, Sweden",
        "Plays rhythm guitar in a thrash metal band touring clubs across Scandinavia. Boxes at a "
        "gym four mornings a week and has had six amateur fights.",
        "Intense, disciplined, loyal to his band, gentle off stage.",
    )


PERSONAGYM_PROFILES = {
    3: (
        "Hiroshi Tanaka",
        70,
        "male",
        "Japanese",
        "Tokyo, Japan",
        "Practised internal medicine at a Setagaya clinic for forty years. "
        "Spends his weekends hiking the trails of Mount Takao and the Okutama hills.",
        "Gentle, disciplined, curious, a patient listener.",
    ),
    63: (
        "Stanisław Wójcik",
        87,
        "male",
        "Polish",
        "Kraków, Poland",
        "Carried messages for the Home Army as a boy during the war. "
        "Now visits schools across Poland to tell his story and speaks for reconciliation.",
        "Grave, gentle, insistent on remembering, hopeful.",
    ),
}


@pytest.fixture(scope="module")
def characters():
    return {line: real(line) for line in REAL}


@pytest.fixture(scope="module")
def eval_personas():
    return load_seeds(str(PERSONAGYM), "persona")


def split_at(characters, heldout=HELDOUT):
    return [c for line, c in characters.items() if line not in heldout], [characters[line] for line in heldout]


def triples(leaks):
    return [(leak.character_id, leak.reason, leak.duplicate_of) for leak in leaks]


# --- find_leaks: held-out characters under another id --------------------------------------------------------------


@pytest.mark.parametrize(
    "name,reason", [("Erik Sandberg", "heldout_near_duplicate"), ("Viktor Lindqvist", "heldout_same_name")]
)
def test_a_reworded_heldout_character_is_caught_and_real_characters_are_not(characters, name, reason):
    train, heldout = split_at(characters)
    plant = reworded_musician(name)
    leaks = find_leaks(train + [plant], heldout, [])
    # Exactly the plant: none of the 18 distinct real training characters is taken for one of the 4 held-out ones.
    assert triples(leaks) == [(plant.id, reason, characters[6].id)]
    assert plant.id != characters[6].id and leaks[0].detail


def test_a_heldout_profile_copied_under_another_name_is_caught(characters):
    train, heldout = split_at(characters)
    copy = make(
        "A veteran Summit League basketball coach who has seen plenty of wins and losses "
        "and follows the season closely",
        "planted",
        1,
        "Rick Halvorsen",
        *REAL[42][1:],
    )
    assert triples(find_leaks(train + [copy], heldout, [])) == [(copy.id, "heldout_near_duplicate", characters[42].id)]


SAME_NAME_SIMILAR = (
    "A bike mechanic from southern Spain who spends his weekends racing through the desert",
    35,
    "male",
    "Spanish",
    "Almería, Spain",
    "Repairs bicycles in a shop near the Almería cathedral and races on the desert roads around "
    "Tabernas on weekends. Started a cycling club for local riders.",
    "Sociable, energetic, obsessive about his bikes.",
)


@pytest.mark.parametrize("name", ["Javier Martínez", "  javier  MARTÍNEZ "])
def test_same_name_with_a_similar_profile_is_the_heldout_character(characters, name):
    # Persona cosine 0.61 and profile 0.85 to held-out Javier Martínez: only the name rule (profile ≥ 0.5) catches him.
    train, heldout = split_at(characters)
    text, *fields = SAME_NAME_SIMILAR
    plant = make(text, "planted", 1, name, *fields)
    leaks = find_leaks(train + [plant], heldout, [])
    assert triples(leaks) == [(plant.id, "heldout_same_name", characters[56].id)]
    assert "profile similarity" in leaks[0].detail


def test_same_name_with_a_different_life_is_another_person(characters):
    # A retired chemistry teacher from Puebla who shares a common name: profile cosine 0.44 < 0.5.
    train, heldout = split_at(characters)
    namesake = make(
        SEED_LINES[2473],
        str(SEEDS_5K),
        2473,
        "Javier Martínez",
        71,
        "male",
        "Mexican",
        "Puebla, Mexico",
        "Taught chemistry at a Puebla high school for thirty-five years and ran its darkroom club. "
        "Still develops black-and-white film in his garage.",
        "Patient, exacting, fond of long explanations, proud of his former students.",
    )
    assert find_leaks(train + [namesake], heldout, []) == []


def test_distinct_chinese_characters_are_not_near_duplicates():
    seeds = {p.source_line: p for p in load_seeds(str(SEEDS_5K))}

    def zh(line, name, age, race, born_place, experience, personality):
        fields = ProfileFields(
            name=name,
            age=age,
            gender="男",
            race=race,
            born_place=born_place,
            appearance="中等身材，穿着整洁。",
            experience=experience,
            personality=personality,
            speech_style="说话直接。",
            catchphrases=["说干就干。"],
            relationships=["和家人关系很好"],
            likes=["喝茶"],
            dislikes=["无礼的人"],
        )
        return character(seeds[line], fields, "zh", "gemma3-270m", 1, 1)

    reporter = zh(
        1551,
        "奥拉·哈根",
        44,
        "挪威人",
        "挪威利勒哈默尔",
        "在挪威国家广播公司做了十五年体育记者，专门报道冬季两项世界杯。每个冬天都跟着比赛跑遍欧洲的雪场。",
        "冷静、严谨、对数据着迷，私下里很幽默。",
    )
    comedian = zh(
        1689,
        "王小乐",
        31,
        "汉族",
        "天津",
        "在北京的小剧场讲了八年脱口秀，也演过几部情景喜剧。喜欢把生活里的尴尬事写成段子，让观众笑完之后还能想一想。",
        "乐观、敏感、爱观察人，嘴快心软。",
    )
    assert find_leaks([comedian], [reporter], []) == []


# --- find_leaks: PersonaGym evaluation personas ---------------------------------------------------------------------


def personagym_plant(eval_personas, line: int, text: str | None = None):
    return make(text or eval_personas[line - 1].text, "planted", 1, *PERSONAGYM_PROFILES[line])


@pytest.mark.parametrize(
    "line,text",
    [
        (3, None),  # verbatim
        (3, "A 70-year-old physician from Tokyo who loves to go hiking"),  # cosine 0.962
        (
            63,
            "An 87-year-old Polish World War II veteran who shares stories of his experiences and advocates for peace",
        ),  # 0.971
    ],
)
def test_a_personagym_persona_in_training_is_caught(characters, eval_personas, line, text):
    plant = personagym_plant(eval_personas, line, text)
    leaks = find_leaks(list(characters.values()) + [plant], [], eval_personas)
    assert [(leak.character_id, leak.reason) for leak in leaks] == [(plant.id, "eval_near_duplicate")]
    assert leaks[0].duplicate_of == f"{PERSONAGYM}:{line}" and leaks[0].duplicate_of.endswith(
        f"personagym_dev.jsonl:{line}"
    )


def test_real_persona_hub_characters_are_not_flagged_against_personagym(characters, eval_personas):
    # Highest cosine of these 22 to the 100 PersonaGym personas is 0.59 (and 0.68 over all 5,000 Persona Hub seeds).
    assert len(eval_personas) == 100
    assert find_leaks(list(characters.values()), [], eval_personas) == []


# --- split_stage ---------------------------------------------------------------------------------------------------


def test_split_stage_drops_planted_leaks_as_rejects_and_splits_deterministically(characters, eval_personas, tmp_path):
    musician, doctor = reworded_musician("Erik Sandberg"), personagym_plant(eval_personas, 3)
    chars = list(characters.values()) + [musician, doctor]
    fractions = {"train": 0.7, "validation": 0.15, "heldout": 0.15}
    # The first recipe seed that holds Viktor out and keeps both plants in training (assign_splits is pure: no
    # embedding).
    seed = next(
        s
        for s in range(1000)
        if (lambda a: a[characters[6].id] == "heldout" and a[musician.id] != "heldout" and a[doctor.id] != "heldout")(
            assign_splits(chars, s, fractions)
        )
    )
    recipe = load_recipe(None, [f"seed={seed}", "chunk_size=8", *(f"split.{k}={v}" for k, v in fractions.items())])

    def run(inputs, folder):
        manifest = run_stage(split_stage(recipe, inputs, eval_personas), inputs, folder, {})
        rejects = [row for path in shard_paths(folder, rejects=True) for row in read_shard(path).to_pylist()]
        return manifest, load_records(folder, Character), rejects

    manifest, kept, rejects = run(chars, tmp_path / "a")
    assert sorted((r["id"], r["stage"], r["reason"], r["duplicate_of"]) for r in rejects) == sorted(
        [
            (musician.id, "split", "heldout_near_duplicate", characters[6].id),
            (doctor.id, "split", "eval_near_duplicate", f"{PERSONAGYM}:3"),
        ]
    )
    assert {Character.model_validate_json(r["record"]).id for r in rejects} == {musician.id, doctor.id}
    assert {c.id for c in kept} == {c.id for c in characters.values()}
    counts = Counter(c.split for c in kept)
    assert set(counts) == set(SPLITS) and counts["heldout"] == round(len(chars) * 0.15)
    assert {k: manifest["counters"][f"split_{k}"] for k in SPLITS} == dict(counts)
    assert (
        manifest["counters"]["dropped_heldout_near_duplicate"]
        == manifest["counters"]["dropped_eval_near_duplicate"]
        == 1
    )
    assert manifest["counters"]["kept"] == len(kept) == len(chars) - 2
    # Same seed, input in another order, another folder: the same characters in the same splits, the same rejects.
    _, kept_again, rejects_again = run(chars[::-1], tmp_path / "b")
    assert {c.id: c.split for c in kept_again} == {c.id: c.split for c in kept}
    assert sorted(r["id"] for r in rejects_again) == sorted(r["id"] for r in rejects)


# --- write_dataset -------------------------------------------------------------------------------------------------

TASKS = [
    json.loads(line)
    for line in (SHARED / "instructions" / "self_instruct_seed_tasks.jsonl").read_text().splitlines()[:4]
]


def dialogue(c: Character, split: str, k: int) -> Dialogue:
    task = TASKS[k % len(TASKS)]
    user = (task["instruction"] + "\n" + task["instances"][0]["input"]).strip()
    messages = [
        Message(role="system", content=c.system_prompt),
        Message(role="user", content=user),
        Message(role="assistant", content=task["instances"][0]["output"]),
    ]
    return Dialogue(
        id=f"d-{c.id}-{split}-{k}",
        messages=messages,
        character_id=c.id,
        character_name=c.name,
        mode="R",
        split=split,
        prompt_id=f"q-{task['id']}",
        prompt_source="self_instruct_seed_tasks.jsonl",
        prompt_source_id=task["id"],
        turns=1,
        language=c.language,
        system_template=c.system_template,
        model=c.model,
        seed=k,
        requests=1,
        prompt_tokens=300,
        output_tokens=60,
    )


@pytest.fixture(scope="module")
def placed(characters):
    """The real characters with their splits, and two dialogues each in their split."""
    split = {
        line: "heldout" if line in HELDOUT else "validation" if line in VALIDATION else "train" for line in characters
    }
    chars = [c.model_copy(update={"split": split[line]}) for line, c in characters.items()]
    return chars, [dialogue(c, c.split, k) for c in chars for k in range(2)]


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def clean_dataset(placed, eval_personas, tmp_path_factory):
    chars, rows = placed
    folder = tmp_path_factory.mktemp("clean") / "dataset"
    write_dataset(folder, rows, chars, eval_personas, shard_rows=5, info={"name": "leakage-test"})
    return folder


def test_a_clean_dataset_loads_with_datasets_in_three_splits(placed, clean_dataset, tmp_path):
    rows, folder = placed[1], clean_dataset
    expected = Counter(d.split for d in rows)
    loaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))
    assert set(loaded) == set(SPLITS)
    by_id = {d.id: d for d in rows}
    for split in SPLITS:
        assert loaded[split].num_rows == expected[split]
        assert sorted(loaded[split]["id"]) == sorted(d.id for d in rows if d.split == split)
        first = loaded[split][0]
        assert first["messages"] == [m.model_dump() for m in by_id[first["id"]].messages]
        assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant"]
    info = json.loads((folder / "dataset_info.json").read_text())
    assert {s: info["splits"][s]["rows"] for s in SPLITS} == dict(expected)
    assert all(
        len(info["splits"][s]["files"]) == -(-expected[s] // 5)
        and all((folder / f).is_file() for f in info["splits"][s]["files"])
        for s in SPLITS
    )
    assert (
        info["leakage"]["overlap"] == 0 and info["leakage"]["eval_personas"] == 100 and info["name"] == "leakage-test"
    )
    assert info["leakage"]["heldout_characters"] == len(HELDOUT)
    assert [p.name for p in folder.parent.iterdir()] == ["dataset"]  # no staging or .old folder left


def leaking(case, placed, eval_personas):
    """(characters, dialogues, words the refusal must name) for one way a training split can leak."""
    chars, rows = placed
    held = next(c for c in chars if c.split == "heldout")
    if case == "heldout_character_train_row":
        return chars, rows + [dialogue(held, "train", 7)], [held.id]
    if (
        case == "heldout_character_validation_row_only"
    ):  # no held-out rows of its own: its character record says heldout
        return chars, [d for d in rows if d.character_id != held.id] + [dialogue(held, "validation", 7)], [held.id]
    plant = {
        "near_duplicate_train": reworded_musician("Erik Sandberg"),
        "near_duplicate_validation": reworded_musician("Erik Sandberg"),
        "personagym_train": personagym_plant(eval_personas, 3),
    }[case]
    split = "validation" if case.endswith("validation") else "train"
    plant = plant.model_copy(update={"split": split})
    reason = "eval_near_duplicate" if case.startswith("personagym") else "heldout_near_duplicate"
    return chars + [plant], rows + [dialogue(plant, split, k) for k in range(2)], [plant.id, reason]


@pytest.mark.parametrize(
    "case",
    [
        "heldout_character_train_row",
        "heldout_character_validation_row_only",
        "near_duplicate_train",
        "near_duplicate_validation",
        "personagym_train",
    ],
)
def test_a_leaking_training_split_is_refused_and_the_previous_dataset_stays(
    placed, eval_personas, clean_dataset, tmp_path, case
):
    chars, rows, words = leaking(case, placed, eval_personas)
    with pytest.raises(DramatisError, match="leakage") as e:
        write_dataset(tmp_path / "fresh", rows, chars, eval_personas)
    assert all(w in str(e.value) for w in words)
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a staging folder
    folder = tmp_path / "dataset"
    shutil.copytree(clean_dataset, folder)  # the previous run's good dataset
    before = snapshot(folder)
    with pytest.raises(DramatisError, match="leakage"):
        write_dataset(folder, rows, chars, eval_personas)
    assert snapshot(folder) == before and sorted(p.name for p in tmp_path.iterdir()) == ["dataset"]
    loaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))
    assert {s: loaded[s].num_rows for s in SPLITS} == dict(Counter(d.split for d in placed[1]))


@pytest.mark.parametrize("split", ["test", "", "Train"])
def test_a_dialogue_with_an_unknown_split_is_refused(placed, eval_personas, tmp_path, split):
    chars, rows = placed
    bad = rows[0].model_copy(update={"split": split})
    with pytest.raises(DramatisError, match=f"unknown split '{split}'"):
        write_dataset(tmp_path / "dataset", rows[1:] + [bad], chars, eval_personas)
    assert list(tmp_path.iterdir()) == []
