"""The expiry's asset check, run on its own from the UI: no member is still verified past the cut-off of the
latest expiry run. Each run of the expiry job evaluates the same check itself, right after its work."""

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetChecksDefinition, asset_check

from mungmo_pipelines.assets.verification import CHECK_NAME, members_key, overdue_check
from mungmo_pipelines.core.expiry.members import overdue_verifications, parse_as_of
from mungmo_pipelines.resources import MariaDBResource, VerificationExpiryResource


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
        return overdue_check(members, count, oldest, table.cutoff(as_of), as_of, latest.run_id)

    return no_verification_past_cutoff
