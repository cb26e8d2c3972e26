#!/usr/bin/env python3
"""Peer side of `cargo bench -p app --bench convert`.

Converts a VQAv2 raw set to ViLT Arrow tables the way the reference's `write_vqa.py` goes about
it: whole annotation files in dicts, every split's rows (image bytes included) in one pandas
DataFrame, one core, `pa.Table.from_pandas` then `RecordBatchFileWriter`, an unseeded shuffle of
the image list, both the `_fix` and the original answer variants, and `trainable_val`/`rest_val`
cut from val read back through pandas. Written for this benchmark (not the reference's code).

Usage: PYTHONPATH=$(scripts/setup-python-arrow-peer.sh) python3 scripts/bench_convert_peer.py RAW OUT
Writes OUT/vqav2_*.arrow and OUT/vqav2_answers.json, prints one JSON line.
"""

import json
import os
import random
import re
import sys
import time
from collections import Counter
from glob import glob

import pandas as pd
import pyarrow as pa

# The answer normalisation's tables (the same rules as engine/src/data/convert/glossary.rs).
CONTRACTIONS = dict(
    pair.split(":", 1)
    for pair in """
aint:ain't arent:aren't cant:can't couldve:could've couldnt:couldn't couldn'tve:couldn't've
couldnt've:couldn't've didnt:didn't doesnt:doesn't dont:don't hadnt:hadn't
hadnt've:hadn't've hadn'tve:hadn't've hasnt:hasn't havent:haven't hed:he'd hed've:he'd've
he'dve:he'd've hes:he's howd:how'd howll:how'll hows:how's Id've:I'd've I'dve:I'd've Im:I'm
Ive:I've isnt:isn't itd:it'd itd've:it'd've it'dve:it'd've itll:it'll let's:let's maam:ma'am
mightnt:mightn't mightnt've:mightn't've mightn'tve:mightn't've mightve:might've
mustnt:mustn't mustve:must've neednt:needn't notve:not've oclock:o'clock oughtnt:oughtn't
ow's'at:'ow's'at 'ows'at:'ow's'at 'ow'sat:'ow's'at shant:shan't shed've:she'd've
she'dve:she'd've she's:she's shouldve:should've shouldnt:shouldn't shouldnt've:shouldn't've
shouldn'tve:shouldn't've somebody'd:somebodyd somebodyd've:somebody'd've
somebody'dve:somebody'd've somebodyll:somebody'll somebodys:somebody's someoned:someone'd
someoned've:someone'd've someone'dve:someone'd've someonell:someone'll someones:someone's
somethingd:something'd somethingd've:something'd've something'dve:something'd've
somethingll:something'll thats:that's thered:there'd thered've:there'd've
there'dve:there'd've therere:there're theres:there's theyd:they'd theyd've:they'd've
they'dve:they'd've theyll:they'll theyre:they're theyve:they've twas:'twas wasnt:wasn't
wed've:we'd've we'dve:we'd've weve:we've werent:weren't whatll:what'll whatre:what're
whats:what's whatve:what've whens:when's whered:where'd wheres:where's whereve:where've
whod:who'd whod've:who'd've who'dve:who'd've wholl:who'll whos:who's whove:who've
whyll:why'll whyre:why're whys:why's wont:won't wouldve:would've wouldnt:wouldn't
wouldnt've:wouldn't've wouldn'tve:wouldn't've yall:y'all yall'll:y'all'll y'allll:y'all'll
yall'd've:y'all'd've y'alld've:y'all'd've y'all'dve:y'all'd've youd:you'd youd've:you'd've
you'dve:you'd've youll:you'll youre:you're youve:you've""".split()
)
NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
           "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = {"a", "an", "the"}
MARKS = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@",
         "`", ",", "?", "!"]
DIGIT_COMMA_DIGIT = re.compile(r"\d,\d")
PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")


def normalize(answer):
    text = answer
    strip_all = DIGIT_COMMA_DIGIT.search(answer) is not None
    for mark in MARKS:
        spaced = (mark + " ") in answer or (" " + mark) in answer
        text = text.replace(mark, "" if strip_all or spaced else " ")
    # At most 32 periods go: the reference passes re.UNICODE (32) as re.sub's count.
    text = PERIOD_NOT_BEFORE_DIGIT.sub("", text, 32)
    words = [NUMBERS.get(w, w) for w in text.lower().split()]
    words = [CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES]
    return " ".join(words).replace(",", "")


