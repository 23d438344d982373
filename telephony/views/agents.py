"""Portal pages: agents (list, create, the editor, delete).

Everyone who uses the product sees the agents and their settings; changing
them needs ``agents.manage`` (owners and admins). Every rule is the
service's (telephony.services.agents.agent_clean): its refusals come back
onto the field or section they concern.
"""

from __future__ import annotations

import re

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import path
from django.views import View

from accounts.mixins import OrganizationViewMixin
from accounts.models import Membership
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.providers import simulated_mode
from knowledge.models import KnowledgeBase
from telephony.models import LLMProvider, VoicemailAction
from telephony.providers.voices import VoiceCatalog, voice_catalog
from telephony.selectors.agents import agent_get, agent_list
from telephony.services.agents import (
    ANALYSIS_TYPES,
    LLM_MODELS,
    MAX_ANALYSIS_FIELDS,
    MAX_CALL_SECONDS,
    MIN_CALL_SECONDS,
    STT_LANGUAGES,
    STT_MODELS,
    AgentInvalid,
    agent_create,
    agent_delete,
    agent_update,
    linked_knowledge_bases,
)

# Tools that are switched on or off; transfers are listed by target.
_SIMPLE_TOOLS = (
    ("end_call", "End the call", "The agent may hang up once the conversation is over."),
    ("send_sms", "Text the caller", "The agent may send the caller a text message (e.g. a confirmation)."),
    ("book_appointment", "Book appointments", "The agent may book an appointment in your calendar."),
)
# Where the service's refusals of a setting without its own form field are shown.
_SECTION_ERRORS = {"tools": "Tools", "analysis_schema": "Post-call analysis"}


