"""Console pages of prompt templates, under /console/prompts/ (names in the console namespace)."""

from django.urls import path

from portal.prompts import views

urlpatterns = [
    path("", views.prompt_list, name="prompts"),
    path("new/", views.prompt_new, name="prompt-new"),
    path("<int:template_id>/", views.prompt_detail, name="prompt"),
    path("<int:template_id>/versions/", views.prompt_versions, name="prompt-versions"),
    path("<int:template_id>/publishing/", views.prompt_publishing, name="prompt-publishing"),
    path("<int:template_id>/publish/", views.prompt_publish, name="prompt-publish"),
    path("<int:template_id>/split/", views.prompt_split, name="prompt-split"),
    path("<int:template_id>/rollback/", views.prompt_rollback, name="prompt-rollback"),
    path("<int:template_id>/environments/", views.environment_add, name="prompt-environment-add"),
    path("<int:template_id>/test/", views.prompt_test, name="prompt-test"),
    path("<int:template_id>/render/", views.prompt_render, name="prompt-render"),
    path("<int:template_id>/examples/", views.prompt_keep_example, name="prompt-examples"),
]