def score(count):
    return [0.0, 0.3, 0.6, 0.9][count] if count < 4 else 1.0


def load(path, key):
    with open(path) as f:
        return json.load(f)[key]


def image_id(path):
    return int(os.path.basename(path).split("_")[-1][:-4])


def write_table(frame, path):
    table = pa.Table.from_pandas(frame)
    with pa.OSFile(path, "wb") as sink:
        with pa.RecordBatchFileWriter(sink, table.schema) as writer:
            writer.write_table(table)


COLUMNS = ["image", "questions", "answers", "answer_labels", "answer_scores", "image_id",
           "question_id", "split"]
SPLITS = [("train", "train2014", "train2014"), ("val", "val2014", "val2014"),
          ("test", "test2015", "test2015"), ("test-dev", "test-dev2015", "test2015")]


def convert(raw, out, fix):
    suffix = "_fix" if fix else ""
    vqa = os.path.join(raw, "vqav2")
    questions = {s: load(f"{vqa}/v2_OpenEnded_mscoco_{q}_questions.json", "questions")
                 for s, q, _ in SPLITS}
    annotations = {s: load(f"{vqa}/v2_mscoco_{q}_annotations.json", "annotations")
                   for s, q, _ in SPLITS[:2]}
    by_image = {}
    for split, qs in questions.items():
        per_image = {}
        for q in qs:
            per_image.setdefault(q["image_id"], {})[q["question_id"]] = [q["question"]]
        by_image[split] = per_image

    majors = [normalize(a["multiple_choice_answer"])
              for split in ("train", "val") for a in annotations[split]]
    label2ans = [a for a, n in Counter(majors).items() if n >= 9]
    ans2label = {a: i for i, a in enumerate(label2ans)}

    for split in ("train", "val"):
        for a in annotations[split]:
            counts = {}
            for given in a["answers"]:
                answer = normalize(given["answer"]) if fix else given["answer"]
                counts[answer] = counts.get(answer, 0) + 1
            labels = [ans2label[x] for x in counts if x in ans2label]
            scores = [score(counts[x]) for x in counts if x in ans2label]
            by_image[split][a["image_id"]][a["question_id"]].append((labels, scores))
        kept = {}
        for iid, qs in by_image[split].items():
            labelled = {qid: v for qid, v in qs.items() if v[1][0]}
            if labelled:
                kept[iid] = labelled
        by_image[split] = kept

    rows_written = 0
    for split, _, folder in SPLITS:
        annotated = by_image[split]
        paths = glob(f"{raw}/{folder}/*.jpg")
        random.shuffle(paths)
        rows = []
        for path in paths:
            iid = image_id(path)
            if iid not in annotated:
                continue
            with open(path, "rb") as f:
                binary = f.read()
            qids = list(annotated[iid])
            entries = [annotated[iid][q] for q in qids]
            texts = [e[0] for e in entries]
            if "test" in split:
                answers, labels, scores = [], [], []
            else:
                labels = [e[1][0] for e in entries]
                scores = [e[1][1] for e in entries]
                answers = [[label2ans[x] for x in ls] for ls in labels]
            rows.append([binary, texts, answers, labels, scores, iid, qids, split])
        rows_written += len(rows)
        write_table(pd.DataFrame(rows, columns=COLUMNS), f"{out}/vqav2_{split}{suffix}.arrow")
        del rows

    val = pa.ipc.RecordBatchFileReader(
        pa.memory_map(f"{out}/vqav2_val{suffix}.arrow", "r")).read_all().to_pandas()
    write_table(val[:-1000], f"{out}/vqav2_trainable_val{suffix}.arrow")
    write_table(val[-1000:], f"{out}/vqav2_rest_val{suffix}.arrow")
    with open(f"{out}/vqav2_answers.json", "w") as f:
        json.dump({"label2answer": label2ans, "num_answers": len(label2ans)}, f)
    return rows_written


def main():
    raw, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    rows = convert(raw, out, fix=True) + convert(raw, out, fix=False)
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
