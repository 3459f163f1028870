"""Routes of /api/v1/settings: the global delivery settings every sender follows live."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import ValidationError

from hookstream.admin.deps import Policy
from hookstream.admin.problems import raise_invalid
from hookstream.admin.schemas import SettingsOut, SettingsPatch, problem_responses
from hookstream.records.models import DeliveryPolicy, now_ms

router = APIRouter(prefix="/settings", tags=["settings"])


def _out(policy: DeliveryPolicy) -> SettingsOut:
    return SettingsOut(**policy.model_dump())


@router.get("", summary="Show the delivery settings", responses=problem_responses(401, 503))
async def show_settings(state: Policy) -> SettingsOut:
    return _out(state.policy.current)


@router.patch(
    "",
    summary="Change the delivery settings; every sender applies them without a restart",
    responses=problem_responses(401, 422, 503),
)
async def update_settings(body: SettingsPatch, state: Policy) -> SettingsOut:
    changes = body.model_dump(exclude_none=True)
    current = state.policy.current
    if not changes:
        return _out(current)
    try:
        policy = DeliveryPolicy.model_validate(
            {
                **current.model_dump(),
                **changes,
                "modified_at": max(now_ms(), current.modified_at + 1),
            }
        )
    except ValidationError as exc:
        raise_invalid(exc)
    await state.publish_policy(policy)
    timeout_s = state.settings.admin.write_timeout_s
    if not await state.policy.watch.wait_for(lambda: state.policy.current == policy, timeout_s):
        raise HTTPException(
            status_code=503,
            detail=f"the settings were written but not read back within {timeout_s:g} s; "
            f"check the settings topic {state.settings.topics.settings!r}",
        )
    return _out(state.policy.current)
