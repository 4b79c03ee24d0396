"""Writes samples/chat/*.jsonl from samples/dialogsum/: the same DialogSum records as conversations in the three
chat formats QLoRA Studio reads (docs/chat-datasets.md). Every third training record gets a second exchange that
asks for the dialogue's topic (DialogSum's `topic` field), so multi-turn loss masking is exercised; validation and
test records are single exchanges, so evaluation scores summaries.

    python3 samples/chat/make_chat_samples.py
"""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "dialogsum"
SYSTEM = "You summarize conversations."
ASK = "Summarize the following conversation in one or two sentences."
TOPIC = "What is the topic, in a few words?"


def read(name):
    return [json.loads(line) for line in (SOURCE / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def turns(record, follow_up):
    summary = record.get("summary") or record["summary1"]
    out = [("system", SYSTEM), ("user", f"{ASK}\n{record['dialogue']}"), ("assistant", summary)]
    if follow_up:
        out += [("user", TOPIC), ("assistant", record["topic"])]
    return out


def messages(record, follow_up):
    return {"messages": [{"role": r, "content": c} for r, c in turns(record, follow_up)]}


def sharegpt(record, follow_up):
    names = {"user": "human", "assistant": "gpt"}
    rest = turns(record, follow_up)[1:]
    return {"system": SYSTEM, "conversations": [{"from": names[r], "value": c} for r, c in rest]}


def alpaca(record, _follow_up):
    summary = record.get("summary") or record["summary1"]
    return {"system": SYSTEM, "instruction": ASK, "input": record["dialogue"], "output": summary}


def write(name, rows):
    (HERE / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def main():
    train, validation = read("train.jsonl")[:120], read("validation.jsonl")[:24]
    for form, convert in (("messages", messages), ("sharegpt", sharegpt), ("alpaca", alpaca)):
        write(f"{form}.jsonl", [convert(r, i % 3 == 2) for i, r in enumerate(train)])
        write(f"{form}.validation.jsonl", [convert(r, False) for r in validation])


if __name__ == "__main__":
    main()
