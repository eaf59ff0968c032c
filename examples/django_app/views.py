"""A balance view and a guarded transfer view on the process-wide blocking bank."""

import hmac
import json

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from tokenbank import TokenBankError
from tokenbank.integrations.django import get_bank


@require_GET
def balance(request: HttpRequest, user_id: str) -> JsonResponse:
    try:
        amount = get_bank().get_balance(user_id)
    except TokenBankError as exc:
        return JsonResponse({"code": exc.code, "message": str(exc)}, status=exc.http_status)
    return JsonResponse({"user_id": user_id, "balance": str(amount)})


@require_POST
def transfer(request: HttpRequest) -> JsonResponse:
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {settings.TRANSFER_TOKEN}".encode()):
        return JsonResponse({"code": "unauthorized", "message": "a valid bearer token is required"}, status=401)
    try:
        body = json.loads(request.body)
        tx = get_bank().transfer(body["from"], body["to"], str(body["amount"]), idempotency_key=body.get("key"))
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"code": "invalid_request", "message": "JSON body {from, to, amount}"}, status=422)
    except TokenBankError as exc:
        return JsonResponse({"code": exc.code, "message": str(exc)}, status=exc.http_status)
    return JsonResponse({"id": tx.id, "amount": str(tx.amount)}, status=201)
