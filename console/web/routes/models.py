"""Models pages: which models may render, and each one's lineage (the subjects and consents its training
data was used under) and publications, for compliance officers and auditors. Read only: models are
registered by `likeness train run` / `likeness model register` and retired with `likeness model retire`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from console.web.pages import render
from console.web.state import console
from governance import models_registry
from governance.uow import unit_of_work

router = APIRouter()


@router.get("/models", name="models", response_class=HTMLResponse)
def models_page(request: Request) -> Response:
    """Every registered model, newest first, with its status and how much lineage it records."""
    with unit_of_work(console(request).runtime.sessions) as db:
        rows = []
        for model in models_registry.list_models(db):
            lineage = models_registry.lineage(db, model.id)
            rows.append(
                {
                    "model": model,
                    "clips": len(lineage),
                    "subjects": len({subject.id for _, subject, _ in lineage}),
                    "publications": len(models_registry.publications_of(db, model)),
                }
            )
    return render(request, "models.html", rows=rows)


@router.get("/models/{model_id}", name="model_page", response_class=HTMLResponse)
def model_page(request: Request, model_id: str) -> Response:
    """One model: status and its reason, config, training clips with subject and consent, publications."""
    with unit_of_work(console(request).runtime.sessions) as db:
        model = models_registry.get_model(db, model_id)
        lineage = [
            {"clip": clip, "subject": subject, "consent": used}
            for clip, subject, used in models_registry.lineage(db, model.id)
        ]
        publications = models_registry.publications_of(db, model)
    return render(request, "model.html", model=model, lineage=lineage, publications=publications)
