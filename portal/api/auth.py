"""How /api/v1 knows who is calling: a DRF token (`Authorization: Token …`) or the console's session.

Token first, so an anonymous call answers 401 with `WWW-Authenticate: Token` (with the session first DRF
would answer 403, which scripts misread as a permission problem). Session calls keep DRF's CSRF check.
`POST /api/v1/auth/token` trades an email and password for the user's token, under the same rule as the
console's sign-in: with email verification mandatory, an unverified address gets no token.
"""

from allauth.account.utils import has_verified_email
from django.conf import settings
from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from portal.api.exceptions import handle
from portal.api.inputs import StrictTypes
from portal.api.parsers import DepthSafeJSONParser
from portal.api.schema import ApiSchema

AUTHENTICATION_CLASSES = [TokenAuthentication, SessionAuthentication]


class InvalidCredentials(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "the email or password is wrong"
    default_code = "invalid_credentials"


class EmailNotVerified(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "verify your email address first (see the email we sent, or ask an operator)"
    default_code = "email_not_verified"


class TokenRequestSerializer(StrictTypes, serializers.Serializer):
    email = serializers.EmailField()
    password = serializers.CharField(write_only=True, trim_whitespace=False, style={"input_type": "password"})


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(read_only=True)


class PasswordGuessThrottle(SimpleRateThrottle):
    """At most 20 tries a minute per email address, wherever they come from."""

    rate = "20/minute"

    def get_cache_key(self, request: Request, view) -> str | None:
        email = str(request.data.get("email", "")).strip().lower() if hasattr(request.data, "get") else ""
        return f"throttle_api_token_{email}" if email else self.get_ident(request)


class TokenView(APIView):
    """`POST {"email", "password"}` → `{"token"}`: the user's API token, sent as `Authorization: Token <token>`.
    The same token comes back on every call; the email address must be verified when verification is mandatory."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [PasswordGuessThrottle]
    parser_classes = [DepthSafeJSONParser]
    schema = ApiSchema()

    def get_exception_handler(self):
        return handle

    @extend_schema(request=TokenRequestSerializer, responses={200: TokenSerializer}, auth=[])
    def post(self, request: Request) -> Response:
        credentials = TokenRequestSerializer(data=request.data)
        credentials.is_valid(raise_exception=True)
        email, password = credentials.validated_data["email"], credentials.validated_data["password"]
        user = authenticate(request._request, email=email, password=password)
        if user is None:
            raise InvalidCredentials()
        if settings.ACCOUNT_EMAIL_VERIFICATION == "mandatory" and not has_verified_email(user):
            raise EmailNotVerified()
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})
