from django.urls import include, path
from rest_framework import permissions
from rest_framework.routers import APIRootView, DefaultRouter

from rv.api import (
    auth,
    banner,
    history,
    plans,
    prescriptions,
    setup,
    tasks,
    treatment,
    ups_events,
    workitems,
)


class RootView(APIRootView):
    """The list of endpoints: no patient data, any logged-in user."""

    permission_classes = [permissions.IsAuthenticated]


class Router(DefaultRouter):
    APIRootView = RootView


router = Router()
router.register("patients", banner.PatientViewSet, basename="patient")
router.register("patient-alerts", banner.PatientAlertViewSet, basename="patient-alert")
router.register("courses", plans.CourseViewSet, basename="course")
router.register("plans", plans.PlanViewSet, basename="plan")
router.register("setup-checks", setup.SetupCheckViewSet, basename="setup-check")
router.register("sessions", treatment.SessionViewSet, basename="session")
router.register("machines", setup.MachineViewSet, basename="machine")
router.register("machine-groups", setup.MachineGroupViewSet, basename="machine-group")
router.register("appointments", treatment.AppointmentViewSet, basename="appointment")
router.register("audit-events", treatment.AuditEventViewSet, basename="audit-event")
router.register("records", history.RecordViewSet, basename="record")
router.register("workitems", workitems.WorkitemViewSet, basename="workitem")
router.register("tasks", tasks.TaskViewSet, basename="task")
router.register("prescriptions", prescriptions.PrescriptionViewSet, basename="prescription")
router.register("ups-subscriptions", ups_events.UpsSubscriptionViewSet,
                basename="ups-subscription")
router.register("ups-events", ups_events.UpsEventViewSet, basename="ups-event")

urlpatterns = [
    path("auth/token/", auth.TokenView.as_view(), name="api-token"),
    path("auth/logout/", auth.LogoutView.as_view(), name="api-logout"),
    path("auth/logout-all/", auth.LogoutAllView.as_view(), name="api-logout-all"),
    path("history/", history.HistoryView.as_view(), name="api-history"),
    path("history/csv/", history.HistoryCsvView.as_view(), name="api-history-csv"),
    path("", include(router.urls)),
]
