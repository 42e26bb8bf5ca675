"""The dograh-guards policy pack: `pulumi preview --policy-pack policy`."""

from dograh_policies import ALL_POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name="dograh-guards",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=ALL_POLICIES,
)
