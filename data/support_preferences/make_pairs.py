"""Write data/support_preferences/{train,validation,test}.jsonl from the hand-written blocks below.

    python data/support_preferences/make_pairs.py          # rewrite the three files (deterministic, seed 0)
    python data/support_preferences/make_pairs.py --audit  # print the audit of the files on disk

Every customer situation, reply, flaw and filler sentence below was written for the course. The script
combines them: for each prompt it draws a topic's facts (order ids, amounts, dates, names), one of the
topic's customer messages and asks, and builds the chosen reply and one rejected reply of a named kind.
Splits follow the course's rule (finetune_utils.data: SHA-1 of the id within each kind stratum).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
import string
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
KINDS = ("curt", "wrong_detail", "wrong_format", "padded", "over_promising")
PER_KIND = 72  # 5 kinds x 72 = 360 prompts
SPLITS = ("train", "validation", "test")

NAMES = ["Dana", "Priya", "Tom", "Aisha", "Marek", "Sofia", "Callum", "Mei", "Jonas", "Ruth", "Kwame", "Elif",
         "Hamish", "Noor", "Bea", "Ollie", "Ines", "Ravi", "Greta", "Sam", "Lucia", "Dev", "Fran", "Tariq"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
MONTH_DAYS = [f"{d} {m}" for m in ("March", "April", "May", "June") for d in (3, 6, 9, 12, 14, 17, 20, 23, 26, 28)]


def digits(rng, n):
    return "".join(rng.choice(string.digits) for _ in range(n))


def letters(rng, n):
    return "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(n))


def money(rng, lo, hi):
    return f"£{rng.randint(lo, hi)}.{rng.choice(['00', '49', '99', '50', '95', '20'])}"


# --------------------------------------------------------------------------- topics
# Each topic: facts(rng) -> dict; messages / asks (customer side, {slots}); long (the reply as sentences, the
# last one being the honest next step); short (one sentence with the key fact); steps (numbered steps);
# curt (dismissive one-liners); promise (an over-promise that replaces or follows the next step);
# swap: the fact that a wrong-detail reply gets wrong; about: what the customer asks, for the padding.

TOPICS = {
    "late_delivery": dict(
        facts=lambda rng: dict(product=rng.choice(["Brightcart AirFryer Pro", "Brightcart desk lamp", "Brightcart kettle",
                                                   "Brightcart rice cooker", "Brightcart office chair", "Brightcart hand blender"]),
                               oid=f"BC-{digits(rng, 6)}", day=rng.choice(DAYS), old=rng.choice(MONTH_DAYS)),
        messages=["My {product} (order {oid}) was meant to come on {old} and it still hasn't shown up.",
                  "Order {oid} for a {product} is late. Tracking hasn't moved since {old}.",
                  "Still waiting on the {product} I ordered, ref {oid}. It said delivery by {old}."],
        asks=["Where is it?", "When will it actually arrive?", "Can you find out what's going on?"],
        long=["Sorry for the wait on your {product}.", "Order {oid} was held at the Parcelwise depot and is now out for delivery on {day}.",
              "If it hasn't reached you by the end of {day}, reply here and we'll send a replacement or refund you in full."],
        short=["Order {oid} is with Parcelwise and due on {day}."],
        steps=["Check the new date on the tracking link: order {oid} is due on {day}.",
               "If it hasn't come by the end of {day}, reply to this email.", "We then send a replacement or refund you."],
        curt=["It's with the courier. Wait.", "Check the tracking link.", "Deliveries can be late."],
        promise="I guarantee it will be with you first thing tomorrow morning, whatever the courier says.",
        swap="oid", about="where your parcel is"),
    "refund_status": dict(
        facts=lambda rng: dict(item=rng.choice(["linen shirt", "wool coat", "pair of trainers", "denim jacket", "silk scarf", "rain mac"]),
                               oid=f"VL-{digits(rng, 5)}", amount=money(rng, 19, 149), date=rng.choice(MONTH_DAYS), n=rng.choice([3, 5, 7])),
        messages=["I sent back the {item} from order {oid} ages ago and haven't had my {amount} back.",
                  "Returned a {item} ({oid}) to Velora. Where's my refund of {amount}?",
                  "You got my return of the {item} on order {oid}, but no refund yet."],
        asks=["How long does it take?", "When do I get the money?", "Is something wrong with it?"],
        long=["Thanks for your patience.", "Your return of the {item} (order {oid}) reached our warehouse on {date}, and the refund of {amount} was issued the same day.",
              "Banks take up to {n} working days to show it; if it isn't there after that, reply and we'll trace it."],
        short=["The {amount} refund for order {oid} was issued on {date} and shows within {n} working days."],
        steps=["The return for order {oid} arrived on {date} and {amount} was refunded that day.",
               "Allow up to {n} working days for your bank.", "If nothing shows after that, reply and we'll trace it."],
        curt=["Refunds take time.", "It's been processed. Wait for your bank.", "Ask your bank."],
        promise="I've chased it personally, so it will be in your account within the hour.",
        swap="oid", about="your refund"),
    "damaged_item": dict(
        facts=lambda rng: dict(product=rng.choice(["ceramic planter", "glass vase", "dinner set", "table lamp", "picture frame", "espresso cups"]),
                               oid=f"BC-{digits(rng, 6)}", day=rng.choice(DAYS)),
        messages=["The {product} from order {oid} arrived smashed.", "Opened my {product} today (order {oid}) and it's cracked right through.",
                  "Order {oid}: the {product} came broken, the box was crushed."],
        asks=["What do I do now?", "Can I get a new one?", "Do I have to send it back?"],
        long=["I'm sorry it arrived broken.", "I've sent a replacement {product} for order {oid}, due on {day}, and you don't need to return the damaged one.",
              "If you can, reply with a photo of the box so we can report it to the courier."],
        short=["A replacement {product} for order {oid} arrives on {day}; keep the broken one."],
        steps=["Keep the broken {product}; no return is needed.", "Your replacement for order {oid} arrives on {day}.",
               "Reply with a photo of the box so we can report it to the courier."],
        curt=["Send us a photo.", "Accidents happen in transit.", "Contact the courier."],
        promise="On top of that I've added a £50 voucher and we'll cover any future breakages too.",
        swap="product", about="the damaged item"),
    "double_charge": dict(
        facts=lambda rng: dict(amount=money(rng, 12, 89), card=digits(rng, 4), n=rng.choice([3, 5, 7]), oid=f"BC-{digits(rng, 6)}"),
        messages=["I've been charged {amount} twice for order {oid} on my card ending {card}.",
                  "Two payments of {amount} went out for one order ({oid}).", "Why is order {oid} on my statement twice? {amount} each time, card ending {card}."],
        asks=["Please sort it.", "Will I get one back?", "Is this a mistake?"],
        long=["Thanks for flagging this.", "Only one payment of {amount} for order {oid} was taken; the second line is a pending hold on the card ending {card}.",
              "The hold drops off within {n} working days without you doing anything; if it's still there after that, reply and we'll contact your bank."],
        short=["The second {amount} is a pending hold that disappears within {n} working days."],
        steps=["Only one {amount} payment for order {oid} was taken.", "The second line is a hold that drops off within {n} working days.",
               "If it's still there after that, reply and we'll contact your bank."],
        curt=["That's a hold.", "We only charged once.", "Talk to your bank."],
        promise="I've refunded both payments, so this order is free and you'll see the money back today.",
        swap="amount", about="the double charge"),
    "password_reset": dict(
        facts=lambda rng: dict(app=rng.choice(["Quillo", "Orbitel", "Tessel Bank"]), minutes=rng.choice([10, 15, 30]),
                               email=rng.choice(["a gmail address", "a work email", "an old hotmail address", "a school email"])),
        messages=["The {app} password reset link never arrives. My account is under {email}.",
                  "I can't log in to {app} and the reset email isn't coming through (I used {email}).",
                  "Locked out of {app}. Tried reset three times, nothing in my inbox ({email})."],
        asks=["What now?", "How do I get back in?", "Can you reset it for me?"],
        long=["Sorry you're locked out.", "Reset links for {app} expire after {minutes} minutes and often land in the spam or promotions folder of {email}, so check there first.",
              "If nothing arrives, reply with the account's postcode and we'll verify you and change the email on the account."],
        short=["Check the spam folder of {email}; {app} reset links expire after {minutes} minutes."],
        steps=["Request one new reset link from the {app} login page.", "Check spam and promotions in {email} within {minutes} minutes.",
               "If nothing arrives, reply with the account's postcode so we can verify you."],
        curt=["Use the reset link.", "Check your email.", "We can't see your password."],
        promise="I've disabled the security checks on your account so you'll never be locked out again.",
        swap="app", about="getting back into your account"),
    "cancel_subscription": dict(
        facts=lambda rng: dict(plan=rng.choice(["Quillo Premium", "Quillo Family", "Quillo Basic with Ads"]), date=rng.choice(MONTH_DAYS),
                               price=money(rng, 5, 18)),
        messages=["I want to cancel {plan}. I pay {price} a month.", "How do I stop my {plan} plan? It renews on {date}.",
                  "Please cancel my {plan} before it renews on {date}."],
        asks=["Do I lose access straight away?", "Will I be charged again?", "How do I do it?"],
        long=["No problem.", "Go to Account > Membership > Cancel {plan}; you keep access until {date} and won't be charged the {price} after that.",
              "You'll get a confirmation email, and you can restart any time with the same profile."],
        short=["Cancel {plan} under Account > Membership; access lasts until {date}."],
        steps=["Open Account > Membership.", "Choose Cancel {plan} and confirm.", "You keep access until {date}; the {price} charge stops."],
        curt=["Cancel it in the app.", "It's in your settings.", "Just don't renew."],
        promise="I've also refunded your last three months of {price} as a goodwill gesture.",
        swap="plan", about="cancelling your plan"),
    "train_delay": dict(
        facts=lambda rng: dict(ticket=f"FR-{digits(rng, 4)}-{digits(rng, 4)}", mins=rng.choice([35, 45, 62, 75, 90, 120]),
                               route=rng.choice(["Leeds to York", "Bristol to Cardiff", "Norwich to Ely", "Derby to Sheffield", "Exeter to Plymouth"]),
                               pct=None),
        messages=["My Fernway Rail train from {route} was {mins} minutes late. Ticket {ticket}.",
                  "Ticket {ticket}, {route}, arrived {mins} minutes late.", "Fernway train {route} was delayed by {mins} minutes today (ticket {ticket})."],
        asks=["Can I claim anything?", "What compensation do I get?", "How do I claim?"],
        long=["Sorry about the delay.", "A delay of {mins} minutes on ticket {ticket} qualifies for Delay Repay of {pct} of the fare.",
              "Claim at fernwayrail.co.uk/delay-repay within 28 days with the ticket number; payment follows within 10 working days."],
        short=["Ticket {ticket} gets {pct} of the fare back through Delay Repay."],
        steps=["Go to fernwayrail.co.uk/delay-repay within 28 days.", "Enter ticket {ticket} and the {mins}-minute delay.",
               "You get {pct} of the fare within 10 working days."],
        curt=["Fill in the online form.", "Delays happen.", "See our website."],
        promise="I've arranged a full refund plus free first-class travel for a month.",
        swap="ticket", about="compensation for your delay"),
    "booking_change": dict(
        facts=lambda rng: dict(ref=f"TN-{letters(rng, 6)}", hotel=rng.choice(["Harbour View Inn", "Old Mill Hotel", "Castle Lane B&B", "Riverside Lodge"]),
                               date=rng.choice(MONTH_DAYS), fee=money(rng, 10, 40)),
        messages=["I need to move my Tripnest booking {ref} at the {hotel} to {date}.", "Can booking {ref} ({hotel}) be changed to start {date}?",
                  "Our plans changed. Booking {ref} at the {hotel}, we'd like {date} instead."],
        asks=["Is there a fee?", "How do I change it?", "Can you do it for me?"],
        long=["Happy to help.", "The {hotel} has a room on {date}, and moving booking {ref} costs a change fee of {fee}.",
              "Reply 'yes' and I'll make the change and send the new confirmation."],
        short=["Booking {ref} can move to {date} for a {fee} fee; reply 'yes' to confirm."],
        steps=["Reply 'yes' to this message.", "We move booking {ref} at the {hotel} to {date}.", "The change fee is {fee}; a new confirmation follows."],
        curt=["Change it in the app.", "Bookings are non-refundable.", "Call the hotel."],
        promise="I've waived all fees and upgraded you to a suite for free.",
        swap="date", about="changing your booking"),
    "card_blocked": dict(
        facts=lambda rng: dict(card=digits(rng, 4), shop=rng.choice(["a petrol station", "an online shop abroad", "a supermarket", "a cash machine"]),
                               bank=rng.choice(["Tessel Bank", "Kestrel Pay"])),
        messages=["My {bank} card ending {card} was declined at {shop}.", "{bank} blocked my card ({card}) when I used it at {shop}.",
                  "Card ending {card} stopped working at {shop}, {bank} app says 'frozen'."],
        asks=["Why?", "How do I unblock it?", "Can I use it today?"],
        long=["Sorry for the trouble.", "The payment at {shop} looked unusual, so our fraud check froze the card ending {card}.",
              "Open the {bank} app, go to Cards > Security and tap 'This was me'; the card works again straight away."],
        short=["Tap 'This was me' under Cards > Security in the {bank} app to unfreeze card {card}."],
        steps=["Open the {bank} app.", "Go to Cards > Security.", "Tap 'This was me' for the card ending {card}; it works again at once."],
        curt=["Fraud check.", "Use another card.", "Call the bank."],
        promise="I've switched off fraud checks on your account permanently so it won't happen again.",
        swap="card", about="your blocked card"),
    "phone_fault": dict(
        facts=lambda rng: dict(model=rng.choice(["Lumora X5", "Lumora Nova 5", "Lumora X3", "Lumora Lite 2"]),
                               oid=f"LM-{digits(rng, 6)}", months=rng.choice([2, 4, 7, 9, 11])),
        messages=["My {model} won't charge any more. Bought it {months} months ago, order {oid}.",
                  "{model} (order {oid}) stopped charging after {months} months, cable works on other phones.", "Charging port on my {model} seems dead. Had it {months} months."],
        asks=["Is it covered?", "What can I do?", "Can it be fixed?"],
        long=["Sorry about that.", "At {months} months old your {model} is within its 12-month warranty, so the repair is free.",
              "Book a collection at lumora.co.uk/repair with order {oid}; repairs usually take 5 working days."],
        short=["At {months} months your {model} is under warranty: book a free repair at lumora.co.uk/repair."],
        steps=["At {months} months old it is under warranty: go to lumora.co.uk/repair.", "Enter order {oid} and book a free collection.", "The repair takes about 5 working days."],
        curt=["Try another cable.", "Book a repair.", "Not our problem."],
        promise="I'll send you a brand-new {model} today and you can keep the old one too.",
        swap="months", about="your phone not charging"),
    "return_window": dict(
        facts=lambda rng: dict(item=rng.choice(["knitted jumper", "pair of boots", "leather bag", "summer dress", "winter parka"]),
                               oid=f"VL-{digits(rng, 5)}", days=rng.choice([5, 9, 12, 18, 21]), date=rng.choice(MONTH_DAYS)),
        messages=["Can I still return the {item} from order {oid}? I got it on {date}.", "The {item} (order {oid}) doesn't fit. Delivered {date}.",
                  "Changed my mind about the {item} from {oid}. It came on {date}."],
        asks=["Is it too late?", "How do I send it back?", "Is the return free?"],
        long=["Yes, you can.", "Order {oid} arrived on {date}, so you have {days} days left in the 30-day window, and returns are free.",
              "Print the prepaid label from Orders > Return item and drop the parcel at any Parcelwise point."],
        short=["Yes: {days} days left to return order {oid} for free."],
        steps=["Open Orders > Return item for order {oid}.", "Print the free prepaid label.", "Drop it at a Parcelwise point within {days} days."],
        curt=["Check the returns policy.", "Returns are on the website.", "Too late probably."],
        promise="I'll refund you right now, even before the {item} comes back, and you can keep it if you like.",
        swap="oid", about="returning your order"),
    "broadband_outage": dict(
        facts=lambda rng: dict(acct=f"OB{digits(rng, 7)}", town=rng.choice(["Harrogate", "Stroud", "Ludlow", "Whitby", "Kendal", "Bude"]),
                               time=rng.choice(["6pm", "8pm", "noon", "10am", "midnight"])),
        messages=["Orbitel broadband in {town} has been down since this morning. Account {acct}.",
                  "No internet at all in {town} (account {acct}).", "Internet out again in {town}. Account {acct}, router lights all red."],
        asks=["When will it be back?", "Is it a fault at your end?", "Will I get money off?"],
        long=["Sorry, this is a local fault.", "Engineers are working on a damaged cable in {town}, and service should be back by {time} today.",
              "Outages over 24 hours earn automatic credit on account {acct}; you don't need to claim."],
        short=["A cable fault in {town}; service back by {time} today."],
        steps=["It's a cable fault in {town}, not your router.", "Service should be back by {time} today.", "Credit is automatic on account {acct} after 24 hours."],
        curt=["Restart the router.", "Outages happen.", "Check the status page."],
        promise="I promise it will be back in five minutes and you'll never have an outage again.",
        swap="town", about="the outage"),
}


def fill(text, f):
    return text.format(**f)


def compute_pct(f):
    if f.get("pct") is None and "mins" in f:
        f["pct"] = "25%" if f["mins"] < 60 else "50%" if f["mins"] < 120 else "100%"
    return f


def render(topic, f, form):
    t = TOPICS[topic]
    if form == "long":
        return " ".join(fill(s, f) for s in t["long"])
    if form == "short":
        return fill(t["short"][0], f)
    return "\n".join(f"{i}. {fill(s, f)}" for i, s in enumerate(t["steps"], 1))


def swap(topic, f, rng):
    key = TOPICS[topic]["swap"]
    g = dict(f)
    for _ in range(50):
        new = compute_pct({**TOPICS[topic]["facts"](rng), "pct": None} if key != "pct" else dict(f))
        if key == "pct":
            g["pct"] = rng.choice([p for p in ("10%", "25%", "50%", "100%") if p != f["pct"]])
            return g
        if new[key] != f[key]:
            g[key] = new[key]
            return g
    raise RuntimeError("no other value")


PADDING_OPEN = [
    "Thank you so much for reaching out to us today and for taking the time to write in about {about}.",
    "First of all, I completely understand how frustrating it must be to have to contact us about {about}.",
    "Thanks a lot for getting in touch, and I really appreciate your patience while I looked into {about}.",
    "I'm truly sorry to hear about {about}, and I want you to know that your message matters to us.",
]
PADDING_CLOSE = [
    "Please rest assured that customer satisfaction is always our highest priority and we value you enormously as a customer.",
    "If there is anything else at all that we can help you with, please don't hesitate to get in touch with us again at any time.",
    "We are always working hard behind the scenes to improve our service, and feedback like yours really helps us do that.",
    "Once again, thank you for your patience and understanding, and for choosing us; we hope you have a wonderful rest of your day.",
    "I hope this information has been helpful and has answered your question fully and clearly for you today.",
]
BRIEF_ASKS = ["One sentence please, I'm on my phone.", "Keep it short, just the key fact.", "Short answer only please.",
              "No essay please, one line is fine."]
STEP_ASKS = ["Can you give me the steps as a numbered list?", "Please list what I need to do as numbered steps.",
             "Steps please, numbered, so I can follow along."]
GREETINGS = ["", "", "Hi. ", "Hello. ", "Hey there. ", "Good morning. "]


def one_prompt(topic, kind, rng, idx):
    t = TOPICS[topic]
    f = compute_pct(t["facts"](rng))
    f["name"] = rng.choice(NAMES)
    msg = fill(rng.choice(t["messages"]), f)
    ask = rng.choice(t["asks"])
    # the requested form: kind wrong_format always asks for one; others sometimes do
    if kind == "wrong_format":
        form = "short" if idx % 2 == 0 else "steps"
    else:
        form = rng.choice(["long"] * 4 + ["short", "steps"])
    request = {"long": "", "short": rng.choice(BRIEF_ASKS), "steps": rng.choice(STEP_ASKS)}[form]
    sign = rng.choice(["", "", f" Thanks, {f['name']}", f" - {f['name']}", f" Cheers, {f['name']}"])
    greeting = rng.choice(GREETINGS)
    prompt = (greeting + msg + " " + ask + (" " + request if request else "") + sign).strip()
    chosen = render(topic, f, form)
    if kind == "curt":
        rejected = rng.choice(t["curt"])
    elif kind == "wrong_detail":
        rejected = render(topic, swap(topic, f, rng), form)
    elif kind == "wrong_format":
        if form == "short":
            rejected = render(topic, f, "long")
        else:
            rejected = " ".join(fill(s, f) for s in t["steps"])  # the steps as one paragraph, not numbered
    elif kind == "padded":
        about = t["about"]
        opening = fill(rng.choice(PADDING_OPEN), {"about": about})
        closing = rng.sample(PADDING_CLOSE, 2 if form == "long" else 1)
        rejected = opening + ("\n" if form == "steps" else " ") + chosen + ("\n" if form == "steps" else " ") + " ".join(closing)
    else:  # over_promising
        promise = fill(t["promise"], f)
        if form == "long":
            rejected = " ".join(fill(s, f) for s in t["long"][:-1]) + " " + promise
        elif form == "short":
            rejected = chosen + " " + promise
        else:
            rejected = chosen + f"\n{len(t['steps']) + 1}. " + promise
    assert chosen != rejected
    return prompt, chosen, rejected


def build(seed=0):
    rng = random.Random(seed)
    topics = list(TOPICS)
    rows, seen = [], []
    n = 0
    for kind in KINDS:
        for i in range(PER_KIND):
            topic = topics[(i + KINDS.index(kind) * 5) % len(topics)]
            for _ in range(200):  # redraw until the prompt is no near-duplicate of an earlier one
                prompt, chosen, rejected = one_prompt(topic, kind, rng, i)
                words = set(norm(prompt).split())
                if all(jaccard(words, w) < 0.7 for w in seen):
                    break
            else:
                raise RuntimeError(f"could not draw a distinct prompt for {topic}/{kind}")
            seen.append(words)
            n += 1
            rows.append(dict(id=f"pref-{n:04d}", topic=topic, kind=kind, prompt=prompt, chosen=chosen, rejected=rejected))
    # ids in a shuffled order so that id order tells nothing about the kind
    order = list(range(len(rows)))
    random.Random(seed + 1).shuffle(order)
    for new_n, i in enumerate(order, 1):
        rows[i]["id"] = f"pref-{new_n:04d}"
    return sorted(rows, key=lambda r: r["id"])


def norm(text):
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def jaccard(a, b):
    return len(a & b) / len(a | b) if a | b else 0.0


def assign_splits(rows, test=0.2, validation=0.15):
    """The course's split rule (finetune_utils.data / tests/test_data.py), stratified by kind."""
    strata = {}
    for r in rows:
        strata.setdefault((r["kind"],), []).append(r)
    out = {s: [] for s in SPLITS}
    for stratum in sorted(strata, key=str):
        members = sorted(strata[stratum], key=lambda r: hashlib.sha1(r["id"].encode()).hexdigest())
        n_test, n_val = round(len(members) * test), round(len(members) * validation)
        for i, r in enumerate(members):
            out["test" if i < n_test else "validation" if i < n_test + n_val else "train"].append(r)
    for s in SPLITS:
        out[s].sort(key=lambda r: r["id"])
    return out


