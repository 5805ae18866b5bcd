from django.apps import AppConfig


class PromptsConfig(AppConfig):
    """Prompt templates as versioned APIs: written and published in the console, served on /v1/prompts."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "portal.prompts"
    label = "prompts"
    verbose_name = "Prompt templates"
