"""String types for request values that reach PostgreSQL: query, path, form and JSON fields.

PostgreSQL cannot store NUL at all, and a control character (CR/LF included) in a name, a
search term or an id is never meant: such a value is a 422 `validation-error` before any query
runs, with the reason from `domain.rendering.validation.label_problem` (the rule template
labels follow). `api.problems` still maps any `psycopg.DataError` to a 422 as the safety net.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StringConstraints

from domain.rendering.validation import label_problem


def _storable(value: str) -> str:
    problem = label_problem(value)
    if problem:
        raise ValueError(problem)
    return value


#: The C0 and C1 control characters, as the OpenAPI document states it (the validator also
#: refuses surrogates and private-use characters, which a JSON Schema pattern cannot name).
NO_CONTROLS = r"^[^\x00-\x1f\x7f-\x9f]*$"

#: A one-line text: no NUL, no control characters (CR, LF, tab, escape...), no surrogates.
StoredText = Annotated[str, StringConstraints(pattern=NO_CONTROLS), AfterValidator(_storable)]
