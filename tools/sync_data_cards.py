"""Regenerate the statistics and baseline figures in every data card (data/<name>/README.md).

    python tools/sync_data_cards.py          # rewrite the generated sections
    python tools/sync_data_cards.py --check  # exit 1 if a card is out of date (a test runs this)
    python tools/sync_data_cards.py --print  # print the baseline table for every classification data set

Each card has two generated sections, between <!-- stats:start/end --> and
<!-- baselines:start/end --> markers; everything else in a card is written by hand.
"""

from __future__ import annotations

import importlib.util
import re
import statistics
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from finetune_utils import baselines, data  # noqa: E402


def table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def words(text) -> int:
    return len(text.split())


def length_row(values) -> str:
    return f"{min(values)} / {statistics.median(values):g} / {max(values)}"


def stats(name: str) -> str:
    loaded, labels = data.load(name)
    splits = list(loaded)
    # plain Python lists per column (datasets 5 returns Column objects)
    ds = {s: {c: list(loaded[s][c]) for c in loaded[s].column_names} | {"_n": len(loaded[s])} for s in splits}
    out = []
    if name in ("support_sentiment", "legal_topics", "support_answers"):
        rows = [[labels[k]] + [Counter(ds[s]["label"])[k] for s in splits] for k in range(len(labels))]
        rows.append(["**total**"] + [ds[s]['_n'] for s in splits])
        out.append(table(["label", *splits], rows))
    if name == "support_sentiment":
        out.append(table(
            ["split", "words min / median / max", "hard cases", "chat / email", "domains"],
            [[s, length_row([words(t) for t in ds[s]["text"]]),
              f"{sum(ds[s]['hard'])} ({100 * sum(ds[s]['hard']) / ds[s]['_n']:.0f}%)",
              f"{ds[s]['channel'].count('chat')} / {ds[s]['channel'].count('email')}",
              len(set(ds[s]["domain"]))] for s in splits],
        ))
        hard = Counter(t for s in splits for t in ds[s]["hard_type"] if t)
        out.append(table(["hard_type", "examples"], sorted(hard.items(), key=lambda kv: -kv[1])))
        domains = Counter(d for s in splits for d in ds[s]["domain"])
        out.append(table(["domain", "examples"], sorted(domains.items())))
        small, _ = data.load(name, subset="startup")
        c = Counter(small["train"]["label"])
        out.append(f"Startup subset (`subset=\"startup\"`): {len(small['train'])} training examples "
                   f"({', '.join(f'{labels[k]} {c[k]}' for k in range(len(labels)))}); validation and test unchanged.")
    if name == "legal_topics":
        from finetune_utils import models

        tok = models.load_encoder_tokenizer()
        rows = []
        for s in splits:
            n_tokens = [len(ids) for ids in tok(ds[s]["text"])["input_ids"]]
            rows.append([s, length_row([words(t) for t in ds[s]["text"]]), length_row(n_tokens),
                         sum(n > 128 for n in n_tokens), sum(n > 256 for n in n_tokens)])
        out.append(table(["split", "words min / median / max", "MiniLM tokens min / median / max",
                          "> 128 tokens", "> 256 tokens"], rows))
        doc = Counter(d for s in splits for d in ds[s]["doc_type"])
        out.append(table(["doc_type", "excerpts"], sorted(doc.items(), key=lambda kv: -kv[1])))
    if name == "support_answers":
        rows = [[s, len(set(ds[s]["group"])), length_row([words(t) for t in ds[s]["question"]]),
                 length_row([words(t) for t in ds[s]["answer"]])] for s in splits]
        out.append(table(["split", "questions (groups)", "question words", "answer words"], rows))
        neg = Counter(t for s in splits for t in ds[s]["negative_type"] if t)
        topics = Counter(t for s in splits for t in ds[s]["topic"])
        out.append(table(["negative_type", "pairs"], sorted(neg.items())))
        out.append(table(["topic", "pairs"], sorted(topics.items())))
    if name == "support_entities":
        entity_labels = data.SCHEMAS[name].label_names
        rows = []
        for s in splits:
            c = Counter(entity_labels[e["label"]] for ents in ds[s]["entities"] for e in ents)
            rows.append([s, ds[s]['_n'], length_row([words(t) for t in ds[s]["text"]])] + [c[l] for l in entity_labels])
        out.append(table(["split", "messages", "words min / median / max", *entity_labels], rows))
        out.append("BIO tags: " + ", ".join(f"`{t}`" for t in labels))
    if name == "instructions":
        rows = []
        for k, task in enumerate(labels):
            rows.append([task] + [Counter(ds[s]["task"])[k] for s in splits])
        rows.append(["**total**"] + [ds[s]['_n'] for s in splits])
        out.append(table(["task", *splits], rows))
        checkable = sum(c in ("json", "label") for s in splits for c in ds[s]["check"])
        total = sum(ds[s]['_n'] for s in splits)
        out.append(f"Checkable responses (valid JSON with the fixed schema, or one label from a fixed set): "
                   f"{checkable} of {total} ({100 * checkable / total:.0f}%).")
    if name == "support_preferences":   # the audit the generator prints: sizes, kinds, duplicates, the length baseline
        spec = importlib.util.spec_from_file_location("make_pairs", data.folder(name) / "make_pairs.py")
        make_pairs = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(make_pairs)
        out.append(make_pairs.audit(make_pairs.read()))
    return "\n\n".join(out)


