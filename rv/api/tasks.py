"""/api/v1/tasks: the task lists (issue 15) and what a person does with a task: sign off a
check (password again), assign it, cancel it. Thin doors into rv.services.tasks; domain
errors map to statuses in rv.api_errors (a role or a signature refused 403, a task closed
already 409, one a review elsewhere closes 400)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from rv.errors import ValidationError
from rv.models import Task
from rv.roles import ALL_ROLES, Action
from rv.services.tasks import RULES, task_assign, task_cancel, task_complete
from rv.task_selectors import SUBJECTS, mine


class TaskSerializer(serializers.ModelSerializer):
    kind_label = serializers.CharField(source="get_kind_display", read_only=True)
    overdue = serializers.SerializerMethodField(help_text="open and due before today")
    patient_id = serializers.CharField(source="patient.patient_id", read_only=True,
                                       allow_null=True, default=None)
    patient_name = serializers.CharField(source="patient.patient_name", read_only=True,
                                         allow_null=True, default=None)
    plan_label = serializers.CharField(source="plan.label", read_only=True, allow_null=True,
                                       default=None)
    assigned_to = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                               allow_null=True)
    completed_by = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                                allow_null=True)
    signed_here = serializers.SerializerMethodField(
        help_text="true: signed off with POST complete; false: the review it stands for "
                  "closes it")

    class Meta:
        model = Task
        fields = ["id", "kind", "kind_label", "title", "status", "due_date", "overdue",
                  "assigned_role", "assigned_to", "patient", "patient_id", "patient_name",
                  "course", "plan", "plan_label", "session", "image", "device_record",
                  "workitem", "fraction_number", "event", "created_at", "completed_by",
                  "completed_at", "comment", "closed_by_action", "signed_here"]
        read_only_fields = fields

    def get_overdue(self, task: Task) -> bool:
        return task.overdue(timezone.localdate())

    def get_signed_here(self, task: Task) -> bool:
        return RULES[task.kind].signed_here


def _overdue(qs: QuerySet[Any], name: str, value: bool) -> QuerySet[Any]:
    late = {"status": Task.Status.OPEN, "due_date__lt": timezone.localdate()}
    return qs.filter(**late) if value else qs.exclude(**late)


class TaskFilter(filters.FilterSet):
    mine = filters.BooleanFilter(method="filter_mine",
                                 help_text="true: the caller's own and their roles' tasks")
    kind = filters.MultipleChoiceFilter(choices=Task.Kind.choices,
                                        help_text="repeat for several")
    status = filters.MultipleChoiceFilter(choices=Task.Status.choices,
                                          help_text="repeat for several")
    overdue = filters.BooleanFilter(method=_overdue, help_text="true: open and past due")
    assigned_role = filters.ChoiceFilter(choices=[(r, r) for r in ALL_ROLES])
    assigned_to = filters.CharFilter(field_name="assigned_to__username",
                                     help_text="user name, exact")
    patient = filters.NumberFilter(field_name="patient", help_text="rv patient (database id)")
    plan = filters.NumberFilter(field_name="plan", help_text="plan revision (database id)")
    due_before = filters.DateFilter(field_name="due_date", lookup_expr="lt")

    class Meta:
        model = Task
        fields = ["mine", "kind", "status", "overdue", "assigned_role", "assigned_to",
                  "patient", "plan", "due_before"]

    def filter_mine(self, qs: QuerySet[Any], name: str, value: bool) -> QuerySet[Any]:
        where = mine(self.request.user)
        return qs.filter(where) if value else qs.exclude(where)


Message = inline_serializer("TaskErrorMessage", {"message": serializers.CharField()})
CompleteIn = inline_serializer("TaskCompleteRequest", {
    "password": serializers.CharField(help_text="the signer's own password (signature)"),
    "comment": serializers.CharField(required=False, allow_blank=True, default="",
                                     help_text="the sign-off: what was checked, found")})
AssignIn = inline_serializer("TaskAssignRequest", {
    "user": serializers.CharField(required=False, help_text="user name to give it to"),
    "role": serializers.ChoiceField(choices=list(ALL_ROLES), required=False,
                                    help_text="or a role: back to anyone of it")})
CancelIn = inline_serializer("TaskCancelRequest", {
    "reason": serializers.CharField(help_text="why the task no longer stands")})


class TaskViewSet(viewsets.ReadOnlyModelViewSet):
    required_action = Action.CLINICAL_READ  # rv.api.access; complete, assign: the service
    queryset = Task.objects.select_related(*SUBJECTS).order_by("due_date", "id")
    serializer_class = TaskSerializer
    filterset_class = TaskFilter
    ordering_fields = ["due_date", "created_at"]

    def _answer(self, task: Task) -> Response:
        return Response(TaskSerializer(self.get_queryset().get(pk=task.pk)).data)

    @extend_schema(request=CompleteIn, responses={200: TaskSerializer, 400: Message,
                                                  403: Message, 409: Message},
                   description="Sign off a check task (first-fraction double check, weekly "
                   "physics chart check, physician weekly review, overrides to review) with "
                   "the caller's password. A wrong password or a role that may not do the "
                   "kind is 403 (audited); a task closed already 409; a task that a review "
                   "elsewhere closes (a NOT_VERIFIED session, an image, an unmatched record, "
                   "a worklist step) 400.")
    @action(detail=True, methods=["post"])
    def complete(self, request: Request, pk: str | None = None) -> Response:
        checked = type(CompleteIn)(data=request.data)
        checked.is_valid(raise_exception=True)
        task = task_complete(task=self.get_object(), user=request.user,
                             password=checked.validated_data["password"],
                             comment=checked.validated_data.get("comment", ""))
        return self._answer(task)

    @extend_schema(request=AssignIn, responses={200: TaskSerializer, 400: Message,
                                                403: Message},
                   description="A physicist or physician gives an open task to a person "
                   "(`user`, who must be able to do it) or back to a role (`role`).")
    @action(detail=True, methods=["post"])
    def assign(self, request: Request, pk: str | None = None) -> Response:
        checked = type(AssignIn)(data=request.data)
        checked.is_valid(raise_exception=True)
        data = checked.validated_data
        task = self.get_object()
        if data.get("user"):
            person = get_user_model().objects.filter(username=data["user"]).first()
            if person is None:
                raise ValidationError(f"There is no user {data['user']}.")
            task = task_assign(task=task, user=request.user, to_user=person,
                               to_role=data.get("role", ""))
        else:
            task = task_assign(task=task, user=request.user, to_role=data.get("role", ""))
        return self._answer(task)

    @extend_schema(request=CancelIn, responses={200: TaskSerializer, 400: Message,
                                                403: Message},
                   description="A physicist or physician withdraws an open task that no "
                   "longer stands, saying why.")
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        checked = type(CancelIn)(data=request.data)
        checked.is_valid(raise_exception=True)
        task = task_cancel(task=self.get_object(), user=request.user,
                           reason=checked.validated_data["reason"])
        return self._answer(task)