def write(rows):
    for split, members in assign_splits(rows).items():
        with open(HERE / f"{split}.jsonl", "w", encoding="utf-8") as fh:
            for r in members:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def read():
    return {s: [json.loads(line) for line in open(HERE / f"{s}.jsonl", encoding="utf-8")] for s in SPLITS}


def audit(splits) -> str:
    """The figures on the data card: sizes, kinds, duplicates, shorter-chosen share, the length baseline."""
    words = lambda t: len(t.split())  # noqa: E731
    lines = ["| split | pairs | chosen words min / median / max | rejected words min / median / max | shorter reply chosen | "
             "\"prefer the longer reply\" accuracy |", "|---|---|---|---|---|---|"]
    import statistics
    for s in SPLITS:
        rows = splits[s]
        c, r = [words(x["chosen"]) for x in rows], [words(x["rejected"]) for x in rows]
        shorter = sum(a < b for a, b in zip(c, r))
        longer_right = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(c, r))
        lines.append(f"| {s} | {len(rows)} | {min(c)} / {statistics.median(c):g} / {max(c)} | {min(r)} / {statistics.median(r):g} / {max(r)} | "
                     f"{shorter} ({100 * shorter / len(rows):.0f}%) | {longer_right / len(rows):.3f} |")
    lines += ["", "| kind | train | validation | test | \"prefer the longer reply\" accuracy (all splits) |", "|---|---|---|---|---|"]
    everything = [x for s in SPLITS for x in splits[s]]
    for kind in KINDS:
        rows = [x for x in everything if x["kind"] == kind]
        acc = sum(1.0 if words(x["chosen"]) > words(x["rejected"]) else 0.5 if words(x["chosen"]) == words(x["rejected"]) else 0.0 for x in rows) / len(rows)
        lines.append(f"| {kind} | " + " | ".join(str(sum(x['kind'] == kind for x in splits[s])) for s in SPLITS) + f" | {acc:.3f} |")
    lines += ["", "| topic | pairs |", "|---|---|"]
    lines += [f"| {t} | {n} |" for t, n in sorted(Counter(x["topic"] for x in everything).items())]
    # duplicates
    prompts = [norm(x["prompt"]) for x in everything]
    exact = len(prompts) - len(set(prompts))
    sets = [set(p.split()) for p in prompts]
    near = sum(1 for a, b in itertools.combinations(sets, 2) if jaccard(a, b) >= 0.7)
    ids = Counter(x["id"] for x in everything)
    cross = sum(1 for s, t in itertools.combinations(SPLITS, 2)
                for p in {norm(x["prompt"]) for x in splits[s]} & {norm(x["prompt"]) for x in splits[t]})
    lines += ["", f"Prompts: {len(everything)}; repeated ids: {sum(v > 1 for v in ids.values())}; exact duplicate prompts (after "
              f"lower-casing and dropping punctuation): {exact}; prompt pairs with word-set Jaccard >= 0.7: {near}; prompts "
              f"shared across splits: {cross}; pairs whose chosen and rejected replies are identical: "
              f"{sum(x['chosen'] == x['rejected'] for x in everything)}."]
    return "\n".join(lines)


if __name__ == "__main__":
    if "--audit" not in sys.argv:
        write(build())
    print(audit(read()))