def baselines_section(name: str, table_rows) -> str:
    if name not in table_rows:
        return "Not a classification set: no bag-of-words baseline applies."
    r = table_rows[name]
    m, t = r["majority"], r["tfidf_logreg"]
    return (
        table(
            ["model (test split, n=%d)" % r["n_test"], "macro-F1", "accuracy"],
            [["majority class", f"{m['macro_f1']:.3f}", f"{m['accuracy']:.3f}"],
             [f"TF-IDF (1-2 grams) + logistic regression (C={r['C']:g}, chosen on validation)",
              f"{t['macro_f1']:.3f}", f"{t['accuracy']:.3f}"]],
        )
        + "\n\nComputed by `python tools/sync_data_cards.py` (`--print` prints the table for every data set)."
    )


def render(text: str, section: str, body: str) -> str:
    pattern = re.compile(rf"<!-- {section}:start -->.*?<!-- {section}:end -->", flags=re.S)
    if not pattern.search(text):
        raise SystemExit(f"card lacks <!-- {section}:start --> ... <!-- {section}:end -->")
    return pattern.sub(lambda _: f"<!-- {section}:start -->\n{body}\n<!-- {section}:end -->", text)


def inputs(name, split):
    """What the baselines read: the text, or for sentence pairs both texts joined."""
    if name == "support_answers":
        return baselines.pair_texts(split["question"], split["answer"])
    return split["text"]


def baseline_table() -> dict:
    """Majority class and TF-IDF + logistic regression (C chosen on validation) on each classification test split."""
    rows = {}
    for name in data.names():
        if data.SCHEMAS[name].task not in ("sequence", "pair"):
            continue
        ds, _ = data.load(name)
        train, val, test = ds["train"], ds["validation"], ds["test"]
        model = baselines.tfidf_logreg(inputs(name, train), train["label"], inputs(name, val), val["label"])
        rows[name] = {
            "majority": baselines.majority(train["label"], test["label"]),
            "tfidf_logreg": baselines.scores(test["label"], model.predict(inputs(name, test))),
            "C": model.C_,
            "n_test": len(test),
        }
    return rows


def print_table(table_rows) -> None:
    print(f"{'data set':<20} {'test n':>6}  {'majority F1':>11} {'acc':>6}  {'TF-IDF+LR F1':>12} {'acc':>6}  C")
    for name, r in table_rows.items():
        m, t = r["majority"], r["tfidf_logreg"]
        print(f"{name:<20} {r['n_test']:>6}  {m['macro_f1']:>11.3f} {m['accuracy']:>6.3f}  "
              f"{t['macro_f1']:>12.3f} {t['accuracy']:>6.3f}  {r['C']:g}")


def main(argv) -> int:
    table_rows = baseline_table()
    if "--print" in argv:
        print_table(table_rows)
        return 0
    stale = []
    for name in data.names():
        card = data.folder(name) / "README.md"
        text = card.read_text()
        new = render(render(text, "stats", stats(name)), "baselines", baselines_section(name, table_rows))
        if new != text:
            stale.append(name)
            if "--check" not in argv:
                card.write_text(new)
    if "--check" in argv:
        if stale:
            print("out of date (run `python tools/sync_data_cards.py`):", ", ".join(stale))
            return 1
        print("data cards are in sync")
        return 0
    print("updated:", ", ".join(stale) if stale else "nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
