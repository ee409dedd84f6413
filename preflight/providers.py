"""What the cloud providers do with a changed input: replace the resource, or update it in place
and stop the instance on the way.

Read from the Terraform providers behind the SDKs in ``uv.lock`` (a field's ``ForceNew: true``, or a
plugin-framework ``RequiresReplace`` plan modifier, is a replacement); each entry cites its file and
line. The versions read:

- pulumi-alicloud 4.0.0 wraps terraform-provider-alicloud 1.295.0 or later (its docstrings say
  "Available since v1.295.0"); the newest tag that could be read here is v1.289.0, and the lines below
  are that tag's (``alicloud/resource_alicloud_*.go``). The schemas of the resources cited did not change
  between v1.280 and v1.289 except the instance's, whose ForceNew list is longer, never shorter, later.
- tencentcloud-iac-pulumi 0.2.3 wraps terraform-provider-tencentcloud v1.82.42 exactly (its
  ``provider/go.mod``); lines under ``tencentcloud/services/``.
- pulumi-tls 5.6.2: terraform-provider-tls at v4.2.1's lines (``internal/provider/``).
- pulumi-random 4.21.4: terraform-provider-random v3.9.0 (``internal/provider/resource_password.go``).
- pulumi-command 1.2.1: only ``triggers`` replaces (``provider/pkg/provider/common/inputs.go:10``), and
  the SDK registers that as ``replaceOnChanges``, so the engine's own rule already covers it.

Paths are the engine's input paths (camelCase); ``a[*].b`` is ``b`` of any element of the list
``a``; ``a[#]`` is the number of elements (a list of blocks that is ForceNew only as a whole replaces
when an element is added or removed; its elements' fields follow their own flags).
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.facts import (
    ALIBABA_GROUP,
    ALIBABA_INSTANCE,
    ALIBABA_RULE,
    COMMAND,
    COPY_TO_REMOTE,
    OSS_BUCKET,
    TENCENT_GROUP,
    TENCENT_INSTANCE,
    TENCENT_RULE_SET,
)


@dataclass(frozen=True)
class Stop:
    """An in-place update that stops the instance, or fails on a smaller value."""

    path: str
    effect: str
    """What the provider does, for the hazard line."""
    grow_only: bool = False
    """A smaller value fails at apply: the cloud only grows it."""
    stops: bool = True
    """The update stops the instance (else only a smaller value is a hazard)."""


@dataclass(frozen=True)
class ProviderRules:
    replaces: tuple[str, ...] = ()
    """Input paths whose change replaces the resource; ``*`` is every input."""
    stops: tuple[Stop, ...] = ()
    source: str = ""
    """Where the rules were read."""


_ALI = "terraform-provider-alicloud v1.289.0"
_TC = "terraform-provider-tencentcloud v1.82.42"

_ALI_STOP = "stops the instance (StopInstance, the change, StartInstance): every workload on it is down meanwhile"
_TC_FORCE_STOP = "force-stops the instance (ForceStop=true): every workload on it is cut off mid-write"

RULES: dict[str, ProviderRules] = {
    # alicloud/resource_alicloud_security_group.go:63 (securityGroupType), :71 (vpcId).
    ALIBABA_GROUP: ProviderRules(("securityGroupType", "vpcId"), source=_ALI),
    # alicloud/resource_alicloud_security_group_rule.go: every field but description is ForceNew:
    # :31 securityGroupId, :36 type, :43 ipProtocol, :49 policy, :56 priority, :63 cidrIp, :69 ipv6CidrIp,
    # :79 sourceSecurityGroupId, :85 sourceGroupOwnerAccount, :91 sourceGroupOwnerId, :97 prefixListId,
    # :103 portRange, :110 nicType.
    ALIBABA_RULE: ProviderRules(
        (
            "securityGroupId",
            "type",
            "ipProtocol",
            "policy",
            "priority",
            "cidrIp",
            "ipv6CidrIp",
            "sourceSecurityGroupId",
            "sourceGroupOwnerAccount",
            "sourceGroupOwnerId",
            "prefixListId",
            "portRange",
            "nicType",
        ),
        source=_ALI,
    ),
    # alicloud/resource_alicloud_instance.go: ForceNew :39 availabilityZone, :67 networkInterfaceId,
    # :139 systemDiskCategory, :174-:192 the system disk's cluster and encryption, :209-:229 the primary
    # interface's mode, card, queues and check, :241-:307 every dataDisks field the program sets (name,
    # size, category, encrypted, deleteWithInstance) and the others, :467/:474 spot, :493
    # securityEnhancementStrategy, :520 hpcClusterId, :627 ipv6AddressCount, :662 dedicatedHostId,
    # :668-:678 the launch template. imageId replaces only with the provider's
    # features.ecs_instance.replace_on_image_update (:2707-:2732); by default it stops the instance and
    # replaces its system disk (:2795-:2874). Stops: instanceType (modifyInstanceType :3084-:3182),
    # hostName (:2923-:2928), userData (:2909-:2921), password (:2930-:2949), vswitchId/vpcId/privateIp
    # (modifyVpcAttribute :2999-:3081); systemDiskSize is resized online (:1805-:1826), and ECS's
    # ResizeDisk refuses a smaller one.
    ALIBABA_INSTANCE: ProviderRules(
        (
            "availabilityZone",
            "networkInterfaceId",
            "systemDiskCategory",
            "systemDiskStorageClusterId",
            "systemDiskEncrypted",
            "systemDiskKmsKeyId",
            "systemDiskEncryptAlgorithm",
            "networkInterfaceTrafficMode",
            "networkCardIndex",
            "queuePairNumber",
            "sourceDestCheck",
            "dataDisks[*].name",
            "dataDisks[*].size",
            "dataDisks[*].category",
            "dataDisks[*].encrypted",
            "dataDisks[*].snapshotId",
            "dataDisks[*].autoSnapshotPolicyId",
            "dataDisks[*].deleteWithInstance",
            "dataDisks[*].description",
            "dataDisks[*].device",
            "dataDisks[*].provisionedIops",
            "dataDisks[*].burstingEnabled",
            "spotStrategy",
            "spotPriceLimit",
            "securityEnhancementStrategy",
            "hpcClusterId",
            "spotInterruptionBehavior",
            "httpPutResponseHopLimit",
            "ipv6AddressCount",
            "dedicatedHostId",
            "launchTemplateName",
            "launchTemplateId",
            "launchTemplateVersion",
        ),
        (
            Stop("instanceType", _ALI_STOP),
            Stop("hostName", _ALI_STOP),
            Stop("userData", _ALI_STOP),
            Stop("password", _ALI_STOP),
            Stop("vswitchId", _ALI_STOP),
            Stop("vpcId", _ALI_STOP),
            Stop("privateIp", _ALI_STOP),
            Stop("imageId", _ALI_STOP + ", and its system disk is replaced from the new image (its data is lost)"),
            Stop("systemDiskSize", "resizes the system disk online", grow_only=True, stops=False),
        ),
        source=_ALI,
    ),
    # alicloud/resource_alicloud_vpc.go: :78 ipv6CidrBlock, :173 isDefault, :184 userCidrs. cidrBlock is
    # updated in place (ModifyVpcAttribute, :507-:510): the API decides whether it may change.
    "alicloud:vpc/network:Network": ProviderRules(("ipv6CidrBlock", "isDefault", "userCidrs"), source=_ALI),
    # alicloud/resource_alicloud_vswitch.go: :35 cidrBlock, :64 isDefault, :80 vpcId, :92 zoneId, :105 availabilityZone.
    "alicloud:vpc/switch:Switch": ProviderRules(
        ("cidrBlock", "isDefault", "vpcId", "zoneId", "availabilityZone"), source=_ALI
    ),
    # alicloud/resource_alicloud_oss_bucket.go: :31 bucket, :377 storageClass, :390 redundancyType.
    OSS_BUCKET: ProviderRules(("bucket", "storageClass", "redundancyType"), source=_ALI),
    # alicloud/resource_alicloud_oss_bucket_acl.go:36.
    "alicloud:oss/bucketAcl:BucketAcl": ProviderRules(("bucket",), source=_ALI),
    # alicloud/resource_alicloud_oss_bucket_public_access_block.go:37.
    "alicloud:oss/bucketPublicAccessBlock:BucketPublicAccessBlock": ProviderRules(("bucket",), source=_ALI),
    # alicloud/resource_alicloud_ram_role.go: :67 roleName, :75 name.
    "alicloud:ram/role:Role": ProviderRules(("roleName", "name"), source=_ALI),
    # alicloud/resource_alicloud_ram_policy.go: :54 policyName, :87 name.
    "alicloud:ram/policy:Policy": ProviderRules(("policyName", "name"), source=_ALI),
    # alicloud/resource_alicloud_ram_role_policy_attachment.go: :31, :36, :42 (every input).
    "alicloud:ram/rolePolicyAttachment:RolePolicyAttachment": ProviderRules(("*",), source=_ALI),
    # alicloud/resource_alicloud_ram_role_attachment.go: :24 roleName, :30 instanceIds (every input).
    "alicloud:ram/roleAttachment:RoleAttachment": ProviderRules(("*",), source=_ALI),
    # cvm/resource_tc_instance.go: ForceNew :56 availabilityZone, :63 dedicatedClusterId, :159 spotMaxPrice,
    # :173 cdhHostId, :207 allocatePublicIp, :213/:221/:229 address types and count, :236
    # antiDdosPackageId, :313 dataDisks (the number of disks), :320-:378 a disk's type, snapshot,
    # deletion, key and encryption, :490 hpcClusterId, :497/:503 the launch template. Stops:
    # instanceType (:2226-:2236, ResetInstancesType with ForceStop=true), systemDiskSize/Type
    # (:2161-:2210, ResizeInstanceDisks with ForceStop=true; the API only grows a system disk),
    # vpcId/subnetId/privateIp (:2250-:2258), password (:2041-:2050), keyIds (:2053-:2116), imageId
    # (:1951-:2039, ResetInstance: the OS is reinstalled). A data disk grows in place (:2119-:2151).
    TENCENT_INSTANCE: ProviderRules(
        (
            "availabilityZone",
            "dedicatedClusterId",
            "spotMaxPrice",
            "cdhHostId",
            "allocatePublicIp",
            "ipv4AddressType",
            "ipv6AddressType",
            "ipv6AddressCount",
            "antiDdosPackageId",
            "dataDisks[#]",
            "dataDisks[*].dataDiskType",
            "dataDisks[*].dataDiskSnapshotId",
            "dataDisks[*].deleteWithInstance",
            "dataDisks[*].deleteWithInstancePrepaid",
            "dataDisks[*].kmsKeyId",
            "dataDisks[*].encrypt",
            "dataDisks[*].throughputPerformance",
            "hpcClusterId",
            "launchTemplateId",
            "launchTemplateVersion",
        ),
        (
            Stop("instanceType", _TC_FORCE_STOP),
            Stop("systemDiskSize", _TC_FORCE_STOP, grow_only=True),
            Stop("systemDiskType", _TC_FORCE_STOP),
            Stop("vpcId", _TC_FORCE_STOP),
            Stop("subnetId", _TC_FORCE_STOP),
            Stop("privateIp", _TC_FORCE_STOP),
            Stop("password", _TC_FORCE_STOP),
            Stop("keyIds", _TC_FORCE_STOP),
            Stop("imageId", _TC_FORCE_STOP + ", and the OS is reinstalled on its system disk (its data is lost)"),
            Stop("dataDisks[*].dataDiskSize", "grows the data disk in place", grow_only=True, stops=False),
        ),
        source=_TC,
    ),
    # vpc/resource_tc_security_group.go:47 projectId.
    TENCENT_GROUP: ProviderRules(("projectId",), source=_TC),
    # vpc/resource_tc_security_group_rule_set.go:97 securityGroupId; the rules update in place.
    TENCENT_RULE_SET: ProviderRules(("securityGroupId",), source=_TC),
    # vpc/resource_tc_vpc.go:41 cidrBlock.
    "tencentcloud:Vpc/instance:Instance": ProviderRules(("cidrBlock",), source=_TC),
    # vpc/resource_tc_subnet.go: :32 vpcId, :38 availabilityZone, :50 cidrBlock, :63 cdcId.
    "tencentcloud:Subnet/instance:Instance": ProviderRules(
        ("vpcId", "availabilityZone", "cidrBlock", "cdcId"), source=_TC
    ),
    # terraform-provider-tls: every input of these resources RequiresReplace (resource_private_key.go:60,
    # :75, :84; resource_self_signed_cert.go:55-:318; resource_cert_request.go:46-:199;
    # resource_locally_signed_cert.go:54-:148). A certificate in its early-renewal window is also
    # replaced without any input changing (common_cert.go:268-:311): not seen from the program.
    "tls:index/privateKey:PrivateKey": ProviderRules(("*",), source="terraform-provider-tls v4.2.1"),
    "tls:index/selfSignedCert:SelfSignedCert": ProviderRules(("*",), source="terraform-provider-tls v4.2.1"),
    "tls:index/certRequest:CertRequest": ProviderRules(("*",), source="terraform-provider-tls v4.2.1"),
    "tls:index/locallySignedCert:LocallySignedCert": ProviderRules(("*",), source="terraform-provider-tls v4.2.1"),
    # terraform-provider-random resource_password.go:576-:715: every input replaces.
    "random:index/randomPassword:RandomPassword": ProviderRules(("*",), source="terraform-provider-random v3.9.0"),
    # pulumi-command: only triggers, which the SDK registers as replaceOnChanges (the engine's rule).
    COMMAND: ProviderRules(source="pulumi-command v1.2.1"),
    COPY_TO_REMOTE: ProviderRules(source="pulumi-command v1.2.1"),
}

# Networks an instance lives in: replacing one under a running instance fails when the old one is
# deleted (the cloud refuses while the instance is attached), after the new one was created.
NETWORKS = frozenset(
    {
        "alicloud:vpc/network:Network",
        "alicloud:vpc/switch:Switch",
        "tencentcloud:Vpc/instance:Instance",
        "tencentcloud:Subnet/instance:Instance",
    }
)
