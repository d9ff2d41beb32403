"""The expiry's asset check: no member is still verified past the cut-off of the latest expiry run."""

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    asset_check,
)

from mungmo_pipelines.assets.verification import iso, members_key
from mungmo_pipelines.core.expiry.members import overdue_verifications, parse_as_of
from mungmo_pipelines.resources import MariaDBResource, VerificationExpiryResource

CHECK_NAME = "no_verification_past_cutoff"


def verification_expiry_check(settings: VerificationExpiryResource) -> AssetChecksDefinition:
    members = members_key(settings)

    @asset_check(
        asset=members,
        name=CHECK_NAME,
        description="Fails if any member is still verified past the cut-off of the latest expiry run.",
    )
    def no_verification_past_cutoff(
        context: AssetCheckExecutionContext, mariadb: MariaDBResource, verification: VerificationExpiryResource
    ) -> AssetCheckResult:
        latest = context.instance.get_latest_materialization_event(members)
        if latest is None or latest.asset_materialization is None:
            return AssetCheckResult(passed=True, description="no expiry run has materialized the table yet")
        as_of = parse_as_of(str(latest.asset_materialization.metadata["as_of"].value))
        table = verification.members_table()
        count, oldest = overdue_verifications(mariadb.engine(verification.connection()), table, as_of)
        return AssetCheckResult(
            passed=count == 0,
            severity=AssetCheckSeverity.ERROR,
            description=f"{count} members still verified at or before {iso(table.cutoff(as_of))}",
            metadata={
                "still_verified": count,
                "as_of": iso(as_of),
                "expiry_run": latest.run_id,
                "oldest_verified_at": iso(oldest) if oldest else "",
            },
        )

    return no_verification_past_cutoff
