"""Sentences for ``pinnacle demo``: generated from templates over a few topics.

The sentences are varied enough that a semantic search finds the right topic, and the
same ``seed`` always gives the same rows, so the demo is repeatable.

Example:
    >>> rows = demo_rows(12)
    >>> len(rows), sorted(rows[0])
    (12, ['_id', 'text', 'topic'])
"""

from __future__ import annotations

import itertools
import random
import string
import typing as t

__all__ = ["TOPICS", "MAX_ROWS", "demo_rows", "LIVE_ROWS", "QUERIES"]

#: The most rows :func:`demo_rows` makes (the templates give a few more distinct sentences).
MAX_ROWS = 1500

# topic -> (templates, slot values). Each template draws its slots from the topic's table.
_TOPICS: dict[str, tuple[list[str], dict[str, list[str]]]] = {
    "cooking": (
        [
            "Roast the {veg} with {spice} until the edges turn golden.",
            "This {dish} recipe needs {ingredient} and about {minutes} minutes on a low heat.",
            "My grandmother always served {dish} with fresh {ingredient} on the side.",
            "Let the {dish} rest before slicing so it stays {texture}.",
            "A pinch of {spice} makes the {dish} taste far more {texture}.",
        ],
        {
            "veg": ["carrots", "potatoes", "peppers", "aubergines", "beetroot", "squash", "onions"],
            "spice": ["cumin", "smoked paprika", "black pepper", "nutmeg", "chilli flakes", "oregano"],
            "dish": ["lasagne", "bread dough", "lentil soup", "risotto", "pie crust", "curry", "omelette"],
            "ingredient": ["garlic", "parmesan", "coriander", "yoghurt", "butter", "lemon zest"],
            "minutes": ["twenty", "forty", "ninety", "fifteen"],
            "texture": ["moist", "crisp", "tender", "rich", "fragrant"],
        },
    ),
    "space": (
        [
            "The {probe} sent back new images of {body} and its {feature}.",
            "Astronomers detected {phenomenon} near {body} last {period}.",
            "A rocket carrying a {payload} will launch towards {body} next {period}.",
            "Scientists still cannot explain the {feature} seen on {body}.",
            "Through a {instrument} you can watch {phenomenon} on a clear night.",
        ],
        {
            "probe": ["orbiter", "space probe", "lander", "rover", "space telescope"],
            "body": ["Mars", "Jupiter", "Saturn's moon Titan", "the Moon", "Venus", "a distant comet", "Europa"],
            "feature": ["ice caps", "dust storms", "craters", "rings", "volcanoes", "frozen oceans"],
            "phenomenon": ["a burst of radio waves", "a faint meteor shower", "a solar flare", "an eclipse"],
            "period": ["month", "year", "week", "winter"],
            "payload": ["weather satellite", "small rover", "crew capsule", "seismometer"],
            "instrument": ["backyard telescope", "pair of binoculars", "radio dish"],
        },
    ),
    "sport": (
        [
            "The {team} won the {sport} final after {event}.",
            "Our {position} scored twice in the second half of the {sport} match.",
            "The coach says the {team} must improve their {skill} before the {competition}.",
            "Thousands of fans watched the {sport} game despite {weather}.",
            "After {event}, the {team} dropped to third place in the {competition}.",
        ],
        {
            "team": ["home side", "visiting team", "national squad", "youth team", "underdogs"],
            "sport": ["football", "basketball", "rugby", "hockey", "volleyball", "tennis"],
            "event": ["a penalty shoot-out", "extra time", "a late comeback", "a red card", "a controversial call"],
            "position": ["striker", "captain", "goalkeeper", "point guard", "winger"],
            "skill": ["defence", "passing", "fitness", "serving", "set pieces"],
            "competition": ["league", "cup", "championship", "tournament"],
            "weather": ["heavy rain", "freezing wind", "a heatwave", "thick fog"],
        },
    ),
    "computing": (
        [
            "The {language} service crashed because of {bug}.",
            "Use {tool} to track down {bug} in the code.",
            "Our {system} needs {fix} before the next release.",
            "After the upgrade, the {system} became slow due to {bug}.",
            "The team rewrote the {component} in {language} to fix {bug}.",
        ],
        {
            "language": ["Python", "Rust", "Java", "Go", "C++", "TypeScript"],
            "bug": ["a memory leak", "a race condition", "an off-by-one error", "a null pointer", "a deadlock", "a slow query"],
            "tool": ["a debugger", "a profiler", "the unit tests", "logging", "a code review"],
            "system": ["database server", "web backend", "build pipeline", "cache layer", "message queue"],
            "fix": ["an index on the orders table", "a security patch", "more unit tests", "a connection pool"],
            "component": ["parser", "scheduler", "network stack", "storage engine", "API gateway"],
        },
    ),
    "health": (
        [
            "Doctors recommend {habit} to lower the risk of {condition}.",
            "{symptom} can be an early sign of {condition}.",
            "A study found that {habit} improves {benefit} in older adults.",
            "If {symptom} lasts more than a week, see your doctor about {condition}.",
            "Regular {habit} helps with {benefit} and reduces {symptom}.",
        ],
        {
            "habit": ["daily walking", "eating more vegetables", "getting enough sleep", "drinking water", "stretching", "cutting down on sugar"],
            "condition": ["heart disease", "diabetes", "high blood pressure", "migraine", "back pain", "anaemia"],
            "symptom": ["Persistent headaches", "Constant tiredness", "Shortness of breath", "Dizziness", "Joint pain"],
            "benefit": ["memory", "mood", "sleep quality", "balance", "blood sugar control"],
        },
    ),
    "travel": (
        [
            "The night train from {city} to {city2} crosses {landscape}.",
            "Pack {item} if you visit {city} in {season}.",
            "We rented a {vehicle} and drove through {landscape} outside {city}.",
            "The cheapest flights to {city} are in {season}, when the {sight} is quiet.",
            "From our hotel in {city} we could walk to the {sight}.",
        ],
        {
            "city": ["Lisbon", "Kyoto", "Oslo", "Marrakesh", "Vancouver", "Buenos Aires", "Prague"],
            "city2": ["Vienna", "Madrid", "Stockholm", "Milan", "Budapest"],
            "landscape": ["snowy mountains", "olive groves", "desert valleys", "pine forests", "vineyards"],
            "item": ["a warm coat", "sunscreen", "an umbrella", "comfortable shoes", "a power adapter"],
            "season": ["winter", "spring", "early autumn", "midsummer"],
            "vehicle": ["camper van", "small car", "motorbike", "pair of bicycles"],
            "sight": ["old town", "harbour", "cathedral", "night market", "botanical garden"],
        },
    ),
}

