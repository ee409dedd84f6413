"""The instance: created and protected, or adopted (imported, never recreated)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_alicloud as alicloud
from pulumi_command import remote
from tencentcloud_iac_pulumi import instance as tc_instance

from plan import AdoptedHost, Cloud, CreatedHost
from plan import Host as PlannedHost
from policies.facts import HOST

# Inputs whose change makes the cloud replace the instance (and lose its system disk).
# An ordinary change must never do that: they are set once at creation, then ignored.
_REPLACING_INPUTS = {
    Cloud.ALIBABA: ["imageId", "availabilityZone", "vswitchId", "dataDisks", "keyName", "userData", "instanceName"],
    Cloud.TENCENT: [
        "imageId",
        "availabilityZone",
        "subnetId",
        "vpcId",
        "dataDisks",
        "keyIds",
        "userData",
        "instanceName",
        "hostname",
    ],
}


@dataclass(frozen=True)
class HostArgs:
    cloud: Cloud
    host: PlannedHost
    props: dict[str, Any]
    """The plan's props (``plan.props()``), registered for the policy pack."""
    subnet_id: pulumi.Input[str] | None  # None for an adopted host: it keeps its network
    vpc_id: pulumi.Input[str] | None
    security_group_id: pulumi.Input[str]
    ssh_private_key: pulumi.Output[str]


class Host(pulumi.ComponentResource):
    instance_id: pulumi.Output[str]
    public_ip: pulumi.Output[str]

    def __init__(self, name: str, args: HostArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        host = args.host
        super().__init__(HOST, name, {"plan": args.props}, opts)
        instance = self._alibaba(name, args) if args.cloud == Cloud.ALIBABA else self._tencent(name, args)
        self.instance_id = instance.id
        if isinstance(host, AdoptedHost):
            self.public_ip = pulumi.Output.from_input(host.public_ip)
        else:
            self.public_ip = instance.public_ip
        # SSH with the host key pinned; None while a created host's key is not pinned yet.
        self.connection: remote.ConnectionArgs | None = None
        if host.host_key is not None:
            self.connection = remote.ConnectionArgs(
                host=self.public_ip,
                port=float(host.ssh_port),
                user=host.ssh_user,
                private_key=args.ssh_private_key,
                host_key=host.host_key,
                dial_error_limit=10,
                per_dial_timeout=15,
            )
        self.register_outputs({"instance_id": self.instance_id, "public_ip": self.public_ip, "plan": args.props})

    def _options(self, args: HostArgs) -> pulumi.ResourceOptions:
        # protect: `pulumi destroy` and a replacing diff stop with an error instead of deleting data.
        if isinstance(args.host, AdoptedHost):
            # Import reads the live instance into state; nothing is created. The program declares
            # nothing about it and ignores every property ("*", pulumi/pulumi#13005), so the
            # import plans no change and no later run can replace it.
            return pulumi.ResourceOptions(
                parent=self, protect=True, retain_on_delete=True, import_=args.host.instance_id, ignore_changes=["*"]
            )
        return pulumi.ResourceOptions(
            parent=self, protect=True, retain_on_delete=True, ignore_changes=_REPLACING_INPUTS[args.cloud]
        )

    def _alibaba(self, name: str, args: HostArgs) -> alicloud.ecs.Instance:
        host = args.host
        if isinstance(host, AdoptedHost):
            return alicloud.ecs.Instance(f"{name}-instance", opts=self._options(args))
        return alicloud.ecs.Instance(
            f"{name}-instance",
            instance_name=name,
            host_name=name,
            instance_type=host.instance_type,
            image_id=host.image_id,
            availability_zone=host.zone,
            vswitch_id=args.subnet_id,
            security_groups=[args.security_group_id],
            key_name=host.key_pair_name,
            internet_max_bandwidth_out=10,
            system_disk_category="cloud_essd",
            system_disk_size=host.disk_gb,
            data_disks=[
                alicloud.ecs.InstanceDataDiskArgs(
                    name=f"{name}-data",
                    size=host.data_disk_gb,
                    category=host.data_disk_category or "cloud_essd",
                    encrypted=True,
                    delete_with_instance=False,  # the data outlives the instance
                )
            ],
            deletion_protection=True,
            tags={"managed-by": "pulumi", "role": "database-platform"},
            opts=self._options(args),
        )

    def _tencent(self, name: str, args: HostArgs) -> tc_instance.Instance:
        host = args.host
        if isinstance(host, AdoptedHost):
            return tc_instance.Instance(f"{name}-instance", opts=self._options(args))
        assert isinstance(host, CreatedHost)
        return tc_instance.Instance(
            f"{name}-instance",
            instance_name=name,
            hostname=name,
            instance_type=host.instance_type,
            image_id=host.image_id,
            availability_zone=host.zone,
            vpc_id=args.vpc_id,
            subnet_id=args.subnet_id,
            orderly_security_groups=[args.security_group_id],
            key_ids=[host.key_pair_name],
            allocate_public_ip=True,
            internet_max_bandwidth_out=10,
            system_disk_type="CLOUD_PREMIUM",
            system_disk_size=host.disk_gb,
            data_disks=[
                tc_instance.InstanceDataDiskArgs(
                    data_disk_name=f"{name}-data",
                    data_disk_size=host.data_disk_gb,
                    data_disk_type=host.data_disk_category or "CLOUD_PREMIUM",
                    encrypt=True,
                    delete_with_instance=False,  # the data outlives the instance
                )
            ],
            disable_api_termination=True,
            tags={"managed-by": "pulumi", "role": "application-platform"},
            opts=self._options(args),
        )
