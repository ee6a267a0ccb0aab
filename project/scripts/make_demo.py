"""Write the project's demo corpus: English news-style sentences with nested
entities (ORG containing GPE or PERSON, PRODUCT containing ORG, LOC containing
GPE), as span JSONL. Sentences come from templates with varied slot fillers,
so the corpus is small, realistic in shape and reproducible from a seed."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple, TypeVar

import typer
from typing_extensions import Annotated

T = TypeVar("T")


@dataclass(frozen=True)
class Ent:
    """A filler: its text, its label and the entities nested inside it."""

    text: str
    label: str
    inner: Tuple[Ent, ...] = field(default=())

    def spans(self, offset: int) -> List[Tuple[int, int, str]]:
        found = [(offset, offset + len(self.text), self.label)]
        cursor = 0
        for sub in self.inner:
            # Inner entities are located left to right, so repeated words resolve in order.
            pos = self.text.index(sub.text, cursor)
            found.extend(sub.spans(offset + pos))
            cursor = pos + len(sub.text)
        return found


def gpe(text: str) -> Ent:
    return Ent(text, "GPE")


def org(text: str, *inner: Ent) -> Ent:
    return Ent(text, "ORG", inner)


def person(text: str) -> Ent:
    return Ent(text, "PERSON")


FIRST = ["Amara", "Lucas", "Priya", "Kenji", "Sofia", "Mateo", "Hannah", "Tomasz", "Leila",
         "Ewan", "Nadia", "Oluwaseun", "Ingrid", "Rafael", "Mei", "Daniel", "Fatima", "Jonas",
         "Aisha", "Pieter", "Chloe", "Arjun", "Elena", "Kwame", "Yuki", "Marta", "Samuel"]
LAST = ["Okafor", "Moreau", "Raman", "Watanabe", "Lindqvist", "Herrera", "Becker", "Nowak",
        "Haddad", "MacLeod", "Petrova", "Adeyemi", "Johansson", "Costa", "Lin", "Fischer",
        "Rahman", "Keller", "Mensah", "de Vries", "Dubois", "Iyer", "Rossi", "Boateng", "Sato"]
PLACES = ["Cambridge", "Lagos", "Nairobi", "Lisbon", "Osaka", "Toronto", "Chile", "Norway",
          "Vietnam", "Peru", "Manchester", "Pune", "Seville", "Auckland", "Ghana", "Poland",
          "Montreal", "Bavaria", "Kenya", "Scotland", "Brazil", "Denmark", "Bangalore", "Quebec"]

INSTITUTIONS = [
    org("University of Cambridge", gpe("Cambridge")),
    org("University of Edinburgh", gpe("Edinburgh")),
    org("University of Toronto", gpe("Toronto")),
    org("University of Melbourne", gpe("Melbourne")),
    org("Technical University of Munich", gpe("Munich")),
    org("National University of Singapore", gpe("Singapore")),
    org("University of California, Berkeley", gpe("California"), gpe("Berkeley")),
    org("Bank of England", gpe("England")),
    org("Bank of Japan", gpe("Japan")),
    org("Bank of Canada", gpe("Canada")),
    org("Central Bank of Ireland", gpe("Ireland")),
    org("Reserve Bank of Australia", gpe("Australia")),
    org("London School of Economics", gpe("London")),
    org("Stanford University School of Medicine", org("Stanford University")),
    org("Alan Turing Institute", person("Alan Turing")),
    org("Francis Crick Institute", person("Francis Crick")),
    org("Max Planck Institute for Chemistry", person("Max Planck")),
    org("Nelson Mandela Foundation", person("Nelson Mandela")),
    org("Museum of London", gpe("London")),
    org("Port of Rotterdam", gpe("Rotterdam")),
    org("World Health Organization"),
    org("European Space Agency"),
    org("Red Cross"),
]
COMPANIES = [org(n) for n in ["Siemens", "Unilever", "Toyota", "Samsung", "Nokia", "Philips",
                               "Airbus", "Boeing", "Volvo", "Sony", "Ericsson", "Maersk"]]
COMPANIES += [org("Bank of America", gpe("America")), org("Air New Zealand", gpe("New Zealand")),
              org("Tata Motors", org("Tata")), org("Deutsche Bahn")]
EXCHANGES = [
    org("New York Stock Exchange", gpe("New York")),
    org("Tokyo Stock Exchange", gpe("Tokyo")),
    org("London Stock Exchange", gpe("London")),
    org("Johannesburg Stock Exchange", gpe("Johannesburg")),
]
PRODUCTS = [
    Ent("Toyota Corolla", "PRODUCT", (org("Toyota"),)),
    Ent("Samsung Galaxy S23", "PRODUCT", (org("Samsung"),)),
    Ent("Nokia 3310", "PRODUCT", (org("Nokia"),)),
    Ent("Boeing 787 Dreamliner", "PRODUCT", (org("Boeing"),)),
    Ent("Airbus A320", "PRODUCT", (org("Airbus"),)),
    Ent("Sony PlayStation 5", "PRODUCT", (org("Sony"),)),
    Ent("Volvo XC90", "PRODUCT", (org("Volvo"),)),
    Ent("Philips Hue", "PRODUCT", (org("Philips"),)),
    Ent("Kindle Paperwhite", "PRODUCT"),
    Ent("Raspberry Pi 4", "PRODUCT"),
]
LOCATIONS = [
    Ent("Gulf of Mexico", "LOC", (gpe("Mexico"),)),
    Ent("Lake Geneva", "LOC", (gpe("Geneva"),)),
    Ent("Sea of Japan", "LOC", (gpe("Japan"),)),
    Ent("Gulf of Finland", "LOC", (gpe("Finland"),)),
    Ent("Strait of Gibraltar", "LOC", (gpe("Gibraltar"),)),
    Ent("Mount Kenya", "LOC", (gpe("Kenya"),)),
    Ent("Rocky Mountains", "LOC"),
    Ent("Sahara", "LOC"),
    Ent("Danube", "LOC"),
    Ent("North Sea", "LOC"),
]

TEMPLATES = [
    "{PERSON} joined the {INST} as a research fellow in {YEAR}.",
    "The {INST} said on Monday that it would review its plans for {GPE}.",
    "Shares in {COMPANY} fell sharply on the {EXCHANGE} after the launch of the {PRODUCT} was delayed.",
    "{PERSON}, an economist at the {INST}, said inflation in {GPE} would ease by spring.",
    "A new ferry route across the {LOC} will connect {GPE} and {GPE} from next summer.",
    "Researchers at the {INST} tested the {PRODUCT} on roads near {GPE}.",
    "{PERSON} bought a second-hand {PRODUCT} before moving to {GPE}.",
    "The conference, hosted by the {INST}, drew delegates from {GPE}, {GPE} and {GPE}.",
    "Fishing boats in the {LOC} were told to return to port as the storm approached.",
    "{PERSON} and {PERSON} co-authored the report for the {INST}.",
    "The {PRODUCT} sold out within hours in {GPE}, according to {COMPANY}.",
    "{PERSON} studied physics at the {INST} before working for {COMPANY}.",
    "{COMPANY} opened a new office in {GPE} to be closer to the {INST}.",
    "Speaking in {GPE}, {PERSON} praised the work of the {INST}.",
    "Water levels in the {LOC} have dropped to their lowest point since {YEAR}.",
    "Engineers from {COMPANY} said the {PRODUCT} would be cheaper to maintain.",
    "{PERSON} was appointed director of the {INST} last month.",
    "Students from the {INST} and the {INST} met in the final in {GPE}.",
    "Tourism around the {LOC} grew by {NUM} percent last year, officials in {GPE} said.",
    "A spokesperson for {COMPANY} declined to comment on reports about the {PRODUCT}.",
    "Prices on the {EXCHANGE} recovered after the {INST} signalled a pause.",
    "{PERSON} grew up in {GPE} and now lectures at the {INST}.",
    "In {YEAR}, {COMPANY} listed its shares on the {EXCHANGE}.",
    "The {INST} has lent its archive to a museum in {GPE}.",
    "{PERSON} reviewed the {PRODUCT} and called it the best of the year.",
    "Trading on the {EXCHANGE} was halted for {NUM} minutes on Friday.",
    "Volunteers from the {INST} cleaned beaches along the {LOC}.",
    "The meeting in {GPE} ended without an agreement.",
    "Nobody expected the vote to be so close.",
    "Interest rates were left unchanged for the {ORDINAL} month in a row.",
]
ORDINALS = ["second", "third", "fourth", "fifth", "sixth"]


def pick(pool: List[T], rng: random.Random, held_out: bool) -> T:
    """Every fifth filler is kept out of training, so dev measures more than recall
    of memorised names: it also holds people, places and bodies never trained on."""
    if not held_out:
        pool = [item for i, item in enumerate(pool) if i % 5 != 4]
    return rng.choice(pool)


def fill(template: str, rng: random.Random, held_out: bool = False) -> Dict[str, object]:
    """Render one template, recording every entity span (nested ones included)."""
    text = ""
    spans: List[Tuple[int, int, str]] = []
    rest = template
    while "{" in rest:
        before, _, after = rest.partition("{")
        slot, _, rest = after.partition("}")
        text += before
        filler: object
        if slot == "PERSON":
            filler = person(f"{pick(FIRST, rng, held_out)} {pick(LAST, rng, held_out)}")
        elif slot == "GPE":
            filler = gpe(pick(PLACES, rng, held_out))
        elif slot == "INST":
            filler = pick(INSTITUTIONS, rng, held_out)
        elif slot == "COMPANY":
            filler = pick(COMPANIES, rng, held_out)
        elif slot == "EXCHANGE":
            filler = pick(EXCHANGES, rng, held_out)
        elif slot == "PRODUCT":
            filler = pick(PRODUCTS, rng, held_out)
        elif slot == "LOC":
            filler = pick(LOCATIONS, rng, held_out)
        elif slot == "YEAR":
            filler = str(rng.randint(1975, 2023))
        elif slot == "NUM":
            filler = str(rng.randint(2, 40))
        elif slot == "ORDINAL":
            filler = rng.choice(ORDINALS)
        else:
            raise ValueError(f"unknown slot {slot!r} in {template!r}")
        if isinstance(filler, Ent):
            spans.extend(filler.spans(len(text)))
            text += filler.text
        else:
            text += str(filler)
    text += rest
    entities = [
        {"start": s, "end": e, "label": label, "text": text[s:e]} for s, e, label in sorted(spans)
    ]
    return {"text": text, "entities": entities}


def make_corpus(
    n: int, seed: int, exclude: set[str] | None = None, held_out: bool = False
) -> List[Dict[str, object]]:
    rng = random.Random(seed)
    seen = set(exclude or ())
    records: List[Dict[str, object]] = []
    attempts = 0
    while len(records) < n:
        attempts += 1
        if attempts > n * 100:
            raise ValueError(f"could not write {n} distinct sentences")
        record = fill(rng.choice(TEMPLATES), rng, held_out)
        # Distinct sentences, and none shared between train and dev.
        if record["text"] in seen:
            continue
        seen.add(str(record["text"]))
        records.append(record)
    return records


def write_jsonl(records: List[Dict[str, object]], path: Path, prefix: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf8") as file_:
        for i, record in enumerate(records):
            file_.write(json.dumps({"id": f"{prefix}-{i}", **record}, ensure_ascii=False) + "\n")


def main(
    output_dir: Annotated[Path, typer.Argument(help="Folder for train.jsonl and dev.jsonl")],
    n_train: Annotated[int, typer.Option(help="Training sentences")] = 400,
    n_dev: Annotated[int, typer.Option(help="Development sentences")] = 100,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
) -> None:
    """Write the demo corpus (nested English entities) as span JSONL."""
    train = make_corpus(n_train, seed)
    dev = make_corpus(
        n_dev, seed + 1, exclude={str(r["text"]) for r in train}, held_out=True
    )
    write_jsonl(train, output_dir / "train.jsonl", "demo-train")
    write_jsonl(dev, output_dir / "dev.jsonl", "demo-dev")
    n_ents = sum(len(r["entities"]) for r in train + dev)  # type: ignore[arg-type]
    print(f"Wrote {len(train)} train and {len(dev)} dev sentences ({n_ents} entities) to {output_dir}")


if __name__ == "__main__":
    typer.run(main)