TOPICS: tuple[str, ...] = tuple(_TOPICS)

#: Rows inserted while the listener is live (each is embedded before ``insert()`` returns).
LIVE_ROWS: list[dict[str, str]] = [
    {"_id": "live-1", "topic": "space", "text": "A new space telescope photographed a cluster of galaxies billions of light years away."},
    {"_id": "live-2", "topic": "cooking", "text": "Simmer ripe tomatoes with basil and olive oil for a quick pasta sauce."},
    {"_id": "live-3", "topic": "computing", "text": "The nightly backup job failed because the disk on the database server was full."},
    {"_id": "live-4", "topic": "travel", "text": "Our ferry to the islands was cancelled, so we spent an extra night by the harbour."},
    {"_id": "live-5", "topic": "health", "text": "Ten minutes of breathing exercises before bed helped her fall asleep faster."},
]

#: Searches the demo runs: (query text, optional filter on the source table).
QUERIES: list[tuple[str, t.Optional[dict[str, str]]]] = [
    ("how long should I cook the vegetables in the oven?", None),
    ("pictures of faraway galaxies", None),
    ("why is my program using more and more memory", {"topic": "computing"}),
]


def _fill(template: str, slots: dict[str, list[str]], rng: random.Random) -> str:
    names = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    return template.format(**{name: rng.choice(slots[name]) for name in names})


def demo_rows(n: int = 300, seed: int = 0) -> list[dict[str, str]]:
    """``n`` distinct rows ``{"_id": "<topic>-NNN", "topic", "text"}``, topics interleaved.

    Args:
        n: How many rows, at most :data:`MAX_ROWS`.
        seed: The same seed gives the same rows.

    Raises:
        ValueError: ``n`` is more than :data:`MAX_ROWS`.
    """
    if not 0 <= n <= MAX_ROWS:
        raise ValueError(f"The demo makes between 0 and {MAX_ROWS} rows, not {n}.")
    rng = random.Random(seed)
    seen: set[str] = set()
    counts = dict.fromkeys(TOPICS, 0)
    rows: list[dict[str, str]] = []
    misses = 0
    for topic in itertools.cycle(TOPICS):
        if len(rows) >= n:
            break
        templates, slots = _TOPICS[topic]
        text = _fill(rng.choice(templates), slots, rng)
        if text in seen:
            misses += 1
            if misses > 50 * max(n, 100):
                raise ValueError(f"The demo templates make fewer than {n} distinct sentences; ask for fewer rows.")
            continue
        seen.add(text)
        counts[topic] += 1
        rows.append({"_id": f"{topic}-{counts[topic]:03d}", "topic": topic, "text": text})
    return rows
