"""Message templates: Jinja2 with gettext, per-locale overrides, and sandboxed tenant templates.

```python
engine = TemplateEngine(directory, limits=config.localization.template_limits,
                        on_fallback=lambda event: fallbacks.labels(event.reason).inc())
message = engine.render("group", localizer, context, accept, tenant_templates=tenant.templates)
engine.reload()   # after a template file changed; a broken file keeps its previous version
```

The modules: ``engine`` (the chain locale → language → default, fallback, reload),
``sandbox`` (the guarded sandbox of tenant templates), ``budget`` (what a tenant
render may spend) and ``filters`` (gettext bound to the reader's localizer, and
the Slack filters every template sees). Import from this package.
"""

from __future__ import annotations

from slack_tools.configs.templates.budget import (
    LimitExceededError,
    OutputLimitExceededError,
    WorkBudgetExceededError,
)
from slack_tools.configs.templates.engine import (
    FallbackCounter,
    FallbackReason,
    TemplateEngine,
    TemplateError,
    TemplateFallback,
    TemplateLimits,
    TemplateOrigin,
    TemplateProblem,
    default_engine,
    packaged_templates,
    template_chain,
)
from slack_tools.configs.templates.filters import clip, escape_mrkdwn

__all__ = [
    "FallbackCounter",
    "FallbackReason",
    "LimitExceededError",
    "OutputLimitExceededError",
    "TemplateEngine",
    "TemplateError",
    "TemplateFallback",
    "TemplateLimits",
    "TemplateOrigin",
    "TemplateProblem",
    "WorkBudgetExceededError",
    "clip",
    "default_engine",
    "escape_mrkdwn",
    "packaged_templates",
    "template_chain",
]
