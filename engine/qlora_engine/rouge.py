"""ROUGE during training: Google's rouge_score 0.1.2 itself (what `evaluate`'s "rouge" wraps), stemmer on.

The server's TypeScript ROUGE (server/src/eval/rouge.ts, used by `qlora-studio eval`) is tested against this very
package, so a score here and a score in an evaluation report agree by construction. A prediction with several
references gets, per type, the reference with the best F (rouge_score's score_multi); the reported value is the
mean F over the records.

Which record fields are references (`eval.references` in the config; server/src/eval/references.ts is the same
rule): the names given there, each required in every record; or, when null, the template response's one
variable (`summary`, when any record has it) and its numbered variants found in the records (`summary1`,
`summary2`, ...), of which every record needs at least one.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .config import ROUGE_TYPES
from .data import Record
from .errors import BadConfig, BadDataset
from .template import PromptTemplate


def reference_fields(explicit: Optional[Sequence[str]], template: PromptTemplate,
                     records: Sequence[Record]) -> Tuple[Tuple[str, ...], bool]:
    """(field names, explicit?) of the reference texts."""
    if explicit:
        return tuple(explicit), True
    variables = sorted(template.variables("response"))
    if len(variables) != 1:
        found = ", ".join(variables) if variables else "no variable"
        raise BadConfig(f"cannot tell which record fields are the references: the response of {template.name} uses "
                        f"{found}; name them in eval.references (e.g. [summary1, summary2]).",
                        field="eval.references")
    name = variables[0]
    numbered = re.compile(re.escape(name) + r"([0-9]+)$")
    variants = {key for record in records for key in record.fields if numbered.match(key)}
    ordered = sorted(variants, key=lambda key: (int(numbered.match(key).group(1)), key))
    plain = any(name in record.fields for record in records) or not ordered
    return ((name,) if plain else ()) + tuple(ordered), False


def references(records: Sequence[Record], names: Sequence[str], explicit: bool, path: "str | Path") -> List[List[str]]:
    """The reference texts of each record; BadDataset (file, line, field) for a record without them."""
    file = Path(path)
    out: List[List[str]] = []
    for record in records:
        texts: List[str] = []
        for name in names:
            value = record.fields.get(name)
            if value is None:
                if explicit:
                    state = "null" if name in record.fields else "missing"
                    raise BadDataset(f"{file.name}:{record.line}: reference field '{name}' (eval.references) is "
                                     f"{state}.", file=str(file), line=record.line, field=name)
                continue
            if not isinstance(value, str):
                raise BadDataset(f"{file.name}:{record.line}: reference field '{name}' must be a string, not "
                                 f"{type(value).__name__}.", file=str(file), line=record.line, field=name)
            texts.append(value)
        if not texts:
            raise BadDataset(f"{file.name}:{record.line}: no reference text: none of {', '.join(names)} is set. Name "
                             "the reference fields in eval.references.", file=str(file), line=record.line,
                             field=names[0])
        out.append(texts)
    return out


class RougeScorer:
    """Mean F of rouge1/2/L/Lsum over (prediction, references) pairs, as rouge_score 0.1.2 computes them."""

    def __init__(self) -> None:
        try:
            from rouge_score import rouge_scorer
        except ImportError as exc:
            raise BadConfig(f"ROUGE during training needs the rouge-score package ({exc}); install it in the engine's "
                            "environment (pip install rouge-score==0.1.2) or set train.rouge_every: 0.",
                            field="train.rouge_every") from None
        self._scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)

    def per_example(self, prediction: str, refs: Sequence[str]) -> Dict[str, Any]:
        if len(refs) == 1:
            return self._scorer.score(refs[0], prediction)
        return self._scorer.score_multi(list(refs), prediction)

    def mean(self, predictions: Sequence[str], refs: Sequence[Sequence[str]]) -> Dict[str, float]:
        if not predictions:
            return {t: 0.0 for t in ROUGE_TYPES}
        totals = {t: 0.0 for t in ROUGE_TYPES}
        for prediction, texts in zip(predictions, refs):
            scores = self.per_example(prediction, texts)
            for t in ROUGE_TYPES:
                totals[t] += scores[t].fmeasure
        return {t: totals[t] / len(predictions) for t in ROUGE_TYPES}
