"""The host's VPC and vSwitch (Alibaba) or subnet (Tencent): adopted by id, or created."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_alicloud as alicloud
from tencentcloud_iac_pulumi import subnet as tc_subnet
from tencentcloud_iac_pulumi import vpc as tc_vpc

from plan import Cloud, CreatedHost, Plan
from policies.facts import NETWORK


@dataclass(frozen=True)
class NetworkArgs:
    plan: Plan


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    """The VPC the security group and the instance live in."""
    subnet_id: pulumi.Output[str]
    """The vSwitch (Alibaba) or subnet (Tencent) of the instance."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        network = args.plan.network
        super().__init__(NETWORK, name, {"vpcCidr": network.vpc_cidr}, opts)
        if network.vpc_id is not None and network.subnet_id is not None:
            self.vpc_id = pulumi.Output.from_input(network.vpc_id)
            self.subnet_id = pulumi.Output.from_input(network.subnet_id)
        elif args.plan.cloud == Cloud.ALIBABA:
            self._create_alibaba(name, args.plan)
        else:
            self._create_tencent(name, args.plan)
        self.register_outputs({"vpc_id": self.vpc_id, "subnet_id": self.subnet_id})

    def _zone(self, plan: Plan) -> str:
        if not isinstance(plan.host, CreatedHost):
            raise pulumi.RunError("platform:network: give vpcId and subnetId of the adopted host's network")
        return plan.host.zone

    def _create_alibaba(self, name: str, plan: Plan) -> None:
        child = pulumi.ResourceOptions(parent=self)
        vpc = alicloud.vpc.Network(f"{name}-vpc", vpc_name=name, cidr_block=plan.network.vpc_cidr, opts=child)
        switch = alicloud.vpc.Switch(
            f"{name}-vswitch",
            vswitch_name=name,
            vpc_id=vpc.id,
            cidr_block=plan.network.subnet_cidr,
            zone_id=self._zone(plan),
            opts=child,
        )
        self.vpc_id, self.subnet_id = vpc.id, switch.id

    def _create_tencent(self, name: str, plan: Plan) -> None:
        child = pulumi.ResourceOptions(parent=self)
        vpc = tc_vpc.Instance(f"{name}-vpc", name=name, cidr_block=plan.network.vpc_cidr, opts=child)
        subnet = tc_subnet.Instance(
            f"{name}-subnet",
            name=name,
            vpc_id=vpc.id,
            cidr_block=plan.network.subnet_cidr,
            availability_zone=self._zone(plan),
            opts=child,
        )
        self.vpc_id, self.subnet_id = vpc.id, subnet.id
