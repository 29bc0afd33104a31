"""`auto_caption` of generate: empty boxes filled with suggested captions before producing.

Runs in the API so the event on `meme.requests` carries the final texts (a replay renders the
same meme) and the client sees them in the meme's status. The caption comes from an inference
worker (api/inference.py) within INFERENCE_CAPTION_DEADLINE_S or from the heuristic, so a
request is never refused for lack of a model.
Uploaded templates are captioned like catalogue ones: their boxes come from PostgreSQL
(sinks/postgres/template_lookup.py), the lookup generation validates them with.
"""

from __future__ import annotations

from api.dependencies import Services
from api.models import GenerateRequest
from domain.ai import heuristics


async def fill_empty_boxes(body: GenerateRequest, services: Services) -> GenerateRequest:
    if not body.auto_caption:
        return body
    template = await services.template_lookup.find(body.template_id)
    if template is None:
        return body  # the caller's validation answers 422 for an unknown template
    limit = services.settings.max_text_length
    if services.inference is not None:
        texts = await services.inference.fill(template, body.texts, body.topic)
    else:
        topic = body.topic or " / ".join(t for t in body.texts if t.strip()) or template.name
        suggestion = heuristics.caption(topic, len(template.boxes)).texts
        padded = [*body.texts, *([""] * (len(template.boxes) - len(body.texts)))]
        texts = [t if t.strip() else suggestion[i] for i, t in enumerate(padded)]
    return body.model_copy(update={"texts": [t[:limit] for t in texts]})