class AgentForm(forms.Form):
    """The editor's fields. Every rule is the service's; the form only turns inputs into values."""

    name = forms.CharField(max_length=200, help_text="How your team recognises this agent, e.g. “Front desk”.")
    system_prompt = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 10}),
        label="Instructions (system prompt)",
        help_text="Who the agent is, what it knows and how it should behave on the phone. Up to 20,000 characters.",
    )
    first_message = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="What the agent says after the disclosures. Leave empty to let the caller speak first.",
    )
    llm_provider = forms.ChoiceField(choices=LLMProvider.choices, label="Language model provider")
    llm_model = forms.ChoiceField(
        choices=[(LLMProvider(p).label, [(m, m) for m in models]) for p, models in LLM_MODELS.items()],
        label="Model",
        help_text="Choose a model of the provider above.",
    )
    temperature = forms.FloatField(
        widget=forms.NumberInput(attrs={"step": "0.1", "min": "0", "max": "2"}),
        help_text="Lower is more predictable. OpenAI: 0 to 2; Anthropic: 0 to 1.",
    )
    voice_id = forms.CharField(required=False, label="Voice")
    stt_language = forms.ChoiceField(choices=list(STT_LANGUAGES.items()), label="Language callers speak")
    stt_model = forms.ChoiceField(choices=list(STT_MODELS.items()), label="Speech recognition model")
    end_call = forms.BooleanField(required=False, label=_SIMPLE_TOOLS[0][1], help_text=_SIMPLE_TOOLS[0][2])
    send_sms = forms.BooleanField(required=False, label=_SIMPLE_TOOLS[1][1], help_text=_SIMPLE_TOOLS[1][2])
    book_appointment = forms.BooleanField(required=False, label=_SIMPLE_TOOLS[2][1], help_text=_SIMPLE_TOOLS[2][2])
    transfer_numbers = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Transfer to phone numbers",
        help_text="One number per line, in international format (e.g. +14155550100).",
    )
    transfer_members = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Transfer to team members",
        help_text="The call rings in their browser while they are signed in to JagCall.",
    )
    ai_disclosure_enabled = forms.BooleanField(required=False, label="Say that the caller is speaking with an AI")
    ai_disclosure = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), label="AI disclosure")
    recording_disclosure_enabled = forms.BooleanField(required=False, label="Say that the call is recorded")
    recording_disclosure = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Recording disclosure"
    )
    record_calls = forms.BooleanField(
        required=False, label="Record calls", help_text="Recordings are transcribed and summarised after the call."
    )
    max_call_seconds = forms.IntegerField(
        label="Maximum call length (seconds)",
        widget=forms.NumberInput(attrs={"min": MIN_CALL_SECONDS, "max": MAX_CALL_SECONDS, "step": 30}),
        help_text=f"Between {MIN_CALL_SECONDS} seconds and 4 hours ({MAX_CALL_SECONDS:,} seconds). "
        "The agent ends the call politely then.",
    )
    voicemail_action = forms.ChoiceField(
        choices=VoicemailAction.choices, widget=forms.RadioSelect, label="When an answering machine picks up"
    )
    voicemail_message = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="Needed when the agent leaves a message."
    )
    knowledge_bases = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Knowledge bases",
        help_text="The agent looks up answers in these during calls. Add documents to them on the Knowledge page.",
    )

    SECTIONS = (
        ("Conversation", ("name", "system_prompt", "first_message", "llm_provider", "llm_model", "temperature")),
        ("Voice and listening", ("voice_id", "stt_language", "stt_model")),
        (
            "Disclosures",
            ("ai_disclosure_enabled", "ai_disclosure", "recording_disclosure_enabled", "recording_disclosure"),
        ),
        ("Calls", ("record_calls", "max_call_seconds", "voicemail_action", "voicemail_message")),
        ("Knowledge", ("knowledge_bases",)),
    )

    def __init__(
        self,
        *args,
        organization,
        catalog: VoiceCatalog,
        current_voice: tuple[str, str] = ("", ""),
        read_only=False,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        members = Membership.objects.for_org(organization).select_related("user").order_by("user__email")
        self.fields["transfer_members"].choices = [
            (str(m.user_id), f"{m.user.name} ({m.user.email})" if m.user.name else m.user.email) for m in members
        ]
        bases = KnowledgeBase.objects.for_org(organization).order_by("name")
        self.fields["knowledge_bases"].choices = [(str(base.pk), base.name) for base in bases]
        if not self.fields["knowledge_bases"].choices:
            self.fields["knowledge_bases"].help_text = (
                "No knowledge base yet. Create one on the Knowledge page and upload your documents; "
                "then choose it here so the agent answers from them."
            )
        voice = self.fields["voice_id"]
        if catalog.available:
            choices = [("", "JagCall's default voice")] + [(v.voice_id, v.label) for v in catalog.voices]
            if current_voice[0] and not catalog.get(current_voice[0]):
                choices.append((current_voice[0], f"{current_voice[1] or current_voice[0]} (no longer offered)"))
            voice.widget = forms.Select(choices=choices)
            voice.help_text = "An ElevenLabs voice. Empty: JagCall's default voice."
        else:
            voice.help_text = (
                f"{catalog.error} You can keep the current voice; a new one can be chosen once the list loads."
            )
        if read_only:
            for field in self.fields.values():
                field.disabled = True

    def section_fields(self):
        return [(title, [self[name] for name in names]) for title, names in self.SECTIONS]

    def simple_tool_fields(self):
        return [self[name] for name, _label, _help in _SIMPLE_TOOLS]

    def tools(self, previous: list[dict]) -> list[dict]:
        """The tools list from the checkboxes and transfer targets, keeping the descriptions they had."""
        descriptions = {_tool_identity(tool): tool.get("description") for tool in previous}
        tools = [{"type": name} for name, _label, _help in _SIMPLE_TOOLS if self.cleaned_data.get(name)]
        for line in self.cleaned_data.get("transfer_numbers", "").splitlines():
            if line.strip():
                tools.append({"type": "transfer", "number": line.strip()})
        for user_id in self.cleaned_data.get("transfer_members", []):
            tools.append({"type": "transfer", "user_id": user_id})
        for tool in tools:
            if descriptions.get(_tool_identity(tool)):
                tool["description"] = descriptions[_tool_identity(tool)]
        return tools


def _tool_identity(tool: dict) -> tuple:
    return (tool.get("type"), tool.get("number"), tool.get("user_id"))


def _initial(agent) -> dict:
    initial = {
        name: getattr(agent, name)
        for name in (
            "name", "system_prompt", "first_message", "llm_provider", "llm_model", "temperature", "voice_id",
            "stt_language", "stt_model", "ai_disclosure_enabled", "ai_disclosure", "recording_disclosure_enabled",
            "recording_disclosure", "record_calls", "max_call_seconds", "voicemail_action", "voicemail_message",
        )
    }  # fmt: skip
    tools = agent.tools or []
    for name, _label, _help in _SIMPLE_TOOLS:
        initial[name] = any(tool.get("type") == name for tool in tools)
    initial["transfer_numbers"] = "\n".join(
        t["number"] for t in tools if t.get("type") == "transfer" and t.get("number")
    )
    initial["transfer_members"] = [t["user_id"] for t in tools if t.get("type") == "transfer" and t.get("user_id")]
    initial["knowledge_bases"] = linked_knowledge_bases(agent)
    return initial


_ROW_KEY = re.compile(r"^analysis-(\d{1,4})-(name|type|description|options)$")


def _analysis_rows(post) -> list[dict]:
    """The analysis fields as posted (rows left entirely empty are dropped), in the order shown."""
    rows: dict[int, dict] = {}
    for key in post:
        match = _ROW_KEY.match(key)
        if match:
            rows.setdefault(int(match.group(1)), {})[match.group(2)] = post.get(key, "").strip()
    schema = []
    for _index, row in sorted(rows.items()):
        if not any(row.get(part) for part in ("name", "description", "options")):
            continue
        item = {"name": row.get("name", ""), "type": row.get("type", ""), "description": row.get("description", "")}
        if row.get("options"):
            item["options"] = [option.strip() for option in row["options"].split(",") if option.strip()]
        schema.append(item)
    return schema


def _editor_rows(schema: list[dict]) -> list[dict]:
    """What the analysis editor shows: each field, options joined by commas."""
    return [{**item, "options": ", ".join(item.get("options") or [])} for item in schema]


class _AgentEditorMixin:
    template_name = "telephony/agents/form.html"

    def render_editor(
        self, request, *, form, agent=None, schema=None, section_errors=None, status=200, read_only=False
    ):
        context = {
            "form": form,
            "agent": agent,
            "analysis_rows": _editor_rows(schema if schema is not None else (agent.analysis_schema if agent else [])),
            "analysis_types": list(ANALYSIS_TYPES.items()),
            "max_analysis_fields": MAX_ANALYSIS_FIELDS,
            "section_errors": section_errors or {},
            "read_only": read_only,
        }
        return render(request, self.template_name, context, status=status)

    def form_for(self, data=None, *, agent=None, catalog=None, read_only=False):
        catalog = catalog or voice_catalog(organization=self.organization)
        initial = _initial(agent) if agent is not None else {
            "llm_provider": LLMProvider.OPENAI, "llm_model": "gpt-4o-mini", "temperature": 0.7, "stt_language": "en-US",
            "stt_model": "nova-3", "ai_disclosure_enabled": True, "recording_disclosure_enabled": True,
            "record_calls": True, "max_call_seconds": 600, "voicemail_action": VoicemailAction.HANG_UP,
            **_default_disclosures(),
        }  # fmt: skip
        current_voice = (agent.voice_id, agent.voice_name) if agent is not None else ("", "")
        return AgentForm(
            data, initial=initial, organization=self.organization, catalog=catalog, current_voice=current_voice,
            read_only=read_only,
        )  # fmt: skip

    def save(self, request, *, agent=None):
        """Validate the posted editor and call the service; the page again with every problem when refused."""
        form = self.form_for(request.POST, agent=agent)
        schema = _analysis_rows(request.POST)
        if not form.is_valid():
            return None, self.render_editor(request, form=form, agent=agent, schema=schema, status=400)
        data = {name: form.cleaned_data[name] for name in form.cleaned_data if name in _SERVICE_FIELDS}
        data["tools"] = form.tools(agent.tools if agent is not None else [])
        data["analysis_schema"] = schema
        try:
            if agent is None:
                saved = agent_create(organization=self.organization, actor=self.principal, data=data)
            else:
                saved = agent_update(organization=self.organization, actor=self.principal, agent=agent, data=data)
        except AgentInvalid as error:
            section_errors = {}
            for field, problems in error.errors.items():
                if field in form.fields:
                    for problem in problems:
                        form.add_error(field, problem)
                else:
                    section = _SECTION_ERRORS.get(field, field)
                    section_errors[field] = problems
                    for problem in problems:
                        form.add_error(None, f"{section}: {problem}")
            return None, self.render_editor(
                request, form=form, agent=agent, schema=schema, section_errors=section_errors, status=400
            )
        return saved, None


_SERVICE_FIELDS = frozenset(
    {
        "name", "system_prompt", "first_message", "llm_provider", "llm_model", "temperature", "voice_id",
        "stt_language", "stt_model", "ai_disclosure_enabled", "ai_disclosure", "recording_disclosure_enabled",
        "recording_disclosure", "record_calls", "max_call_seconds", "voicemail_action", "voicemail_message",
        "knowledge_bases",
    }
)  # fmt: skip


def _default_disclosures() -> dict:
    from telephony.models import DEFAULT_AI_DISCLOSURE, DEFAULT_RECORDING_DISCLOSURE

    return {"ai_disclosure": DEFAULT_AI_DISCLOSURE, "recording_disclosure": DEFAULT_RECORDING_DISCLOSURE}


class AgentListView(OrganizationViewMixin, View):
    """The organization's agents, with the numbers each answers; an empty page says what an agent is."""

    permission_required = "product.use"

    def get(self, request, org_slug):
        agents = list(agent_list(organization=self.organization))
        return render(request, "telephony/agents/list.html", {"agents": agents})


class AgentCreateView(_AgentEditorMixin, OrganizationViewMixin, View):
    permission_required = "agents.manage"

    def get(self, request, org_slug):
        return self.render_editor(request, form=self.form_for())

    def post(self, request, org_slug):
        agent, refused = self.save(request)
        if refused is not None:
            return refused
        messages.success(request, f"Agent “{agent.name}” created. Assign it a phone number so it can answer calls.")
        return redirect("telephony:agent-detail", org_slug=self.organization.slug, agent_id=agent.id)


class AgentDetailView(_AgentEditorMixin, OrganizationViewMixin, View):
    """The agent's settings: an editor for those who may manage agents, read-only for everyone else."""

    permission_required = "product.use"

    def get(self, request, org_slug, agent_id):
        agent = agent_get(organization=self.organization, id=agent_id)
        read_only = not self.principal.can("agents.manage")
        return self.render_editor(
            request, form=self.form_for(agent=agent, read_only=read_only), agent=agent, read_only=read_only
        )


class AgentUpdateView(_AgentEditorMixin, OrganizationViewMixin, View):
    permission_required = "agents.manage"
    http_method_names = ["post"]

    def post(self, request, org_slug, agent_id):
        agent = agent_get(organization=self.organization, id=agent_id)
        saved, refused = self.save(request, agent=agent)
        if refused is not None:
            return refused
        messages.success(request, f"Agent “{saved.name}” saved.")
        return redirect("telephony:agent-detail", org_slug=self.organization.slug, agent_id=saved.id)


class AgentDeleteView(OrganizationViewMixin, View):
    """Ask, then delete; an agent that still answers numbers says which, and is kept."""

    permission_required = "agents.manage"
    template_name = "telephony/agents/delete.html"

    def get(self, request, org_slug, agent_id):
        agent = agent_get(organization=self.organization, id=agent_id)
        return render(request, self.template_name, {"agent": agent})

    def post(self, request, org_slug, agent_id):
        agent = agent_get(organization=self.organization, id=agent_id)
        try:
            agent_delete(organization=self.organization, actor=self.principal, agent=agent)
        except ApplicationError as error:
            return render(request, self.template_name, {"agent": agent, "refusal": error.message}, status=error.status)
        messages.success(request, f"Agent “{agent.name}” deleted.")
        return redirect("telephony:agent-list", org_slug=self.organization.slug)


class AgentTestView(OrganizationViewMixin, View):
    """Talk with the agent before it goes live: a chat by text, or by voice in the browser.

    The page opens the agent's test socket (telephony/agent_test.py); the right is the editor's.
    """

    permission_required = "agents.manage"
    template_name = "telephony/agents/test.html"

    def get(self, request, org_slug, agent_id):
        from telephony.agent_test import MAX_TEST_SECONDS

        agent = agent_get(organization=self.organization, id=agent_id)
        context = {
            "agent": agent,
            "simulated": simulated_mode(),
            "socket_path": f"/ws/o/{self.organization.slug}/agents/{agent.id}/test/",
            "max_seconds": min(MAX_TEST_SECONDS, agent.max_call_seconds or MAX_TEST_SECONDS),
        }
        return render(request, self.template_name, context)


urlpatterns = [
    path("agents/", AgentListView.as_view(), name="agent-list"),
    path("agents/new/", AgentCreateView.as_view(), name="agent-create"),
    path("agents/<uuid:agent_id>/", AgentDetailView.as_view(), name="agent-detail"),
    path("agents/<uuid:agent_id>/edit/", AgentUpdateView.as_view(), name="agent-update"),
    path("agents/<uuid:agent_id>/delete/", AgentDeleteView.as_view(), name="agent-delete"),
    path("agents/<uuid:agent_id>/test/", AgentTestView.as_view(), name="agent-test"),
]
