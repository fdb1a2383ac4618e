"""A small corpus for the ext tests, with a paraphrasing query for three of its rows."""

#: 10 rows; QUERIES[k] paraphrases CORPUS[ANSWERS[k]] and shares few words with it.
CORPUS = [
    "The cat sleeps on the warm windowsill all afternoon.",
    "Slow-cooked tomato sauce needs garlic, basil and patience.",
    "The database server ran out of disk space during the backup.",
    "The night train crosses the snowy mountains before dawn.",
    "A golden retriever fetched the stick from the cold lake.",
    "Freshly baked sourdough bread has a crisp crust.",
    "A memory leak made the web service crash every few hours.",
    "Our ferry to the islands was cancelled because of the storm.",
    "Honey bees communicate the location of flowers by dancing.",
    "The museum in Lisbon is free on the first Sunday of the month.",
]
QUERIES = [
    "Where does the kitten nap during the day?",
    "The storage on our DB machine filled up while backing up.",
    "How do bees tell each other where the blossoms are?",
]
ANSWERS = [0, 2, 8]
