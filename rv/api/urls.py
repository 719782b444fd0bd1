from django.urls import include, path
from rest_framework.routers import DefaultRouter

from rv.api import auth, history, plans, treatment

router = DefaultRouter()
router.register("patients", plans.PatientViewSet, basename="patient")
router.register("courses", plans.CourseViewSet, basename="course")
router.register("plans", plans.PlanViewSet, basename="plan")
router.register("sessions", treatment.SessionViewSet, basename="session")
router.register("appointments", treatment.AppointmentViewSet, basename="appointment")
router.register("audit-events", treatment.AuditEventViewSet, basename="audit-event")
router.register("records", history.RecordViewSet, basename="record")

urlpatterns = [
    path("auth/token/", auth.TokenView.as_view(), name="api-token"),
    path("auth/logout/", auth.LogoutView.as_view(), name="api-logout"),
    path("auth/logout-all/", auth.LogoutAllView.as_view(), name="api-logout-all"),
    path("history/", history.HistoryView.as_view(), name="api-history"),
    path("history/csv/", history.HistoryCsvView.as_view(), name="api-history-csv"),
    path("", include(router.urls)),
]
