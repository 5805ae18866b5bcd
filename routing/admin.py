from django import forms
from django.contrib import admin

from routing.credentials import encrypt_secret
from routing.models import AliasDeployment, Deployment, ModelAlias, Provider


class ProviderForm(forms.ModelForm):
    api_key = forms.CharField(
        required=False, widget=forms.PasswordInput, help_text="Leave empty to keep the stored key. Stored encrypted."
    )

    class Meta:
        model = Provider
        fields = [
            "name",
            "kind",
            "base_url",
            "api_key",
            "api_key_env",
            "api_version",
            "connect_timeout_s",
            "timeout_s",
            "is_enabled",
        ]

    def save(self, commit=True):
        provider = super().save(commit=False)
        if self.cleaned_data.get("api_key"):
            provider.api_key_encrypted = encrypt_secret(self.cleaned_data["api_key"])
        if commit:
            provider.save()
        return provider


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = ["name", "kind", "base_url", "is_enabled"]


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ["name", "provider", "model", "input_per_1m", "output_per_1m", "is_enabled"]
    list_filter = ["provider"]


class AliasDeploymentInline(admin.TabularInline):
    model = AliasDeployment
    extra = 1


@admin.register(ModelAlias)
class ModelAliasAdmin(admin.ModelAdmin):
    list_display = ["name"]
    inlines = [AliasDeploymentInline]
